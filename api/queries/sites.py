"""SQL behind /sites."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

__all__ = ["list_sites"]


async def list_sites(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Return every site, ordered by id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT site_id, name, latitude, longitude, timezone FROM sites ORDER BY site_id"
        )
        return await cur.fetchall()
