"""GET /api/v1/devices, /devices/{id} and /devices/{id}/latest against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from smartcity.broker.accounts import revoke_device
from smartcity.catalog import METRICS
from smartcity.devices import register_device
from tests.api.client import TestClient

_FIELDS = {"device_id", "kind", "site_id", "latitude", "longitude", "status", "last_seen",
           "created_at", "revoked_at"}


@pytest.fixture
def fleet(db: psycopg.Connection) -> None:
    register_device(db, "aq-grogot-01", "air_quality_station", "tanah-grogot", -1.91, 116.19)
    register_device(db, "aq-kuaro-01", "air_quality_station", "kuaro")
    register_device(db, "ws-grogot-01", "weather_station", "tanah-grogot", -1.90, 116.20)
    register_device(db, "bin-grogot-07", "waste_bin", "tanah-grogot")


def _ids(response_json: list[dict[str, object]]) -> list[object]:
    return [device["device_id"] for device in response_json]


def test_devices_lists_every_device_in_id_order(client: TestClient, fleet: None) -> None:
    response = client.get("/api/v1/devices")

    assert response.status_code == 200
    body = response.json()
    assert _ids(body) == ["aq-grogot-01", "aq-kuaro-01", "bin-grogot-07", "ws-grogot-01"]
    assert all(set(device) == _FIELDS for device in body)


@pytest.mark.parametrize(("query", "expected"), [
    ({"site": "tanah-grogot"}, ["aq-grogot-01", "bin-grogot-07", "ws-grogot-01"]),
    ({"kind": "air_quality_station"}, ["aq-grogot-01", "aq-kuaro-01"]),
    ({"site": "tanah-grogot", "kind": "air_quality_station"}, ["aq-grogot-01"]),
    ({"site": "long-kali"}, []),
])
def test_devices_filters_by_site_and_kind(client: TestClient, fleet: None,
                                          query: dict[str, str], expected: list[str]) -> None:
    response = client.get("/api/v1/devices", params=query)

    assert response.status_code == 200
    assert _ids(response.json()) == expected


def test_device_shows_its_fields_with_rfc3339_times(client: TestClient, fleet: None,
                                                     db: psycopg.Connection) -> None:
    seen = datetime(2026, 3, 1, 4, 5, 6, tzinfo=UTC)
    db.execute("UPDATE devices SET status = 'online', last_seen = %s WHERE device_id = %s",
               (seen, "aq-grogot-01"))

    response = client.get("/api/v1/devices/aq-grogot-01")

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("device_id", "kind", "site_id", "latitude", "longitude",
                                 "status")} == {
        "device_id": "aq-grogot-01", "kind": "air_quality_station", "site_id": "tanah-grogot",
        "latitude": -1.91, "longitude": 116.19, "status": "online",
    }
    assert datetime.fromisoformat(body["last_seen"]) == seen
    created = datetime.fromisoformat(body["created_at"])
    assert created.utcoffset() is not None
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_a_revoked_device_says_since_when_and_an_active_one_says_null(
        client: TestClient, fleet: None, db: psycopg.Connection) -> None:
    assert client.get("/api/v1/devices/aq-kuaro-01").json()["revoked_at"] is None
    revocation = revoke_device(db, "aq-kuaro-01")
    body = client.get("/api/v1/devices/aq-kuaro-01").json()
    assert datetime.fromisoformat(body["revoked_at"]) == revocation.revoked_at
    listed = {d["device_id"]: d["revoked_at"] for d in client.get("/api/v1/devices").json()}
    assert listed["aq-kuaro-01"] == body["revoked_at"] and listed["aq-grogot-01"] is None


def test_device_without_coordinates_or_contact(client: TestClient, fleet: None) -> None:
    body = client.get("/api/v1/devices/aq-kuaro-01").json()

    assert (body["latitude"], body["longitude"]) == (None, None)
    assert (body["status"], body["last_seen"]) == ("unknown", None)


def test_latest_reports_the_newest_value_of_each_metric_with_units(
    client: TestClient, fleet: None, db: psycopg.Connection
) -> None:
    device = db.execute("SELECT id FROM devices WHERE device_id = 'aq-grogot-01'").fetchone()[0]
    older = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    newer = older + timedelta(minutes=1)
    pm25, co = METRICS["pm25"].id, METRICS["co"].id
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, device, metric, value) VALUES (%s, %s, %s, %s)",
            [(older, device, pm25, 40.0), (newer, device, pm25, 35.5), (older, device, co, 900.0)],
        )
        cur.executemany(
            "INSERT INTO latest_readings (device, metric, time, value) VALUES (%s, %s, %s, %s)",
            [(device, pm25, newer, 35.5), (device, co, older, 900.0)],
        )

    response = client.get("/api/v1/devices/aq-grogot-01/latest")

    assert response.status_code == 200
    body = response.json()
    assert body["device_id"] == "aq-grogot-01"
    assert set(body["metrics"]) == {"pm25", "co"}
    assert body["metrics"]["pm25"]["value"] == 35.5
    assert body["metrics"]["pm25"]["unit"] == "µg/m³"
    assert datetime.fromisoformat(body["metrics"]["pm25"]["time"]) == newer
    assert body["metrics"]["co"] == {"value": 900.0, "unit": "µg/m³",
                                     "time": "2026-03-01T04:00:00Z"}


def test_latest_of_a_silent_device_is_empty(client: TestClient, fleet: None) -> None:
    response = client.get("/api/v1/devices/ws-grogot-01/latest")

    assert response.status_code == 200
    assert response.json() == {"device_id": "ws-grogot-01", "metrics": {}}


@pytest.mark.parametrize("path", ["/api/v1/devices/no-such-device",
                                  "/api/v1/devices/no-such-device/latest"])
def test_unknown_device_is_a_404_problem(client: TestClient, fleet: None, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:smartcity:problem:not-found",
        "title": "Resource not found",
        "status": 404,
        "detail": "device 'no-such-device' is not registered",
        "instance": path,
    }


@pytest.mark.parametrize(("name", "value"), [("kind", "toaster"), ("site", "jakarta")])
def test_unknown_kind_or_site_is_a_422_problem_naming_the_parameter(
    client: TestClient, name: str, value: str
) -> None:
    response = client.get("/api/v1/devices", params={name: value})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:smartcity:problem:invalid-parameter"
    assert body["status"] == 422
    assert body["title"] == "Invalid request parameter"
    assert f"'{name}'" in body["detail"] and value in body["detail"]
    assert body["errors"][0]["in"] == "query"
    assert body["errors"][0]["name"] == name
