"""Where the database is: the configured URL, or the embedded cluster's."""

from __future__ import annotations

from pathlib import Path

from smartcity.services import embedded_postgres_url
from smartcity.settings import Settings

__all__ = ["DatabaseNotConfigured", "database_url", "embedded_postgres_dir"]


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
