"""A pooled connection held for a stream's whole life, and a statement's rows in batches from it.

For answers streamed to the client (CSV): the rows never sit in the API's memory all at once, and
the connection is given back however the stream ends: exhausted, failed, closed early, or
cancelled because the client went away. Every await on the database here is shielded from
cancellation: psycopg closes a connection whose operation a cancellation interrupts, so a client
that leaves would cost the pool a connection (and the server a new one). A cancellation waits for
the batch in flight, then takes effect between batches, where the transaction is simply rolled back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import psycopg
from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus

from api.deps import Pool
from smartcity.db.queries import streams as stream_sql

__all__ = ["fetch_batches", "held_snapshot"]


@contextlib.asynccontextmanager
async def held_snapshot(pool: Pool) -> AsyncIterator[AsyncConnection[Any]]:
    """Lend a pooled connection, in a read-only snapshot transaction, until the block ends.

    Raises:
        psycopg_pool.PoolTimeout: no connection within the pool's timeout.
    """
    conn = await pool.getconn()
    try:
        with anyio.CancelScope(shield=True):
            await conn.execute(stream_sql.BEGIN_SNAPSHOT)
        yield conn
    finally:
        with anyio.CancelScope(shield=True):
            if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                with contextlib.suppress(psycopg.Error):  # the pool discards what it cannot reset
                    await conn.rollback()
            await pool.putconn(conn)


async def fetch_batches(conn: AsyncConnection[Any], query: str | sql.Composed, params: Any, *,
                        batch_rows: int) -> AsyncGenerator[list[tuple[Any, ...]], None]:
    """Yield the rows of ``query`` in batches of at most ``batch_rows``, from a server-side cursor.

    The connection must be in a transaction (``held_snapshot``): the cursor lives in it.

    Raises:
        psycopg.Error: the statement failed (raised before the first batch).
    """
    cur = conn.cursor(name="smartcity_stream", binary=True)
    try:
        with anyio.CancelScope(shield=True):
            await cur.execute(query, params)
        while True:
            with anyio.CancelScope(shield=True):
                rows = await cur.fetchmany(batch_rows)
            if not rows:
                return
            yield rows
    finally:
        with anyio.CancelScope(shield=True):
            await cur.close()
