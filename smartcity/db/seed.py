"""Copy the metric catalogue, device kinds, sites and the ISPU's table into the database (idempotent
upserts).
"""

from __future__ import annotations

from typing import Any

import psycopg

from smartcity.airquality import ISPU_CATEGORIES, ISPU_INDEX_POINTS, ISPU_TABLE, PARTICULATES, TABLE_UNIT
from smartcity.catalog import DEVICE_KINDS, METRICS, SITES
from smartcity.db.queries import airquality as airquality_sql
from smartcity.db.queries import catalog as catalog_sql
from smartcity.settings import DEFAULT_AVERAGING_HOURS, IndexSettings

__all__ = ["seed_catalog"]

def seed_catalog(conn: psycopg.Connection[Any]) -> None:
    """Upsert every metric, device kind, site and the ISPU's table in one transaction.

    Raises:
        ValueError: an ISPU pollutant's catalogue unit is not the table's µg/m³.
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            catalog_sql.UPSERT_METRIC,
            [(m.id, m.name, m.unit, m.min_value, m.max_value, m.domain, m.cumulative,
              m.description) for m in METRICS.values()],
        )
        cur.executemany(catalog_sql.UPSERT_DEVICE_KIND,
                        [(k.name, k.description) for k in DEVICE_KINDS.values()])
        cur.execute(catalog_sql.DELETE_KIND_METRICS)
        cur.executemany(
            catalog_sql.INSERT_KIND_METRIC,
            [(k.name, METRICS[m].id) for k in DEVICE_KINDS.values() for m in k.metrics],
        )
        cur.executemany(
            catalog_sql.UPSERT_SITE,
            [(s.id, s.name, s.latitude, s.longitude, s.timezone) for s in SITES.values()],
        )
        _seed_ispu(cur)


def _seed_ispu(cur: psycopg.Cursor[Any]) -> None:
    """Copy smartcity.airquality's ISPU table and the index settings' defaults (migration 010)."""
    # The SQL reads the planner's means as they are; a catalogue unit other than the table's would
    # need api.indices.to_table_unit's conversion there too, so it is refused here rather than
    # giving numbers off by a factor.
    other = {p: METRICS[p].unit for p in ISPU_TABLE if METRICS[p].unit != TABLE_UNIT}
    if other:
        raise ValueError(f"the ISPU's SQL needs the catalogue's pollutants in {TABLE_UNIT}; "
                         f"{', '.join(f'{p} is in {u}' for p, u in other.items())}")
    points = ISPU_INDEX_POINTS
    cur.executemany(airquality_sql.UPSERT_CATEGORY, [
        (band, c.id, c.name, c.name_en, c.color, points[band], points[band + 1])
        for band, c in enumerate(ISPU_CATEGORIES)])
    cur.executemany(airquality_sql.UPSERT_POLLUTANT, [
        (pollutant, position, pollutant in PARTICULATES, DEFAULT_AVERAGING_HOURS[pollutant])
        for position, pollutant in enumerate(ISPU_TABLE)])
    breakpoints = [(pollutant, band, float(xs[band]), float(xs[band + 1]), points[band], points[band + 1])
                   for pollutant, xs in ISPU_TABLE.items() for band in range(len(xs) - 1)]
    cur.executemany(airquality_sql.UPSERT_BREAKPOINT, breakpoints)
    cur.execute(airquality_sql.DELETE_OTHER_BREAKPOINTS, {
        "pollutants": [b[0] for b in breakpoints], "bands": [b[1] for b in breakpoints]})
    cur.execute(airquality_sql.DELETE_OTHER_POLLUTANTS, {"pollutants": list(ISPU_TABLE)})
    cur.execute(airquality_sql.DELETE_OTHER_CATEGORIES, {"bands": list(range(len(ISPU_CATEGORIES)))})
    cur.execute(airquality_sql.UPSERT_SETTINGS, (IndexSettings().min_coverage,))
