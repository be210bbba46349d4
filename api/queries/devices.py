"""SQL behind /devices: the registry and each device's latest values."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.devices import SELECT_DEVICE, SELECT_DEVICES

__all__ = ["get_device", "latest_values", "list_devices"]


async def list_devices(conn: AsyncConnection, site_id: str | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
    """Return the devices, optionally of one site and/or kind, ordered by device id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_DEVICES, {"site": site_id, "kind": kind})
        return await cur.fetchall()


async def get_device(conn: AsyncConnection, device_id: str) -> dict[str, Any] | None:
    """Return the device called ``device_id``, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_DEVICE, (device_id,))
        return await cur.fetchone()


async def latest_values(conn: AsyncConnection, device_id: str) -> list[dict[str, Any]] | None:
    """Return the newest value of each metric of a device (name, unit, value, time).

    None means the device is unknown; an empty list, that it has reported nothing yet.
    """
    # One round trip: the LEFT JOIN yields a single all-NULL row for a known, silent device
    # and no row at all for an unknown one.
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT m.name, m.unit, l.value, l.time"
            " FROM devices d"
            " LEFT JOIN (latest_readings l JOIN metrics m ON m.metric_id = l.metric)"
            "   ON l.device = d.id"
            " WHERE d.device_id = %s"
            " ORDER BY m.metric_id",
            (device_id,),
        )
        rows = await cur.fetchall()
    if not rows:
        return None
    return [row for row in rows if row["name"] is not None]
