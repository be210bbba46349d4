"""Commands through the API against the real database and broker: what is stored, what is published,
what is refused (and that a refusal stores nothing), and how outcomes are settled from readings.

Outcomes here are settled from readings written the way ingest writes them; the whole way through a
simulated light and an ingest worker is tests/test_command_round_trip.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from api import create_app
from smartcity.apikeys import Scope, create_key
from smartcity.commands import SETTLE_GRACE
from smartcity.contract import Command, commands_topic
from smartcity.devices import register_device
from smartcity.services import free_port
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.api.readings_seed import write_readings
from tests.logins import BrokerLogins, login_url
from tests.mqtt import mqtt_subscriber
from tests.services import wait_until

LIGHT, METER = "light-grogot-01", "meter-grogot-01"


def _headers(database_url: str, scope: Scope) -> dict[str, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {"Authorization": f"Bearer {create_key(conn, scope, 'commands test').key}"}


@pytest.fixture
def devices(db: psycopg.Connection) -> dict[str, str]:
    """A street light and a water meter of Tanah Grogot; each id → its MQTT password."""
    return {LIGHT: register_device(db, LIGHT, "street_light", "tanah-grogot").mqtt_password,
            METER: register_device(db, METER, "water_meter", "tanah-grogot").mqtt_password}


@contextmanager
def _client(settings: Settings, headers: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=headers) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, timeout=10,
                   message="API healthy")
        yield client


@pytest.fixture
def writer(settings: Settings, database_url: str, devices: dict[str, str]) -> Iterator[TestClient]:
    """A running API (commands time out after 60 s) and a client with a write key."""
    with _client(settings, _headers(database_url, Scope.WRITE)) as client:
        yield client


def _stored(db: psycopg.Connection) -> list[tuple[str, str, str]]:
    return db.execute("SELECT device_id, action, outcome FROM commands ORDER BY id").fetchall()


def _keys(db: psycopg.Connection) -> dict[str, int]:
    return dict(db.execute("SELECT device_id, id FROM devices").fetchall())


def test_a_command_is_stored_published_as_the_contract_says_and_listed(
        writer: TestClient, db: psycopg.Connection, broker_login: BrokerLogins,
        devices: dict[str, str]) -> None:
    # The light listens as itself, as a real one would.
    login = broker_login.device(LIGHT, devices[LIGHT])
    with mqtt_subscriber(login, commands_topic(LIGHT)) as received:
        before = datetime.now(UTC)
        answer = writer.post(f"/api/v1/devices/{LIGHT}/commands", json={"action": "dim", "level": 40})
        message = received.get(timeout=5)

    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert answer.headers["location"] == f"/api/v1/commands/{body['command_id']}"
    assert (body["device_id"], body["action"], body["level"]) == (LIGHT, "dim", 40)
    assert body["outcome"] == "pending"
    issued = datetime.fromisoformat(body["issued_at"])
    assert before <= issued <= datetime.now(UTC)
    assert datetime.fromisoformat(body["deadline"]) - issued == timedelta(seconds=60)
    assert body["published_at"] is not None  # the broker's PUBACK came within the wait
    # On the wire: the contract's Command, QoS 1, not retained.
    command = Command.model_validate_json(message.payload)
    assert (message.qos, message.retain) == (1, False)
    assert (command.command_id, command.action, command.level) == (body["command_id"], "dim", 40)
    assert command.issued_at == issued
    assert _stored(db) == [(LIGHT, "dim", "pending")]
    listing = writer.get(f"/api/v1/devices/{LIGHT}/commands").json()
    assert [item["command_id"] for item in listing["items"]] == [body["command_id"]]
    assert writer.get(answer.headers["location"]).json() == body


@pytest.mark.parametrize(("device", "body", "status", "says"), [
    ("light-nowhere-01", {"action": "on"}, 404, "'light-nowhere-01' is not registered"),
    (METER, {"action": "on"}, 422,
     "water_meter accepts no commands; street_light accepts on, off, dim, schedule"),
    (LIGHT, {"action": "dim", "level": 150}, 422, "less than or equal to 100"),
    (LIGHT, {"action": "dim"}, 422, "'dim' needs a level from 0 to 100"),
    (LIGHT, {"action": "on", "level": 20}, 422, "'on' takes no level"),
    (LIGHT, {"action": "schedule"}, 422, "'schedule' needs a schedule"),
    (LIGHT, {"action": "schedule", "schedule": [{"at": "25:00", "action": "on"}]}, 422, "HH:MM"),
    (LIGHT, {"action": "blink"}, 422, "'on', 'off', 'dim' or 'schedule'"),
    (LIGHT, {"action": "on", "command_id": "mine-12345"}, 422, "Extra inputs are not permitted"),
])
def test_a_bad_command_is_refused_with_a_problem_and_nothing_is_stored(
        writer: TestClient, db: psycopg.Connection, device: str, body: dict[str, object],
        status: int, says: str) -> None:
    answer = writer.post(f"/api/v1/devices/{device}/commands", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert says in answer.json()["detail"] + json.dumps(answer.json().get("errors", []))
    assert _stored(db) == []


def test_a_revoked_device_is_a_conflict_and_a_read_key_may_not_send(
        writer: TestClient, settings: Settings, database_url: str, db: psycopg.Connection) -> None:
    db.execute("UPDATE devices SET revoked_at = now() WHERE device_id = %s", (LIGHT,))
    answer = writer.post(f"/api/v1/devices/{LIGHT}/commands", json={"action": "off"})
    assert answer.status_code == 409 and "revoked" in answer.json()["detail"]
    with TestClient(create_app(settings), headers=_headers(database_url, Scope.READ)) as reader:
        refused = reader.post(f"/api/v1/devices/{LIGHT}/commands", json={"action": "off"})
        assert refused.status_code == 403 and refused.json()["required_scope"] == "write"
        assert reader.get(f"/api/v1/devices/{LIGHT}/commands").status_code == 200
    assert _stored(db) == []


def test_a_command_the_broker_cannot_take_is_a_503_and_stored_as_not_sent(
        database_url: str, db: psycopg.Connection, devices: dict[str, str]) -> None:
    nowhere = f"mqtt://127.0.0.1:{free_port()}"
    settings = Settings(_env_file=None, database_url=database_url, mqtt_url=nowhere,  # type: ignore[call-arg]
                        api=ApiSettings(mqtt_url=nowhere))
    with TestClient(create_app(settings), headers=_headers(database_url, Scope.WRITE)) as client:
        answer = client.post(f"/api/v1/devices/{LIGHT}/commands", json={"action": "on"})
        assert answer.status_code == 503, answer.text
        problem = answer.json()
        assert "not sent" in problem["detail"] and "not connected" in problem["detail"]
        stored = client.get(f"/api/v1/commands/{problem['command_id']}").json()
    assert (stored["outcome"], stored["published_at"]) == ("not_sent", None)
    assert stored["detail"] == problem["detail"]


def _send(client: TestClient, body: dict[str, object]) -> dict[str, object]:
    answer = client.post(f"/api/v1/devices/{LIGHT}/commands", json=body)
    assert answer.status_code == 202, answer.text
    result: dict[str, object] = answer.json()
    return result


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _outcome(client: TestClient, command_id: object) -> tuple[str, datetime | None]:
    body = client.get(f"/api/v1/commands/{command_id}").json()
    return body["outcome"], _at(body["outcome_at"])


def test_a_reading_that_shows_the_commanded_state_acknowledges_at_its_own_time(
        writer: TestClient, database_url: str, db: psycopg.Connection) -> None:
    keys = _keys(db)
    on, dim = _send(writer, {"action": "on"}), _send(writer, {"action": "dim", "level": 30})
    issued = datetime.fromisoformat(str(dim["issued_at"])).timestamp()
    # Before both commands: no acknowledgement, whatever it shows.
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued - 30, 1.0)])
    assert _outcome(writer, on["command_id"]) == ("pending", None)
    # After them: lamp off does not acknowledge "on"; lamp_on 1 without lamp_power does not
    # acknowledge a dim; lamp_on 1 alone acknowledges "on".
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 1, 0.0),
                                        (LIGHT, "lamp_on", issued + 2, 1.0)])
    first_on = datetime.fromtimestamp(issued + 2, UTC)
    assert _outcome(writer, on["command_id"]) == ("acknowledged", first_on)
    assert _outcome(writer, dim["command_id"]) == ("pending", None)
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 3, 1.0),
                                        (LIGHT, "lamp_power", issued + 3, 27.5)])
    listing = writer.get(f"/api/v1/devices/{LIGHT}/commands").json()["items"]
    assert [(item["action"], item["outcome"], _at(item["outcome_at"])) for item in listing] == [
        ("dim", "acknowledged", datetime.fromtimestamp(issued + 3, UTC)),
        ("on", "acknowledged", first_on)]
    assert listing[1]["detail"].startswith("the device reported the commanded state at ")
    # Later readings change nothing: the outcome is the data's, not the time it was looked at.
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 4, 0.0)])
    assert _outcome(writer, on["command_id"]) == ("acknowledged", first_on)


def test_a_schedule_is_acknowledged_by_what_it_says_at_the_reading_s_local_time(
        writer: TestClient, database_url: str, db: psycopg.Connection) -> None:
    zone = ZoneInfo("Asia/Makassar")
    local = datetime.now(zone)
    # Dim since two minutes ago (local time), off three hours on; before 00:00 wraps to the last.
    dim_at = (local - timedelta(minutes=2)).strftime("%H:%M")
    off_at = (local + timedelta(hours=3)).strftime("%H:%M")
    command = _send(writer, {"action": "schedule", "schedule": [
        {"at": dim_at, "action": "dim", "level": 25}, {"at": off_at, "action": "off"}]})
    issued = datetime.fromisoformat(str(command["issued_at"])).timestamp()
    keys = _keys(db)
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 1, 0.0)])  # off: not what it says
    assert _outcome(writer, command["command_id"]) == ("pending", None)
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 2, 1.0)])
    assert _outcome(writer, command["command_id"]) == (
        "acknowledged", datetime.fromtimestamp(issued + 2, UTC))


def test_a_command_to_an_offline_light_times_out_at_its_deadline_and_says_so(
        database_url: str, db: psycopg.Connection, devices: dict[str, str],
        broker_login: BrokerLogins) -> None:
    went_offline = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    db.execute("UPDATE devices SET status = 'offline', status_changed_at = %s WHERE device_id = %s",
               (went_offline, LIGHT))
    login = broker_login("api")
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        mqtt_url=f"mqtt://127.0.0.1:{login.port}",
                        api=ApiSettings(mqtt_url=login_url(login), command_timeout_s=1))
    with _client(settings, _headers(database_url, Scope.WRITE)) as client:
        command = _send(client, {"action": "off"})
        deadline = datetime.fromisoformat(str(command["deadline"]))
        # Nobody reads it: the API's own settler stores the outcome once the grace has passed.
        row = wait_until(lambda: db.execute(
            "SELECT outcome, outcome_at, detail FROM commands WHERE command_id = %s AND outcome <> 'pending'",
            (command["command_id"],)).fetchone(), timeout=SETTLE_GRACE.total_seconds() + 10,
            message="the command settled")
        assert datetime.now(UTC) >= deadline + SETTLE_GRACE
        assert row == ("timed_out", deadline,
                       "no telemetry change within 1 s; the device is offline since 2026-11-30T09:15:00Z")
        # A reading that came late (after the deadline) does not undo it.
        write_readings(database_url, _keys(db), [(LIGHT, "lamp_on", deadline.timestamp() + 1, 0.0)])
        assert _outcome(client, command["command_id"]) == ("timed_out", deadline)


def test_commands_are_listed_newest_first_a_page_at_a_time(
        writer: TestClient, devices: dict[str, str]) -> None:
    sent = [_send(writer, {"action": action})["command_id"] for action in ("on", "off", "on")]
    first = writer.get(f"/api/v1/devices/{LIGHT}/commands", params={"limit": 2})
    page = first.json()
    assert [item["command_id"] for item in page["items"]] == sent[:0:-1]
    assert first.headers["link"] == f'<{page["next"]}>; rel="next"'
    rest = writer.get(f"/api/v1/devices/{LIGHT}/commands",
                      params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [item["command_id"] for item in rest["items"]] == sent[:1]
    assert rest["next_cursor"] is None
    other = writer.get(f"/api/v1/devices/{METER}/commands", params={"cursor": page["next_cursor"]})
    assert other.status_code == 400 and "another device" in other.json()["detail"]
    assert writer.get(f"/api/v1/devices/{METER}/commands").json()["items"] == []
    assert writer.get("/api/v1/devices/light-nowhere-01/commands").status_code == 404
    assert writer.get("/api/v1/commands/cmd-0000000000000000").status_code == 404
