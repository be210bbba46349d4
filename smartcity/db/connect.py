"""Where the database is, and the one place connections to it are opened.

Every connection — ingest's writer, the API's pool, the CLI, backfill, benchmarks — comes from
``connect`` or ``async_pool``, so all carry the same ``application_name`` scheme (visible in
``pg_stat_activity`` as ``smartcity-<purpose>``), the same connect timeout and a UTC session time
zone, whatever the server's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg_pool import AsyncConnectionPool

from smartcity.services import embedded_postgres_url
from smartcity.settings import Settings

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DatabaseNotConfigured",
    "async_pool",
    "connect",
    "connection_options",
    "database_url",
    "embedded_postgres_dir",
    "service_database_url",
]

CONNECT_TIMEOUT_S = 10  # a database that does not answer within this is reported, not waited on


def connection_options(purpose: str) -> dict[str, Any]:
    """Return the keyword arguments every connection of ``purpose`` is opened with."""
    return {
        "application_name": f"smartcity-{purpose}",
        "connect_timeout": CONNECT_TIMEOUT_S,
        # Times come out in UTC whatever the server's TimeZone is; calendar buckets name their
        # zone explicitly in SQL instead of relying on the session's.
        "options": "-c TimeZone=UTC",
    }


def connect(url: str, *, purpose: str, autocommit: bool = False) -> psycopg.Connection[Any]:
    """Open a connection to ``url`` for ``purpose`` (``ingest``, ``cli``, ``backfill`` …)."""
    return psycopg.connect(url, autocommit=autocommit, **connection_options(purpose))


def async_pool(url: str, *, purpose: str, min_size: int = 1, max_size: int = 10,
               timeout: float = 5.0, autocommit: bool = True, statement_timeout_ms: int | None = None,
               **pool_options: Any) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    """Build (unopened) an async pool of connections to ``url`` for ``purpose``.

    ``timeout`` is how long a caller waits for a free connection; ``statement_timeout_ms``, how
    long the server runs one statement before cancelling it; ``pool_options`` pass through to
    psycopg_pool (``check``, ``name`` …).
    """
    options = connection_options(purpose)
    if statement_timeout_ms is not None:
        # A startup option, not a SET: no round trip, and it holds for the connection's life.
        options["options"] += f" -c statement_timeout={int(statement_timeout_ms)}"
    return AsyncConnectionPool(
        url, open=False, min_size=min_size, max_size=max_size, timeout=timeout,
        kwargs={"autocommit": autocommit, **options}, **pool_options,
    )


class DatabaseNotConfigured(RuntimeError):
    """No database URL is set and the embedded cluster has not been created."""


def embedded_postgres_dir(settings: Settings) -> Path:
    """Return the directory of the embedded PostgreSQL cluster."""
    return settings.embedded.data_dir / "postgres"


def database_url(settings: Settings) -> str:
    """Return the URL to connect to: ``SMARTCITY_DATABASE_URL`` or the embedded cluster's.

    Raises:
        DatabaseNotConfigured: neither is available.
    """
    if settings.database_url is not None:
        return settings.database_url
    data_dir = embedded_postgres_dir(settings).resolve()
    try:
        return embedded_postgres_url(data_dir, settings.embedded.postgres_port)
    except FileNotFoundError:
        raise DatabaseNotConfigured(
            f"SMARTCITY_DATABASE_URL is not set and no embedded cluster exists in {data_dir}: "
            "run `smartcity up` once, or set SMARTCITY_DATABASE_URL"
        ) from None


def service_database_url(settings: Settings, service: Literal["ingest", "api", "alerts"]) -> str:
    """Return the URL ``service`` connects with: its own login if set, else ``database_url``'s.

    ``SMARTCITY_INGEST__DATABASE_URL`` and ``SMARTCITY_API__DATABASE_URL`` name logins of the roles
    smartcity_ingest and smartcity_api (README "Database roles"); unset, the service connects as
    every other command does, so a set-up without separate roles keeps working.

    Raises:
        DatabaseNotConfigured: the service has no URL of its own and ``database_url`` has none.
    """
    own: str | None = getattr(settings, service).database_url
    if own is not None:
        return own
    try:
        return database_url(settings)
    except DatabaseNotConfigured as err:
        raise DatabaseNotConfigured(
            f"SMARTCITY_{service.upper()}__DATABASE_URL is not set either; {err}") from None
