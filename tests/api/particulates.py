"""A day of PM2.5 and PM10 for one registered device, stored through ingest's writer: enough for
every example of the API's document to answer 2xx (aggregates, readings, ISPU)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS

__all__ = ["store_a_day_of_particulates"]


def store_a_day_of_particulates(url: str, conn: psycopg.Connection, device_id: str) -> None:
    """Store PM2.5 and PM10 of ``device_id`` every 30 minutes over the last 24 hours."""
    device = conn.execute("SELECT id FROM devices WHERE device_id = %s", (device_id,)).fetchone()
    assert device is not None, f"{device_id} is not registered"
    rows = Rows()
    now = datetime.now(UTC)
    for minutes in range(0, 24 * 60, 30):
        epoch = (now - timedelta(minutes=minutes)).timestamp()
        rows.readings.append((epoch, device[0], METRICS["pm25"].id, 20.0 + minutes % 7))
        rows.readings.append((epoch, device[0], METRICS["pm10"].id, 40.0 + minutes % 11))
    writer = Writer(url)
    try:
        writer.write_rows(rows)
    finally:
        writer.close()
