"""A street-light command the whole way: API POST → real Mosquitto → a simulated light logged in as
itself → its telemetry → a real ingest worker → the database → the command acknowledged, listed per
device. Bad payloads on the light's commands topic do not stop it obeying the next good one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ingest.pipeline import IngestWorker
from simulators.fleet import DeviceSpec
from simulators.publish import FleetPublisher
from smartcity.apikeys import Scope, create_key
from smartcity.broker_url import parse_broker_url
from smartcity.contract import commands_topic, status_topic
from smartcity.services import EmbeddedMosquitto
from tests.api.client import TestClient
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def light(broker_login: BrokerLogins) -> Iterator[DeviceSpec]:
    """A street light of Tanah Grogot, registered with a login of its own; its retained status is
    cleared afterwards, so later tests' ingest workers do not hear a device they do not know."""
    spec = DeviceSpec(f"light-rt{uuid.uuid4().hex[:6]}-01", "street_light", "tanah-grogot",
                      -1.9, 116.19)
    [registered] = broker_login.fleet([spec])
    gateway = broker_login("gateway")
    yield registered
    with mqtt_publisher(gateway) as client:
        publish(client, status_topic(registered.device_id), b"", retain=True)


@pytest.fixture
def simulated(light: DeviceSpec, mosquitto: EmbeddedMosquitto) -> Iterator[FleetPublisher]:
    """The light running as a simulated device, listening to its commands topic."""
    # An hour between rounds: every report in these tests is the light answering a command.
    with FleetPublisher([light], parse_broker_url(mosquitto.url), seed=21, interval_s=3600) as publisher:
        assert publisher.wait_connected(20) and publisher.wait_listening(20)
        yield publisher


@pytest.fixture
def writer(client: TestClient, database_url: str) -> TestClient:
    """The API client with a write key instead of the admin one."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        client.headers["Authorization"] = f"Bearer {create_key(conn, Scope.WRITE, 'round trip').key}"
    return client


def _acknowledged(client: TestClient, body: dict[str, Any], light: DeviceSpec) -> dict[str, Any]:
    answer = client.post(f"/api/v1/devices/{light.device_id}/commands", json=body)
    assert answer.status_code == 202, answer.text
    location = answer.headers["location"]

    def settled() -> dict[str, Any] | None:
        command: dict[str, Any] = client.get(location).json()
        return command if command["outcome"] != "pending" else None

    command = wait_until(settled, timeout=15, message=f"{body} settled")
    assert command["outcome"] == "acknowledged", command
    return command


def _reading_at(db: psycopg.Connection, light: DeviceSpec, metric: str, at: str) -> float:
    row = db.execute(
        "SELECT r.value FROM readings r JOIN devices d ON d.id = r.device JOIN metrics m"
        " ON m.metric_id = r.metric WHERE d.device_id = %s AND m.name = %s AND r.time = %s",
        (light.device_id, metric, datetime.fromisoformat(at))).fetchone()
    assert row is not None
    return float(row[0])


def test_on_off_dim_and_a_schedule_round_trip_through_a_simulated_light(
        writer: TestClient, worker: IngestWorker, simulated: FleetPublisher, light: DeviceSpec,
        db: psycopg.Connection) -> None:
    on = _acknowledged(writer, {"action": "on"}, light)
    full_w = _reading_at(db, light, "lamp_power", on["outcome_at"])
    assert _reading_at(db, light, "lamp_on", on["outcome_at"]) == 1.0 and 59 < full_w < 125
    off = _acknowledged(writer, {"action": "off"}, light)
    assert _reading_at(db, light, "lamp_power", off["outcome_at"]) == 0.0
    dim = _acknowledged(writer, {"action": "dim", "level": 40}, light)
    assert _reading_at(db, light, "lamp_power", dim["outcome_at"]) == pytest.approx(0.4 * full_w, rel=0.08)
    # A schedule in the site's local time: dimmed to 20 % since a minute ago, off in three hours.
    local = datetime.now(ZoneInfo("Asia/Makassar"))
    schedule = [{"at": (local - timedelta(minutes=1)).strftime("%H:%M"), "action": "dim", "level": 20},
                {"at": (local + timedelta(hours=3)).strftime("%H:%M"), "action": "off"}]
    scheduled = _acknowledged(writer, {"action": "schedule", "schedule": schedule}, light)
    assert _reading_at(db, light, "lamp_power", scheduled["outcome_at"]) == pytest.approx(
        0.2 * full_w, rel=0.08)
    # Each acknowledged by the light's own report, after the command and before its deadline.
    for command in (on, off, dim, scheduled):
        assert command["issued_at"] < command["outcome_at"] <= command["deadline"]
    listing = writer.get(f"/api/v1/devices/{light.device_id}/commands").json()["items"]
    assert [(item["action"], item["outcome"]) for item in listing] == [
        ("schedule", "acknowledged"), ("dim", "acknowledged"), ("off", "acknowledged"),
        ("on", "acknowledged")]
    assert simulated.stats().dropped == 0


def test_bad_payloads_on_the_commands_topic_do_not_stop_the_light(
        writer: TestClient, worker: IngestWorker, simulated: FleetPublisher, light: DeviceSpec,
        broker_login: BrokerLogins) -> None:
    # The API's broker role is the one that may publish commands: send it garbage that way.
    bad = [b"not json", b"{}", b'{"command_id": "x", "action": "on"}', b"\xff" * 100,
           b'{"command_id": "cmd-bad-00001", "action": "dim", "level": 900,'
           b' "issued_at": "2026-11-30T04:00:00Z"}']
    with mqtt_publisher(broker_login("api")) as client:
        for payload in bad:
            publish(client, commands_topic(light.device_id), payload)
    wait_until(lambda: simulated.commands.ignored == len(bad), timeout=10,
               message="every bad command ignored")
    assert simulated.connected_count == 1
    _acknowledged(writer, {"action": "dim", "level": 10}, light)
