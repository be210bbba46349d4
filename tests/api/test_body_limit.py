"""The body limit (api.limits.BodyLimit): a body over api.max_body_bytes is a 413 problem and nothing
of it is acted on, whether its size is declared or it arrives chunked."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from api import create_app
from smartcity.settings import Settings
from tests.api.client import TestClient

PROBLEM = "application/problem+json"
DEVICE = {"id": "river-kandilo-02", "kind": "river_level_sensor", "site": "tanah-grogot"}


@pytest.fixture
def small_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """An app that reads bodies of at most 200 bytes."""
    small = settings.model_copy(update={"api": settings.api.model_copy(update={"max_body_bytes": 200})})
    with TestClient(create_app(small), headers=admin_headers) as client:
        yield client


def _devices(db: psycopg.Connection) -> int:
    row = db.execute("SELECT count(*) FROM devices").fetchone()
    assert row is not None
    return int(row[0])


def _padded(size: int) -> bytes:
    """A JSON body of exactly ``size`` bytes registering DEVICE (spaces are valid JSON padding)."""
    body = b'{"id": "river-kandilo-02", "kind": "river_level_sensor", "site": "tanah-grogot"}'
    return body + b" " * (size - len(body))


def test_a_declared_length_over_the_limit_is_a_413_and_registers_nothing(
        small_client: TestClient, db: psycopg.Connection) -> None:
    response = small_client.post("/api/v1/devices", content=_padded(201),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["detail"] == "the request body holds 201 bytes, more than the limit of 200"
    assert body["max_bytes"] == 200
    assert _devices(db) == 0
    # At the limit, the same body registers the device.
    created = small_client.post("/api/v1/devices", content=_padded(200),
                                headers={"content-type": "application/json"})
    assert created.status_code == 201, created.text
    assert _devices(db) == 1


def test_a_chunked_body_that_grows_past_the_limit_is_a_413(
        small_client: TestClient, db: psycopg.Connection) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield _padded(150)
        yield b" " * 100

    response = small_client.post("/api/v1/devices", content=chunks(),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    # Counted as it arrived (no length was declared): the bound passed at the second chunk.
    assert response.json()["detail"] == ("the request body holds at least 250 bytes, more than the"
                                         " limit of 200")
    assert _devices(db) == 0


def test_a_get_with_a_large_body_is_refused_too(small_client: TestClient) -> None:
    response = small_client.request("GET", "/api/v1/sites", content=b"x" * 1000)
    assert response.status_code == 413
    assert response.json()["max_bytes"] == 200


def test_the_default_takes_a_registration_and_refuses_a_megabyte(
        client: TestClient, db: psycopg.Connection) -> None:
    assert client.post("/api/v1/devices", json=DEVICE).status_code == 201
    huge = client.post("/api/v1/devices", content=_padded(1 << 20),
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert huge.json()["max_bytes"] == 65536
    assert _devices(db) == 1
