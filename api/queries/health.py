"""SQL behind the health check."""

from __future__ import annotations

from psycopg import AsyncConnection

__all__ = ["ping"]


async def ping(conn: AsyncConnection) -> None:
    """Run a trivial query, raising if the database does not answer."""
    await conn.execute("SELECT 1")
