"""`smartcity devices command|commands` against the real database and broker: the API's path (checked,
stored, published with the API's broker login), refusals that store nothing, outcomes listed."""

from __future__ import annotations

from datetime import datetime

import orjson
import psycopg
from click.testing import CliRunner, Result

from smartcity.cli import main
from smartcity.devices import register_device
from smartcity.services import free_port
from tests.api.readings_seed import write_readings
from tests.logins import BrokerLogins, login_url

LIGHT, METER = "light-kuaro-01", "meter-kuaro-01"


def _run(database_url: str, mqtt_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={
        "SMARTCITY_DATABASE_URL": database_url, "SMARTCITY_API__MQTT_URL": mqtt_url})


def _stored(db: psycopg.Connection) -> list[tuple[str, str, str, bool]]:
    return db.execute("SELECT device_id, action, outcome, published_at IS NOT NULL FROM commands"
                      " ORDER BY id").fetchall()


def test_a_command_is_stored_published_and_listed_with_its_outcome(
        database_url: str, db: psycopg.Connection, broker_login: BrokerLogins) -> None:
    register_device(db, LIGHT, "street_light", "kuaro")
    api = login_url(broker_login("api"))
    sent = _run(database_url, api, "devices", "command", LIGHT, "--action", "schedule",
                "--at", "18:00=on", "--at", "23:30=dim:30", "--at", "05:45=off", "--json")
    assert sent.exit_code == 0, sent.output
    command = orjson.loads(sent.stdout)
    assert command["schedule"] == [{"at": "18:00", "action": "on"},
                                   {"at": "23:30", "action": "dim", "level": 30},
                                   {"at": "05:45", "action": "off"}]
    assert command["issued_by"].startswith("cli:") and command["outcome"] == "pending"
    assert _stored(db) == [(LIGHT, "schedule", "pending", True)]  # the broker acknowledged it
    dim = _run(database_url, api, "devices", "command", LIGHT, "--action", "dim", "--level", "40")
    assert dim.exit_code == 0 and "acknowledged by the broker" in dim.output
    # A report of the lamp on with its power acknowledges the dim (whether it also acknowledges
    # the schedule depends on the local time now: not this test's subject).
    issued = datetime.fromisoformat(command["issued_at"]).timestamp()
    keys = dict(db.execute("SELECT device_id, id FROM devices").fetchall())
    write_readings(database_url, keys, [(LIGHT, "lamp_on", issued + 60, 1.0),
                                        (LIGHT, "lamp_power", issued + 60, 33.0)])
    listed = _run(database_url, api, "devices", "commands", LIGHT, "--json")
    assert listed.exit_code == 0, listed.output
    rows = orjson.loads(listed.stdout)
    assert [row["action"] for row in rows] == ["dim", "schedule"]
    assert rows[0]["outcome"] == "acknowledged"
    text = _run(database_url, api, "devices", "commands", LIGHT)
    assert "dim 40%" in text.output and "acknowledged" in text.output


def test_refusals_say_why_and_store_nothing(database_url: str, db: psycopg.Connection,
                                           broker_login: BrokerLogins) -> None:
    register_device(db, LIGHT, "street_light", "kuaro")
    register_device(db, METER, "water_meter", "kuaro")
    api = login_url(broker_login("api"))
    meter = _run(database_url, api, "devices", "command", METER, "--action", "on")
    assert meter.exit_code == 1
    assert "water_meter accepts no commands; street_light accepts on, off, dim, schedule" in meter.output
    unknown = _run(database_url, api, "devices", "command", "light-nowhere-01", "--action", "on")
    assert unknown.exit_code == 1 and "is not registered" in unknown.output
    bad_at = _run(database_url, api, "devices", "command", LIGHT, "--action", "schedule",
                  "--at", "25:00=on")
    assert bad_at.exit_code == 2 and "HH:MM" in bad_at.output
    no_level = _run(database_url, api, "devices", "command", LIGHT, "--action", "dim")
    assert no_level.exit_code == 2 and "needs a level" in no_level.output
    assert _stored(db) == []
    assert _run(database_url, api, "devices", "commands", "light-nowhere-01").exit_code == 1


def test_a_broker_that_cannot_be_reached_leaves_the_command_stored_as_not_sent(
        database_url: str, db: psycopg.Connection) -> None:
    register_device(db, LIGHT, "street_light", "kuaro")
    result = _run(database_url, f"mqtt://127.0.0.1:{free_port()}", "devices", "command", LIGHT,
                  "--action", "off")
    assert result.exit_code == 1 and "not sent" in result.output and "not_sent" in result.output
    assert _stored(db) == [(LIGHT, "off", "not_sent", False)]
