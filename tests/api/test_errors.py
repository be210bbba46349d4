"""Problem documents (RFC 9457) for errors no resource route raises on purpose."""

from __future__ import annotations

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from api import create_app
from api.broker import BrokerUnavailable
from smartcity.settings import Settings
from tests.api.client import TestClient


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert response.json()["instance"] == "/api/v1/nothing-here"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/api/v1/sites")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Method Not Allowed"


def test_unexpected_error_is_a_500_problem_without_internals(settings: Settings) -> None:
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internal state")

    app.add_api_route("/api/v1/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/explode")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500
    assert {"type", "title", "detail"} <= set(body)
    assert "secret" not in response.text


@pytest.mark.parametrize("exc", [
    PoolTimeout("couldn't get a connection after 5.00 sec"),
    psycopg.OperationalError("connection refused"),
    BrokerUnavailable("broker 127.0.0.1:1883 is not connected"),
])
def test_unreachable_services_are_503_problems(settings: Settings, exc: Exception) -> None:
    # A route that fails the way a pooled connection or publish fails when the service is down;
    # the real outage is covered by the health tests (waiting out the pool timeout costs 5 s).
    app = create_app(settings)

    async def fail() -> None:
        raise exc

    app.add_api_route("/api/v1/fail", fail)
    with TestClient(app) as client:
        response = client.get("/api/v1/fail")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"] == "urn:smartcity:problem:service-unavailable"
    assert body["status"] == 503
    assert str(exc) not in body["detail"]
