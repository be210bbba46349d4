"""The schema really is on TimescaleDB: extension loaded, readings a hypertable, key dedupes."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from smartcity.catalog import DEVICE_KINDS, METRICS, SITES


def test_timescaledb_is_preloaded_and_loaded(db: psycopg.Connection) -> None:
    preload = db.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert "timescaledb" in preload
    version = db.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    ).fetchone()
    assert version is not None and version[0].startswith("2.")


def test_readings_is_a_hypertable_on_time(db: psycopg.Connection) -> None:
    row = db.execute(
        "SELECT column_name FROM timescaledb_information.dimensions"
        " WHERE hypertable_name = 'readings'"
    ).fetchone()
    assert row == ("time",)


def test_catalogue_is_seeded(db: psycopg.Connection) -> None:
    assert db.execute("SELECT count(*) FROM metrics").fetchone()[0] == len(METRICS)
    assert db.execute("SELECT count(*) FROM device_kinds").fetchone()[0] == len(DEVICE_KINDS)
    assert db.execute("SELECT count(*) FROM sites").fetchone()[0] == len(SITES) == 10
    unit = db.execute("SELECT unit FROM metrics WHERE name = 'pm25'").fetchone()[0]
    assert unit == "µg/m³"


def test_same_reading_twice_is_stored_once(db: psycopg.Connection) -> None:
    at = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    for _ in range(2):
        db.execute(
            "INSERT INTO readings (time, device, metric, value) VALUES (%s, 1, 1, 12.5)"
            " ON CONFLICT DO NOTHING", (at,),
        )
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
