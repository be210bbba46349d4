"""Dependencies of the routes, as ``Annotated`` aliases; tests override them on the app.

The pool and the broker client live in the lifespan state (``api.app``), settings on the app.
Even the trivial getters are ``async def``: FastAPI runs a plain ``def`` dependency in a worker
thread, and that hand-off cost more per request than the ``latest`` query (bench api's profile).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeAlias

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.broker import Broker
from smartcity.settings import Settings

__all__ = [
    "BrokerDep",
    "ConnDep",
    "Pool",
    "PoolDep",
    "SettingsDep",
    "get_broker",
    "get_conn",
    "get_pool",
    "get_settings",
]

Pool: TypeAlias = AsyncConnectionPool[AsyncConnection[Any]]


async def get_settings(request: Request) -> Settings:
    """Return the settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> Pool:
    """Return the app's connection pool."""
    pool: Pool = request.state.pool
    return pool


async def get_broker(request: Request) -> Broker:
    """Return the app's MQTT client."""
    broker: Broker = request.state.broker
    return broker


PoolDep = Annotated[Pool, Depends(get_pool)]


async def get_conn(pool: PoolDep) -> AsyncIterator[AsyncConnection[Any]]:
    """Lend a pooled connection for one request.

    Raises:
        psycopg_pool.PoolTimeout: no connection within the pool's timeout (reported as 503).
    """
    async with pool.connection() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
# scope="function": give the connection back as soon as the route returns, not after the
# response has been sent.
ConnDep = Annotated[AsyncConnection[Any], Depends(get_conn, scope="function")]
BrokerDep = Annotated[Broker, Depends(get_broker)]
