"""SQL that copies the metric catalogue, device kinds and sites into the database (upserts)."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DELETE_KIND_METRICS",
    "INSERT_KIND_METRIC",
    "UPSERT_DEVICE_KIND",
    "UPSERT_METRIC",
    "UPSERT_SITE",
]

# (metric_id, name, unit, min_value, max_value, domain, cumulative, description)
UPSERT_METRIC: Final = (
    "INSERT INTO metrics (metric_id, name, unit, min_value, max_value, domain,"
    " cumulative, description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (metric_id) DO UPDATE SET name = excluded.name, unit = excluded.unit,"
    " min_value = excluded.min_value, max_value = excluded.max_value,"
    " domain = excluded.domain, cumulative = excluded.cumulative,"
    " description = excluded.description"
)

# (kind, description)
UPSERT_DEVICE_KIND: Final = (
    "INSERT INTO device_kinds (kind, description) VALUES (%s, %s)"
    " ON CONFLICT (kind) DO UPDATE SET description = excluded.description"
)

# () — the kinds' metric lists are replaced whole, so a metric dropped from a kind goes too.
DELETE_KIND_METRICS: Final = "DELETE FROM device_kind_metrics"

# (kind, metric_id)
INSERT_KIND_METRIC: Final = "INSERT INTO device_kind_metrics (kind, metric_id) VALUES (%s, %s)"

# (site_id, name, latitude, longitude, timezone)
UPSERT_SITE: Final = (
    "INSERT INTO sites (site_id, name, latitude, longitude, timezone)"
    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site_id) DO UPDATE SET"
    " name = excluded.name, latitude = excluded.latitude,"
    " longitude = excluded.longitude, timezone = excluded.timezone"
)
