"""The wire contract's own names: topics and the actuator command schema."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from smartcity.catalog import DEVICE_KINDS
from smartcity.contract import (
    COMMAND_ACTIONS,
    Channel,
    Command,
    alert_topic,
    classify_topic,
    commands_topic,
    status_topic,
    telemetry_topic,
)

ISSUED = "2026-11-30T10:00:00Z"


def test_topics_follow_the_contract() -> None:
    assert telemetry_topic("sl-01") == "smartcity/v1/devices/sl-01/telemetry"
    assert status_topic("sl-01") == "smartcity/v1/devices/sl-01/status"
    assert commands_topic("sl-01") == "smartcity/v1/devices/sl-01/commands"
    assert alert_topic("kuaro", "pm25-daily") == "smartcity/v1/alerts/kuaro/pm25-daily"
    assert classify_topic(commands_topic("sl-01")).channel is Channel.COMMANDS  # not device input


def test_every_kind_that_takes_commands_is_in_the_catalogue() -> None:
    assert set(COMMAND_ACTIONS) <= set(DEVICE_KINDS)


@pytest.mark.parametrize("payload", [
    {"command_id": "c0ffee-0001", "action": "on", "issued_at": ISSUED},
    {"command_id": "c0ffee-0002", "action": "off", "issued_at": ISSUED},
    {"command_id": "c0ffee-0003", "action": "dim", "level": 40, "issued_at": ISSUED},
    {"command_id": "c0ffee-0004", "action": "schedule", "issued_at": ISSUED, "schedule": [
        {"at": "18:00", "action": "on"}, {"at": "23:30", "action": "dim", "level": 30},
        {"at": "05:45", "action": "off"}]},
])
def test_valid_commands_round_trip_through_json(payload: dict[str, object]) -> None:
    command = Command.model_validate_json(orjson.dumps(payload))
    assert Command.model_validate_json(command.model_dump_json(exclude_none=True)) == command
    assert command.action == payload["action"]


@pytest.mark.parametrize(("payload", "says"), [
    ({"command_id": "c0ffee-0001", "action": "dim", "issued_at": ISSUED}, "needs a level"),
    ({"command_id": "c0ffee-0001", "action": "dim", "level": 101, "issued_at": ISSUED}, "less than or equal"),
    ({"command_id": "c0ffee-0001", "action": "on", "level": 50, "issued_at": ISSUED}, "takes no level"),
    ({"command_id": "c0ffee-0001", "action": "blink", "issued_at": ISSUED}, "'on', 'off', 'dim' or"),
    ({"command_id": "c0ffee-0001", "action": "schedule", "issued_at": ISSUED}, "needs a schedule"),
    ({"command_id": "c0ffee-0001", "action": "off", "issued_at": ISSUED,
      "schedule": [{"at": "18:00", "action": "on"}]}, "takes no schedule"),
    ({"command_id": "c0ffee-0001", "action": "schedule", "issued_at": ISSUED,
      "schedule": [{"at": "24:00", "action": "on"}]}, "HH:MM"),
    ({"command_id": "c0ffee-0001", "action": "schedule", "issued_at": ISSUED, "schedule": []}, "at least 1"),
    ({"command_id": "c0ffee-0001", "action": "on", "issued_at": ISSUED, "colour": "red"}, "Extra inputs"),
    ({"command_id": "x", "action": "on", "issued_at": ISSUED}, "should match pattern"),
    ({"command_id": "c0ffee-0001", "action": "on", "issued_at": "2026-11-30T10:00:00"}, "timezone info"),
])
def test_malformed_commands_are_refused_with_a_reason(payload: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Command.model_validate_json(orjson.dumps(payload))
