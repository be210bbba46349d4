"""Field types and URL checks the settings sections share."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field

from smartcity.broker_url import BrokerUrlError, parse_broker_url

__all__ = [
    "Port",
    "mqtt_url_setting",
    "postgres_url_setting",
]


Port = Annotated[int, Field(ge=1, le=65535)]


def postgres_url_setting(value: str | None, key: str) -> str | None:
    """Return a database URL setting as given, or None when empty; refuse any other scheme."""
    if isinstance(value, str) and not value.strip():
        return None  # an empty variable, as .env.example writes the unset ones: not given
    if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{key} must start with postgresql://")
    return value


def mqtt_url_setting(value: str | None, key: str) -> str | None:
    """Return a broker URL setting as given, or None when empty; refuse what no client can use."""
    if isinstance(value, str) and not value.strip():
        return None
    if value is not None:
        try:
            parse_broker_url(value)
        except BrokerUrlError as err:
            raise ValueError(f"{key}: {err}") from None
    return value
