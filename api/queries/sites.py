"""Sites for /sites."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.db.queries import sites as site_sql

__all__ = ["list_sites"]


async def list_sites(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
    """Return every site, ordered by id."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(site_sql.SELECT_SITES)
        return await cur.fetchall()
