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
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.auth import KeyCache
from api.broker import Broker
from api.deps import Pool
from api.errors import install_error_handlers
from api.limits import BodyLimit, QueryLimits
from api.metrics import ApiMetrics, RequestMetrics
from api.openapi import OPENAPI_TAGS, install_openapi
from api.ratelimit import RateLimits
from api.routes import build_router
from api.routes.alerts import load_alert_rules
from smartcity.db import service_database_url
from smartcity.db.connect import async_pool
from smartcity.settings import Settings

__all__ = ["DB_TIMEOUT_S", "check_pooled_connection", "cors_options", "create_app"]

# How long a request waits for a pooled connection before it gets a 503.
DB_TIMEOUT_S = 5.0

# An example of GET /metrics, shortened.
_METRICS_EXAMPLE = """\
# HELP smartcity_api_requests_total HTTP requests answered, by route template, method and status code
# TYPE smartcity_api_requests_total counter
smartcity_api_requests_total{method="GET",route="/api/v1/devices/{device_id}/latest",status="200"} 1234.0
# HELP smartcity_api_pool_available Idle connections ready to lend
# TYPE smartcity_api_pool_available gauge
smartcity_api_pool_available 3.0
"""


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
        service_database_url(settings, "api"),
        purpose="api",
        min_size=1,
        max_size=settings.api.pool_max_size,
        timeout=DB_TIMEOUT_S,
        autocommit=True,
        # No request holds a connection (and a backend) longer than this, whatever it asked.
        statement_timeout_ms=settings.api.statement_timeout_ms,
        # A check on checkout replaces connections a database restart has broken, instead of
        # failing the first request after it; it is a poll(2) unless the server has spoken.
        check=check_pooled_connection,
        name="api",
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    settings: Settings = app.state.settings
    # Read once: the listing shows what the API started with (a bad file stops it here).
    app.state.alert_rules = load_alert_rules(settings)
    pool = _build_pool(settings)
    # wait=False: the API starts (and reports "database": "error") while the database is down.
    await pool.open(wait=False)
    broker = Broker.from_settings(settings)
    broker.start()
    metrics: ApiMetrics = app.state.metrics
    metrics.pool.pool = pool
    try:
        yield {"pool": pool, "broker": broker}
    finally:
        metrics.pool.pool = None
        await asyncio.to_thread(broker.stop)
        await pool.close()


def cors_options(origins: list[str]) -> dict[str, Any]:
    """Return Starlette's ``CORSMiddleware`` options for ``origins`` (``api.cors_origins``).

    Keys are bearer tokens, not cookies: no credentials mode, and ``Authorization`` is the header a
    page may send (``Content-Type`` too, for ``POST /devices``). A page may read the headers that
    matter to a client: the rate limit's, and a new device's ``Location``.
    """
    return {
        "allow_origins": list(origins),
        "allow_methods": ["GET", "HEAD", "OPTIONS", "POST"],
        "allow_headers": ["Authorization", "Content-Type"],
        "allow_credentials": False,
        "expose_headers": ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                           "Location"],
        "max_age": 600,
    }


class _PrometheusText(Response):
    media_type = CONTENT_TYPE_LATEST


def create_app(settings: Settings) -> FastAPI:
    """Build the API application for ``settings``."""
    app = FastAPI(
        title="Smart City Paser API",
        summary="Sensor and public-service data of Kabupaten Paser",
        version="1",
        lifespan=_lifespan,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.api.key_cache_s)
    app.state.rate_limits = RateLimits.from_settings(settings.api)
    metrics = app.state.metrics = ApiMetrics()
    install_error_handlers(app)
    # Added last, so outermost: the body and query limits refuse before routing, CORS headers go
    # on every answer a listed origin gets (refusals too, so its page can read why), and the
    # request metrics count everything, refusals and 500s included.
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(QueryLimits, max_length=settings.api.max_query_length,
                       max_params=settings.api.max_query_params)
    if settings.api.cors_origins:  # none: no CORS header at all, so no other origin's page reads answers
        app.add_middleware(CORSMiddleware, **cors_options(settings.api.cors_origins))
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.include_router(build_router())

    # Top level and outside build_router(): the contract serves /metrics without a key.
    @app.get("/metrics", tags=["operations"], response_class=_PrometheusText, summary="Prometheus metrics",
             responses={200: {"description": "Every metric in the Prometheus text format",
                              "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"},
                                                                "example": _METRICS_EXAMPLE}}}})
    async def read_metrics() -> Response:
        """Return the API's metrics in the Prometheus text format.

        Requests and latency by route template (`route="unmatched"` for paths no route serves), and
        the database pool's size, idle connections and waiting requests.
        """
        return _PrometheusText(metrics.render())

    install_openapi(app)
    return app
