"""The FastAPI application: ``create_app(settings)`` wires routes, errors, pool and broker.

Nothing here does I/O until the lifespan starts, so the app can be built in tests and CLIs
freely; the database pool and the MQTT client open on startup and close on shutdown.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.auth import KeyCache
from api.broker import Broker
from api.deps import Pool
from api.errors import install_error_handlers
from api.routes import build_router
from smartcity.db import database_url
from smartcity.db.connect import async_pool
from smartcity.settings import Settings

__all__ = ["DB_TIMEOUT_S", "check_pooled_connection", "create_app"]

# How long a request waits for a pooled connection before it gets a 503.
DB_TIMEOUT_S = 5.0


async def check_pooled_connection(conn: AsyncConnection[Any]) -> None:
    """Raise if a pooled connection is broken; a healthy idle one costs a poll, not a round trip.

    An idle connection's socket has nothing to read unless the server sent something unasked:
    the FATAL message and EOF of a terminated backend or a restart, or a notice. Only then is the
    connection probed with psycopg_pool's round trip (``check_connection``), which raises if it is
    broken. Probing every checkout cost a second round trip per ``latest`` request (bench api).

    Raises:
        psycopg.OperationalError: the connection is closed or broken.
    """
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("the pooled connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


def _build_pool(settings: Settings) -> Pool:
    # Every connection opens in UTC (async_pool's session options), so times come out the same
    # whatever the server's TimeZone is; read-only single statements run in autocommit.
    return async_pool(
        database_url(settings),
        purpose="api",
        min_size=1,
        max_size=settings.api.pool_max_size,
        timeout=DB_TIMEOUT_S,
        autocommit=True,
        # A check on checkout replaces connections a database restart has broken, instead of
        # failing the first request after it; it is a poll(2) unless the server has spoken.
        check=check_pooled_connection,
        name="api",
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    settings: Settings = app.state.settings
    pool = _build_pool(settings)
    # wait=False: the API starts (and reports "database": "error") while the database is down.
    await pool.open(wait=False)
    broker = Broker.from_settings(settings)
    broker.start()
    try:
        yield {"pool": pool, "broker": broker}
    finally:
        await asyncio.to_thread(broker.stop)
        await pool.close()


def create_app(settings: Settings) -> FastAPI:
    """Build the API application for ``settings``."""
    app = FastAPI(
        title="Smart City Paser API",
        summary="Sensor and public-service data of Kabupaten Paser",
        version="1",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.api.key_cache_s)
    install_error_handlers(app)
    app.include_router(build_router())
    return app
