"""SQL of the ISPU in the database (migration 010): seeding its tables from ``smartcity.airquality``
and reading every site's index through ``smartcity_site_ispu``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DELETE_OTHER_BREAKPOINTS",
    "DELETE_OTHER_CATEGORIES",
    "DELETE_OTHER_POLLUTANTS",
    "SELECT_SITE_ISPU",
    "UPSERT_BREAKPOINT",
    "UPSERT_CATEGORY",
    "UPSERT_POLLUTANT",
    "UPSERT_SETTINGS",
]

# Upserts, then deletes of what the constants no longer hold: seeders running at once (workers
# migrating together) never collide on a key, and readers never see the tables empty.

# (band, id, name, name_en, color, i_low, i_high)
UPSERT_CATEGORY: Final = (
    "INSERT INTO ispu_categories (band, id, name, name_en, color, i_low, i_high)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (band) DO UPDATE SET id = excluded.id,"
    " name = excluded.name, name_en = excluded.name_en, color = excluded.color,"
    " i_low = excluded.i_low, i_high = excluded.i_high"
)

# (pollutant, position, particulate, averaging_hours)
UPSERT_POLLUTANT: Final = (
    "INSERT INTO ispu_pollutants (pollutant, position, particulate, averaging_hours)"
    " VALUES (%s, %s, %s, %s) ON CONFLICT (pollutant) DO UPDATE SET position = excluded.position,"
    " particulate = excluded.particulate, averaging_hours = excluded.averaging_hours"
)

# (pollutant, band, x_low, x_high, i_low, i_high)
UPSERT_BREAKPOINT: Final = (
    "INSERT INTO ispu_breakpoints (pollutant, band, x_low, x_high, i_low, i_high)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (pollutant, band) DO UPDATE SET"
    " x_low = excluded.x_low, x_high = excluded.x_high, i_low = excluded.i_low, i_high = excluded.i_high"
)

# (min_coverage,)
UPSERT_SETTINGS: Final = (
    "INSERT INTO ispu_settings (only_row, min_coverage) VALUES (true, %s)"
    " ON CONFLICT (only_row) DO UPDATE SET min_coverage = excluded.min_coverage"
)

# {"pollutants": text[], "bands": int[]} — the (pollutant, band) pairs to keep.
DELETE_OTHER_BREAKPOINTS: Final = """
DELETE FROM ispu_breakpoints b
WHERE NOT EXISTS (SELECT 1 FROM unnest(%(pollutants)s::text[], %(bands)s::int[]) AS k(pollutant, band)
                  WHERE k.pollutant = b.pollutant AND k.band = b.band)
"""

# {"pollutants": text[]} — their breakpoints go with them.
DELETE_OTHER_POLLUTANTS: Final = (
    "DELETE FROM ispu_pollutants WHERE NOT pollutant = ANY (%(pollutants)s::text[])"
)

# {"bands": int[]} — after the breakpoints that refer to them.
DELETE_OTHER_CATEGORIES: Final = "DELETE FROM ispu_categories WHERE NOT band = ANY (%(bands)s::int[])"

# {"at": timestamptz} → (site_id, name, latitude, longitude, ispu, category, color, dominant) per site,
# ispu and the rest NULL where there is no number.
SELECT_SITE_ISPU: Final = (
    "SELECT site_id, name, latitude, longitude, ispu, category, color, dominant"
    " FROM smartcity_site_ispu(%(at)s)"
)
