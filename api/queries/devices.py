"""Devices for /devices: the registry and each device's latest values."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.db.queries import devices as device_sql

__all__ = ["get_device", "latest_values", "list_devices"]


async def list_devices(conn: AsyncConnection[Any], site_id: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
    """Return the devices, optionally of one site and/or kind, ordered by device id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(device_sql.SELECT_DEVICES, {"site": site_id, "kind": kind})
        return await cur.fetchall()


async def get_device(conn: AsyncConnection[Any], device_id: str) -> dict[str, Any] | None:
    """Return the device called ``device_id``, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(device_sql.SELECT_DEVICE, (device_id,))
        return await cur.fetchone()


async def latest_values(conn: AsyncConnection[Any], device_id: str) -> list[dict[str, Any]] | None:
    """Return the newest value of each metric of a device (name, unit, value, time).

    None means the device is unknown; an empty list, that it has reported nothing yet.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(device_sql.SELECT_LATEST_VALUES, (device_id,))
        rows = await cur.fetchall()
    if not rows:
        return None
    # A known device that has reported nothing comes back as one all-NULL row.
    return [row for row in rows if row["name"] is not None]
