"""GET /api/v1/health against the real database and broker, and with each of them missing."""

from __future__ import annotations

from api import create_app
from smartcity.services import EmbeddedMosquitto, free_port
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until


def test_health_is_ok_when_database_and_broker_are_up(client: TestClient) -> None:
    response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert response.headers["cache-control"] == "no-store"


def test_health_reports_a_broker_nobody_listens_on(database_url: str) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/health")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "broker": "error"}


def test_health_reports_an_unreachable_database(broker_login: BrokerLogins) -> None:
    login = broker_login("api")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1",
        mqtt_url=f"mqtt://127.0.0.1:{login.port}", api=ApiSettings(mqtt_url=login_url(login)),
    )
    with TestClient(create_app(settings)) as client:
        health = wait_until(lambda: client.get("/api/v1/health").json()["broker"] == "ok" and
                            client.get("/api/v1/health"), message="API's broker client logged in")

    assert health.status_code == 503
    assert health.json() == {"status": "degraded", "database": "error", "broker": "ok"}


def test_health_follows_the_broker_going_down_and_coming_back(
    database_url: str, fresh_mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins
) -> None:
    login = broker_login("api", fresh_mosquitto)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, mqtt_url=fresh_mosquitto.url,
        api=ApiSettings(mqtt_url=login_url(login)),
    )
    with TestClient(create_app(settings)) as client:
        def broker_state() -> str:
            return str(client.get("/api/v1/health").json()["broker"])

        wait_until(lambda: broker_state() == "ok", timeout=10, message="broker connected")
        fresh_mosquitto.stop()
        wait_until(lambda: broker_state() == "error", timeout=10, message="broker loss seen")
        fresh_mosquitto.start()
        wait_until(lambda: broker_state() == "ok", timeout=15, message="broker reconnected")
        assert client.get("/api/v1/health").status_code == 200
