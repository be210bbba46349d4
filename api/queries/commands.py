"""Commands for /devices/{id}/commands and /commands/{id}: settle outcomes, then read them."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.commands import SETTLE_GRACE
from smartcity.db.queries import commands as command_sql

__all__ = ["device_exists", "get_command", "list_commands", "settle"]


async def settle(conn: AsyncConnection[Any], *, device_id: str | None = None,
                 command_id: str | None = None) -> int:
    """Settle the pending commands that can be (all, one device's or one); return how many."""
    cur = await conn.execute(command_sql.SETTLE, {"device": device_id, "command": command_id,
                                                  "grace": SETTLE_GRACE})
    return len(await cur.fetchall())


async def device_exists(conn: AsyncConnection[Any], device_id: str) -> bool:
    """Tell whether a device has this id."""
    cur = await conn.execute(command_sql.SELECT_TARGET, (device_id,))
    return await cur.fetchone() is not None


async def get_command(conn: AsyncConnection[Any], command_id: str) -> dict[str, Any] | None:
    """Return one command with its outcome settled as far as it can be, or None."""
    await settle(conn, command_id=command_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(command_sql.SELECT_COMMAND, (command_id,))
        return await cur.fetchone()


async def list_commands(conn: AsyncConnection[Any], device_id: str, *, limit: int,
                        before: int | None) -> list[dict[str, Any]]:
    """Return up to ``limit`` of a device's commands older than id ``before``, newest first."""
    await settle(conn, device_id=device_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(command_sql.SELECT_DEVICE_COMMANDS,
                          {"device": device_id, "before": before, "limit": limit})
        return await cur.fetchall()
