"""Routing messages into rows: topics, devices, status, and the safety net for decoder bugs."""

from __future__ import annotations

import pytest

import ingest.route
from ingest.batch import InboundMessage
from ingest.route import route_messages
from ingest.validate import DeviceRef, TimeWindow
from smartcity.contract import Reason

WINDOW = TimeWindow(300, 400 * 86400)
DEVICE = DeviceRef(3, "river-01", "river_level_sensor")
TOPIC = "smartcity/v1/devices/river-01/telemetry"


def _lookup(device_id: str) -> DeviceRef | None:
    return DEVICE if device_id == DEVICE.device_id else None


def test_a_decoder_bug_quarantines_the_message_instead_of_stopping_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(ingest.route, "decode_payload", broken)
    message = InboundMessage(TOPIC, b'{"metrics": {"water_level": 1}}', 1.8e9,
                             content_type="application/json")
    rows = route_messages([message], _lookup, WINDOW)
    assert rows.readings == []
    [item] = rows.quarantine
    assert item.reason is Reason.INVALID_SCHEMA and "RuntimeError" in item.detail
    assert item.payload == message.payload and item.content_type == "application/json"


def test_status_and_telemetry_of_one_batch() -> None:
    rows = route_messages([
        InboundMessage("smartcity/v1/devices/river-01/status", b"online", 1.8e9),
        InboundMessage(TOPIC, b'{"metrics": {"water_level": 1.5}}', 1.8e9 + 1),
        InboundMessage("smartcity/v1/devices/river-01/status", b"", 1.8e9 + 2),
    ], _lookup, WINDOW)
    assert [(c.device, c.status) for c in rows.statuses] == [(3, "online")]
    assert rows.readings == [(1.8e9 + 1, 3, 15, 1.5)]
    assert rows.last_seen == {3: 1.8e9 + 2}
    assert rows.quarantine == []
