"""Readings for the /readings and CSV tests, stored through ingest's writer (COPY, store_staged_readings)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS
from smartcity.devices import register_device

__all__ = ["DEVICES", "T0", "ReadingRow", "register", "stored_readings", "write_readings"]

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
# device id → (kind, site)
DEVICES = {
    "aq-grogot-01": ("air_quality_station", "tanah-grogot"),
    "aq-grogot-02": ("air_quality_station", "tanah-grogot"),
    "wx-kuaro-01": ("weather_station", "kuaro"),
}

ReadingRow = tuple[str, str, datetime, float]  # device id, metric, time, value


def register(db: psycopg.Connection, devices: dict[str, tuple[str, str]] | None = None) -> dict[str, int]:
    """Register ``devices`` (default DEVICES) and return each one's key."""
    for device_id, (kind, site) in (devices or DEVICES).items():
        register_device(db, device_id, kind, site)
    return dict(db.execute("SELECT device_id, id FROM devices").fetchall())


def write_readings(database_url: str, keys: dict[str, int],
                   readings: Iterable[tuple[str, str, float, float]]) -> int:
    """Store (device id, metric, epoch seconds, value) readings the way ingest does; return how many."""
    rows = Rows()
    for device_id, metric, epoch, value in readings:
        rows.readings.append((epoch, keys[device_id], METRICS[metric].id, value))
    writer = Writer(database_url)
    try:
        writer.write_rows(rows)
    finally:
        writer.close()
    return len(rows.readings)


def stored_readings(db: psycopg.Connection, start: datetime, end: datetime,
                    where: str = "TRUE", params: dict[str, Any] | None = None) -> list[ReadingRow]:
    """Every stored reading in [start, end), sorted here by (time, device id, metric)."""
    rows = db.execute(
        "SELECT d.device_id, m.name, r.time, r.value FROM readings r"
        " JOIN devices d ON d.id = r.device JOIN metrics m ON m.metric_id = r.metric"
        f" WHERE r.time >= %(start)s AND r.time < %(end)s AND {where}",
        {"start": start, "end": end, **(params or {})}).fetchall()
    return sorted(rows, key=lambda row: (row[2], row[0], row[1]))
