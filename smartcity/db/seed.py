"""Copy the metric catalogue, device kinds and sites into the database (idempotent upsert)."""

from __future__ import annotations

import psycopg

from smartcity.catalog import DEVICE_KINDS, METRICS, SITES

__all__ = ["seed_catalog"]


def seed_catalog(conn: psycopg.Connection) -> None:
    """Upsert every metric, device kind and site of the catalogue in one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO metrics (metric_id, name, unit, min_value, max_value, domain,"
            " cumulative, description) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (metric_id) DO UPDATE SET name = excluded.name, unit = excluded.unit,"
            " min_value = excluded.min_value, max_value = excluded.max_value,"
            " domain = excluded.domain, cumulative = excluded.cumulative,"
            " description = excluded.description",
            [(m.id, m.name, m.unit, m.min_value, m.max_value, m.domain, m.cumulative,
              m.description) for m in METRICS.values()],
        )
        cur.executemany(
            "INSERT INTO device_kinds (kind, description) VALUES (%s, %s)"
            " ON CONFLICT (kind) DO UPDATE SET description = excluded.description",
            [(k.name, k.description) for k in DEVICE_KINDS.values()],
        )
        cur.execute("DELETE FROM device_kind_metrics")
        cur.executemany(
            "INSERT INTO device_kind_metrics (kind, metric_id) VALUES (%s, %s)",
            [(k.name, METRICS[m].id) for k in DEVICE_KINDS.values() for m in k.metrics],
        )
        cur.executemany(
            "INSERT INTO sites (site_id, name, latitude, longitude, timezone)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (site_id) DO UPDATE SET"
            " name = excluded.name, latitude = excluded.latitude,"
            " longitude = excluded.longitude, timezone = excluded.timezone",
            [(s.id, s.name, s.latitude, s.longitude, s.timezone) for s in SITES.values()],
        )
