"""Routing messages into rows: topics, devices, status, one quarantine item per message, decoder bugs."""

from __future__ import annotations

import pytest

import ingest.rows
from ingest.batch import InboundMessage
from ingest.rows import MAX_STORED_PARTS, route_messages
from ingest.validate import DeviceRef, TimeWindow
from smartcity.contract import MAX_PAYLOAD_BYTES, Channel, Reason, classify_topic

WINDOW = TimeWindow(300, 400 * 86400)
DEVICE = DeviceRef(3, "river-01", "river_level_sensor")
PREFIX = "smartcity/v1/devices/"
TOPIC = PREFIX + "river-01/telemetry"


def _lookup(device_id: str) -> DeviceRef | None:
    return DEVICE if device_id == DEVICE.device_id else None


def test_a_decoder_bug_quarantines_the_message_instead_of_stopping_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(ingest.rows, "decode_payload", broken)
    message = InboundMessage(TOPIC, b'{"metrics": {"water_level": 1}}', 1.8e9,
                             content_type="application/json")
    rows = route_messages([message], _lookup, WINDOW)
    assert rows.readings == []
    [item] = rows.quarantine
    assert item.reason is Reason.INVALID_SCHEMA and "RuntimeError" in item.summary()
    assert item.payload == message.payload and item.content_type == "application/json"


def test_status_and_telemetry_of_one_batch() -> None:
    rows = route_messages([
        InboundMessage(PREFIX + "river-01/status", b"online", 1.8e9),
        InboundMessage(TOPIC, b'{"metrics": {"water_level": 1.5}}', 1.8e9 + 1),
        InboundMessage(PREFIX + "river-01/status", b"", 1.8e9 + 2),
    ], _lookup, WINDOW)
    assert [(c.device, c.status) for c in rows.statuses] == [(3, "online")]
    assert rows.readings == [(1.8e9 + 1, 3, 15, 1.5)]
    assert rows.last_seen == {3: 1.8e9 + 2}
    assert rows.quarantine == []
    assert [p.channel for p in rows.parts] == [Channel.STATUS, Channel.TELEMETRY, Channel.STATUS]


@pytest.mark.parametrize(("topic", "channel", "device_id"), [
    (PREFIX + "river-01/telemetry", Channel.TELEMETRY, "river-01"),
    (PREFIX + "river-01/status", Channel.STATUS, "river-01"),
    (PREFIX + "river-01/commands", Channel.COMMANDS, "river-01"),
    (PREFIX + "river-01/../telemetry", Channel.INVALID, None),
    (PREFIX + "river-01/telemetry/", Channel.INVALID, None),
    (PREFIX + "river-01/Telemetry", Channel.INVALID, None),
    (PREFIX + "river-01/telemetry/extra", Channel.INVALID, None),
    (PREFIX + "site/river-01/telemetry", Channel.INVALID, None),
    (PREFIX + "/telemetry", Channel.INVALID, None),
    (PREFIX + "river-01", Channel.INVALID, None),
    (PREFIX + "river-01/", Channel.INVALID, None),
    (PREFIX + "river-01/config", Channel.INVALID, None),
    (PREFIX + "UPPER/telemetry", Channel.INVALID, None),
    (PREFIX + "x/status", Channel.INVALID, None),
    (PREFIX + "sensör-01/telemetry", Channel.INVALID, None),
    (PREFIX + "a" * 65 + "/telemetry", Channel.INVALID, None),
    (PREFIX + "UPPER/commands", Channel.COMMANDS, None),  # as the subscriber matches it
    (PREFIX + "river-01/commands/x", Channel.INVALID, None),
    ("smartcity/v2/devices/river-01/telemetry", Channel.INVALID, None),
])
def test_topics_are_classified_by_the_contract_templates(topic: str, channel: Channel,
                                                         device_id: str | None) -> None:
    ref = classify_topic(topic)
    assert (ref.channel, ref.device_id) == (channel, device_id)


def test_commands_are_ignored_and_other_topics_quarantined_as_invalid_topic() -> None:
    payload = b'{"metrics": {"water_level": 1}}'
    rows = route_messages([
        InboundMessage(PREFIX + "river-01/commands", b'{"lamp_on": 1}', 1.8e9),
        InboundMessage(PREFIX + "river-01/../telemetry", payload, 1.8e9),
        InboundMessage(PREFIX + "river-01/telemetry/", payload, 1.8e9),
    ], _lookup, WINDOW)
    assert rows.readings == [] and rows.statuses == [] and rows.last_seen == {}
    assert [q.reason for q in rows.quarantine] == [Reason.INVALID_TOPIC] * 2
    assert all(q.device_id is None and q.payload == payload for q in rows.quarantine)
    assert "river-01/../telemetry" in rows.quarantine[0].summary()
    assert [p.channel for p in rows.parts] == [Channel.COMMANDS, Channel.INVALID, Channel.INVALID]


def test_a_message_with_many_bad_parts_is_one_item_with_bounded_details() -> None:
    names = ",".join(f'"bogus{i}": 1' for i in range(500))
    payload = b'{"metrics": {"water_level": 2, "ph": NaN, %s}}' % names.encode()
    rows = route_messages([InboundMessage(TOPIC, payload, 1.8e9)], _lookup, WINDOW)
    [item] = rows.quarantine
    assert len(rows.readings) == 1
    assert item.reason_counts() == {"unknown_metric": 501}
    assert len(item.stored_parts()) == MAX_STORED_PARTS
    assert item.summary().endswith("(and 500 more rejected parts)")
    assert item.stored_payload() == payload


def test_an_oversized_payload_of_an_unknown_device_is_too_large_and_cut_when_stored() -> None:
    payload = b'{"metrics": {"water_level": 1}, "pad": "' + b"x" * 1_000_000 + b'"}'
    rows = route_messages([InboundMessage(PREFIX + "never-registered/telemetry", payload, 1.8e9)],
                          _lookup, WINDOW)
    [item] = rows.quarantine
    assert item.reason is Reason.PAYLOAD_TOO_LARGE and item.device_id == "never-registered"
    assert item.stored_payload() == payload[:MAX_PAYLOAD_BYTES]
    assert item.replaying(7).stored_payload() is None  # a replay's row shares its source's payload
