"""A pooled connection held for a stream's whole life, and a statement's rows in batches from it.

For answers streamed to the client (CSV): the rows never sit in the API's memory all at once, and
the connection is given back however the stream ends: exhausted, failed, closed early, or
cancelled because the client went away.
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

__all__ = ["fetch_batches", "held_connection"]


@contextlib.asynccontextmanager
async def held_connection(pool: Pool) -> AsyncIterator[AsyncConnection[Any]]:
    """Lend a pooled connection until the block ends, however it ends.

    Raises:
        psycopg_pool.PoolTimeout: no connection within the pool's timeout.
    """
    conn = await pool.getconn()
    try:
        yield conn
    finally:
        # Shielded: a client that disconnects cancels the response's task, and an await that the
        # cancellation interrupted here would lose the connection for good. A transaction still
        # open (the stream was cut between batches) is rolled back, which closes its cursor; a
        # connection cut in the middle of a fetch is closed by the pool, which opens another.
        with anyio.CancelScope(shield=True):
            if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
                with contextlib.suppress(psycopg.Error):  # the pool discards what it cannot reset
                    await conn.rollback()
            await pool.putconn(conn)


async def fetch_batches(conn: AsyncConnection[Any], query: str | sql.Composed, params: Any, *,
                        batch_rows: int) -> AsyncGenerator[list[tuple[Any, ...]], None]:
    """Yield the rows of ``query`` in batches of at most ``batch_rows``, from a server-side cursor.

    The connection must be in a transaction (a server-side cursor lives in one).

    Raises:
        psycopg.Error: the statement failed (raised before the first batch).
    """
    async with conn.cursor(name="smartcity_stream", binary=True) as cur:
        await cur.execute(query, params)
        while rows := await cur.fetchmany(batch_rows):
            yield rows
