"""Copy the metric catalogue, device kinds and sites into the database (idempotent upsert)."""

from __future__ import annotations

from typing import Any

import psycopg

from smartcity.catalog import DEVICE_KINDS, METRICS, SITES
from smartcity.db.queries import catalog as catalog_sql

__all__ = ["seed_catalog"]


def seed_catalog(conn: psycopg.Connection[Any]) -> None:
    """Upsert every metric, device kind and site of the catalogue in one transaction."""
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
