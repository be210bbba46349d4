"""Fixtures for the API tests: settings pointing at the real test services, a live client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from api import create_app
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until


@pytest.fixture
def settings(database_url: str, broker_login: BrokerLogins) -> Settings:
    """Settings for the session's database (clean tables) and broker, where the API's client logs
    in with an api account of its own."""
    login = broker_login("api")
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, mqtt_url=f"mqtt://127.0.0.1:{login.port}",
        api=ApiSettings(mqtt_url=login_url(login)),
    )


@pytest.fixture
def client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client of a running app (lifespan started) sending an admin key, once its broker
    connection is up."""
    with TestClient(create_app(settings), headers=admin_headers) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, timeout=10,
                   message="API healthy")
        yield client
