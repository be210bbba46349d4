"""Fixtures of the database-role tests: data in every table a role could harm, and an admin key."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.types.json import Jsonb

from smartcity.apikeys import Scope, create_key
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from tests.api.readings_seed import T0, register, write_readings


@pytest.fixture
def seeded(db: psycopg.Connection, database_url: str) -> str:
    """Two days of PM2.5 and PM10 every 10 minutes (day one rolled up, day two pending), a quarantined
    message; return an admin key."""
    keys = register(db)
    readings = [(device, metric, T0.timestamp() + 600 * i, 20.0 + (i % 30))
                for device in ("aq-grogot-01", "aq-grogot-02") for metric in ("pm25", "pm10")
                for i in range(144)]
    write_readings(database_url, keys, readings)
    db.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
    write_readings(database_url, keys, [(d, m, t + 86_400, v) for d, m, t, v in readings])
    parts = {"total": 1, "by_reason": {"invalid_json": 1},
             "first": [{"reason": "invalid_json", "detail": "not JSON"}]}
    db.execute("INSERT INTO quarantine (topic, device_id, reason, reasons, detail, parts, payload,"
               " payload_size) VALUES ('smartcity/v1/devices/aq-x-01/telemetry', 'aq-x-01',"
               " 'invalid_json', ARRAY['invalid_json'], 'not JSON', %s, '{', 1)", (Jsonb(parts),))
    return create_key(db, Scope.ADMIN, "api role test").key
