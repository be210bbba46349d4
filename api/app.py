"""The FastAPI application: ``create_app(settings)`` wires routes, errors, pool and broker.

Nothing here does I/O until the lifespan starts, so the app can be built in tests and CLIs
freely; the database pool and the MQTT client open on startup and close on shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.broker import Broker
from api.deps import Pool
from api.errors import install_error_handlers
from api.routes import build_router
from smartcity.db import database_url
from smartcity.db.connect import async_pool
from smartcity.settings import Settings

__all__ = ["DB_TIMEOUT_S", "create_app"]

# How long a request waits for a pooled connection before it gets a 503.
DB_TIMEOUT_S = 5.0


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
        # A cheap check on checkout replaces connections a database restart has broken,
        # instead of failing the first request after it.
        check=AsyncConnectionPool.check_connection,
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
    install_error_handlers(app)
    app.include_router(build_router())
    return app
