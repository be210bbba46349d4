"""The database probe behind the health check."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from smartcity.db.queries import health as health_sql

__all__ = ["ping"]


async def ping(conn: AsyncConnection[Any]) -> None:
    """Run a trivial query, raising if the database does not answer."""
    await conn.execute(health_sql.PING)
