"""POST /api/v1/devices against the real database and broker: the device, its login shown once,
refusals that store nothing, and the device's readings then accepted by a real ingest worker."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from ingest.batch import InboundMessage
from ingest.pipeline import IngestWorker, route_batch
from ingest.replay import replay_unknown_devices
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.catalog import DEVICE_KINDS, SITES
from smartcity.contract import telemetry_topic
from smartcity.credentials import verify_password
from smartcity.services import EmbeddedMosquitto
from tests.api.client import TestClient
from tests.logins import BrokerLogins
from tests.services import wait_until

URL = "/api/v1/devices"
RIVER = {"id": "river-kandilo-02", "kind": "river_level_sensor", "site": "tanah-grogot",
         "lat": -1.905, "lon": 116.196}
RECORD_FIELDS = {"device_id", "kind", "site_id", "latitude", "longitude", "status", "last_seen",
                 "created_at", "revoked_at"}


def _stored(db: psycopg.Connection, device_id: str) -> tuple[Any, ...] | None:
    return db.execute("SELECT kind, site_id, latitude, longitude, mqtt_username, mqtt_password_hash"
                      " FROM devices WHERE device_id = %s", (device_id,)).fetchone()


def test_registration_returns_the_device_and_its_login_once(
        client: TestClient, db: psycopg.Connection) -> None:
    response = client.post(URL, json=RIVER)

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/devices/river-kandilo-02"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == RECORD_FIELDS | {"mqtt_username", "mqtt_password"}
    password = body.pop("mqtt_password")
    assert body.pop("mqtt_username") == "river-kandilo-02" and len(password) >= 32
    # The record fields are exactly what GET /devices/{id} shows, and that shows no login.
    shown = client.get(response.headers["location"])
    assert shown.status_code == 200 and shown.json() == body
    assert (body["kind"], body["site_id"], body["latitude"], body["longitude"], body["status"],
            body["last_seen"]) == ("river_level_sensor", "tanah-grogot", -1.905, 116.196, "unknown", None)
    assert password not in shown.text and password not in client.get(URL).text
    assert not any("password" in key or "mqtt" in key for key in shown.json())
    # Only the Mosquitto $7$ hash is stored, and it is the password's.
    kind, site, lat, lon, username, hashed = _stored(db, "river-kandilo-02") or ()
    assert (kind, site, lat, lon, username) == ("river_level_sensor", "tanah-grogot", -1.905, 116.196,
                                                "river-kandilo-02")
    assert hashed.startswith("$7$") and password not in hashed and verify_password(password, hashed)


def test_coordinates_are_optional(client: TestClient) -> None:
    response = client.post(URL, json={"id": "bin-kuaro-07", "kind": "waste_bin", "site": "kuaro"})

    assert response.status_code == 201, response.text
    assert (response.json()["latitude"], response.json()["longitude"]) == (None, None)


def test_the_password_never_reaches_the_logs(client: TestClient,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.post(URL, json=RIVER)
        client.get(response.headers["location"])

    password = response.json()["mqtt_password"]
    assert caplog.records  # the capture did see the request's log lines (httpx, the API)
    assert all(password not in record.getMessage() and password not in str(record.args)
               for record in caplog.records)


def test_an_existing_id_is_a_409_and_keeps_the_first_login(
        client: TestClient, db: psycopg.Connection) -> None:
    first = client.post(URL, json=RIVER).json()
    before = _stored(db, RIVER["id"])

    response = client.post(URL, json={**RIVER, "kind": "weather_station", "site": "kuaro"})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["device_id"]) == (409, RIVER["id"])
    assert "registered already" in problem["detail"] and "mqtt_password" not in problem
    after = _stored(db, RIVER["id"])
    assert after is not None and after == before  # nothing changed: the first password still works
    assert verify_password(first["mqtt_password"], after[-1])


def _known(names: Mapping[str, object]) -> str:
    return ", ".join(names)


@pytest.mark.parametrize(("body", "name", "words"), [
    ({**RIVER, "kind": "lava_lamp"}, "kind",
     f"unknown device kind 'lava_lamp'; known: {_known(DEVICE_KINDS)}"),
    ({**RIVER, "site": "jakarta"}, "site", f"unknown site 'jakarta'; known: {_known(SITES)}"),
    ({**RIVER, "id": "River Kandilo"}, "id", "pattern"),
    ({**RIVER, "id": "ab"}, "id", "pattern"),              # too short
    ({**RIVER, "id": "a" * 65}, "id", "pattern"),          # too long
    ({**RIVER, "id": "river/../x"}, "id", "pattern"),
    ({**RIVER, "id": "river-01\n"}, "id", "pattern"),
    ({**RIVER, "id": "smartcity-ingest-1"}, "body", "reserved for the platform's service accounts"),
    ({**RIVER, "lat": 95}, "lat", "less than or equal to 90"),
    ({**RIVER, "lon": -181}, "lon", "greater than or equal to -180"),
    ({**RIVER, "lon": None}, "body", "both lat and lon"),
    ({"id": "river-kandilo-02", "kind": "river_level_sensor", "site_id": "kuaro"}, "site",
     "required"),
    ({**RIVER, "latitude": -1.9}, "latitude", "Extra inputs"),
    ({key: value for key, value in RIVER.items() if key != "id"}, "id", "required"),
])
def test_a_bad_body_is_a_422_naming_the_field_and_stores_nothing(
        client: TestClient, db: psycopg.Connection, body: dict[str, Any], name: str, words: str) -> None:
    response = client.post(URL, json=body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(e["name"] == name and words in e["message"] for e in errors), errors
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (0,)


@pytest.mark.parametrize("raw", [b"{not json", b"", b'["river-kandilo-02"]',
                                 b'{"id": "river-kandilo-02", "kind": "river_level_sensor",'
                                 b' "site": "tanah-grogot", "lat": NaN, "lon": 1}'])
def test_a_body_that_is_no_device_object_is_a_422(client: TestClient, db: psycopg.Connection,
                                                  raw: bytes) -> None:
    response = client.post(URL, content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def _connect_as(port: int, username: str, password: str) -> mqtt.Client:
    """Return a v5 client that tried to log in (connected or refused: see ``is_connected``)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    answered = threading.Event()
    client.on_connect = lambda *args: answered.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert answered.wait(10), "the broker did not answer CONNECT"
    return client


def test_the_login_works_at_mosquitto_and_ingest_stores_the_devices_reading(
        client: TestClient, worker: IngestWorker, mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins) -> None:
    # Registered over HTTP, the device is let in by the broker the registry runs: no other step.
    registered = client.post(URL, json=RIVER).json()
    broker_login.device(registered["mqtt_username"], registered["mqtt_password"])
    refused = _connect_as(mosquitto.port, registered["mqtt_username"], "not-the-password")
    assert not refused.is_connected()
    refused.loop_stop()

    device = _connect_as(mosquitto.port, registered["mqtt_username"], registered["mqtt_password"])
    try:
        assert device.is_connected()
        device.publish(telemetry_topic(RIVER["id"]), b'{"metrics": {"water_level": 2.41}}',
                       qos=1).wait_for_publish(timeout=5)
    finally:
        device.disconnect()
        device.loop_stop()

    latest = wait_until(
        lambda: client.get(f"{URL}/{RIVER['id']}/latest").json()["metrics"].get("water_level"),
        message="the device's reading stored")
    assert latest["value"] == 2.41 and latest["unit"] == "m"


def test_readings_quarantined_before_registration_are_stored_by_replay(
        client: TestClient, database_url: str, db: psycopg.Connection) -> None:
    received = float(int(time.time()) - 600)
    writer = Writer(database_url)
    try:
        message = InboundMessage(telemetry_topic(RIVER["id"]), b'{"metrics": {"water_level": 1.5}}',
                                 received)
        rows = route_batch(writer, [message], TimeWindow(300, 86400), threading.Event())
        assert rows is not None and writer.store(rows, threading.Event()) is not None
    finally:
        writer.close()
    assert [i["reason"] for i in client.get("/api/v1/quarantine").json()["items"]] == ["unknown_device"]

    assert client.post(URL, json=RIVER).status_code == 201
    result = replay_unknown_devices(database_url, TimeWindow(300, 86400), device_id=RIVER["id"])

    assert (result.messages_replayed, result.readings_stored) == (1, 1)
    assert client.get(f"{URL}/{RIVER['id']}/latest").json()["metrics"]["water_level"]["value"] == 1.5
    assert client.get("/api/v1/quarantine").json()["items"] == []
