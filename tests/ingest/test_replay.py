"""Quarantine list and replay against the real database, fed through the real route + writer path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import psycopg
import pytest

from ingest.batch import InboundMessage
from ingest.pipeline import route_batch
from ingest.replay import list_quarantine, preview_payload, replay_unknown_devices
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.contract import status_topic, telemetry_topic
from smartcity.devices import register_device

WINDOW = TimeWindow(future_s=300, past_s=400 * 86400)
AQ = "aq-tanah-grogot-01"
NOISE = "noise-kuaro-01"
WEEK = 7 * 86400


@pytest.fixture
def writer(database_url: str) -> Iterator[Writer]:
    """The ingest writer, standing in for a worker that received the messages."""
    writer = Writer(database_url)
    yield writer
    writer.close()


def _receive(writer: Writer, *messages: InboundMessage) -> None:
    """Route and store ``messages`` as one batch, as a worker does."""
    rows = route_batch(writer, list(messages), WINDOW, threading.Event())
    assert rows is not None and writer.store(rows, threading.Event()) is not None


def _telemetry(device_id: str, received_at: float, payload: object) -> InboundMessage:
    return InboundMessage(telemetry_topic(device_id), orjson.dumps(payload), received_at)


def _count(db: psycopg.Connection, sql: str, *params: object) -> int:
    return db.execute(sql, params).fetchone()[0]


def _readings(db: psycopg.Connection) -> list[tuple[str, str, datetime, float]]:
    return db.execute(
        "SELECT d.device_id, m.name, r.time, r.value FROM readings r"
        " JOIN devices d ON d.id = r.device JOIN metrics m ON m.metric_id = r.metric"
        " ORDER BY d.device_id, m.name, r.time"
    ).fetchall()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def test_replay_stores_readings_with_original_times_latest_and_marks_rows(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    received = float(int(time.time()) - WEEK)
    _receive(writer,
             _telemetry(AQ, received, {"ts": received - 3600, "metrics": {"pm25": 10, "pm10": 20}}),
             _telemetry(AQ, received + 60, {"metrics": {"pm25": 11}}))  # no ts: the receive time
    assert _count(db, "SELECT count(*) FROM quarantine WHERE reason = 'unknown_device'") == 2
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = replay_unknown_devices(database_url, WINDOW)

    assert result.to_dict() == {"messages_replayed": 2, "readings_stored": 3, "readings_duplicate": 0,
                                "quarantined": 0, "quarantined_by_reason": {}, "still_unknown": 0}
    assert _readings(db) == [(AQ, "pm10", _utc(received - 3600), 20.0),
                             (AQ, "pm25", _utc(received - 3600), 10.0),
                             (AQ, "pm25", _utc(received + 60), 11.0)]
    latest = dict(db.execute(
        "SELECT m.name, l.time FROM latest_readings l JOIN metrics m ON m.metric_id = l.metric"
    ).fetchall())
    assert latest == {"pm25": _utc(received + 60), "pm10": _utc(received - 3600)}
    assert db.execute("SELECT last_seen FROM devices").fetchone()[0] == _utc(received + 60)
    assert _count(db, "SELECT count(*) FROM quarantine WHERE replayed_at IS NULL") == 0

    again = replay_unknown_devices(database_url, WINDOW)
    assert again.messages_replayed == 0 and again.readings_stored == 0
    assert _count(db, "SELECT count(*) FROM readings") == 3


def test_the_time_window_is_judged_against_the_original_receive_time(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    tight = TimeWindow(future_s=60, past_s=7200)
    # Whole milliseconds, as devices send them: a float with sub-microsecond digits rounds to the
    # stored microsecond one way in ingest and may round the other way in datetime.fromtimestamp.
    received = round(time.time() - WEEK, 3)
    _receive(writer, _telemetry(AQ, received, {"ts": received - 3600, "metrics": {"pm25": 5}}))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = replay_unknown_devices(database_url, tight)

    # A week old by the clock, an hour old when it arrived: accepted, as it would have been then.
    assert result.readings_stored == 1 and not result.quarantined
    assert _readings(db)[0][2] == _utc(received - 3600)


def test_messages_of_devices_still_unknown_stay_pending(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    now = time.time()
    _receive(writer, _telemetry(AQ, now, {"metrics": {"pm25": 1}}),
             _telemetry(NOISE, now, {"metrics": {"noise_level": 50}}),
             _telemetry(NOISE, now + 1, {"metrics": {"noise_level": 51}}))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = replay_unknown_devices(database_url, WINDOW)

    assert (result.messages_replayed, result.still_unknown) == (1, 2)
    pending = db.execute("SELECT device_id FROM quarantine WHERE replayed_at IS NULL").fetchall()
    assert pending == [(NOISE,), (NOISE,)]
    assert _count(db, "SELECT count(*) FROM quarantine") == 3  # not re-quarantined as new rows

    register_device(db, NOISE, "noise_monitor", "kuaro")
    later = replay_unknown_devices(database_url, WINDOW)
    assert (later.messages_replayed, later.readings_stored, later.still_unknown) == (2, 2, 0)


def test_a_still_invalid_part_is_quarantined_anew_while_the_valid_part_is_stored(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    received = time.time() - 3600
    payload = {"ts": received - 60, "metrics": {"pm25": 12, "co": -5}}
    _receive(writer, _telemetry(AQ, received, payload))
    original_id = db.execute("SELECT id FROM quarantine").fetchone()[0]
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = replay_unknown_devices(database_url, WINDOW)

    assert result.readings_stored == 1 and dict(result.quarantined) == {"out_of_range": 1}
    assert [(r[1], r[3]) for r in _readings(db)] == [("pm25", 12.0)]
    rows = db.execute("SELECT id, reason, device_id, payload, replayed_at IS NOT NULL, replay_of,"
                      " payload_size FROM quarantine ORDER BY id").fetchall()
    assert rows[0][0] == original_id and rows[0][1:3] == ("unknown_device", AQ) and rows[0][4]
    assert rows[0][3] == orjson.dumps(payload)
    # The new row points at the replayed one instead of storing the payload a second time.
    assert rows[1][1:] == ("out_of_range", AQ, None, False, original_id, len(orjson.dumps(payload)))
    [listed, _] = list_quarantine(db, pending_only=False)
    assert (listed.reason, listed.replay_of, listed.payload_kept) == (
        "out_of_range", original_id, len(orjson.dumps(payload)))
    assert listed.payload_preview == orjson.dumps(payload).decode()
    # The new row is not an unknown device: another replay leaves it alone.
    assert replay_unknown_devices(database_url, WINDOW).messages_replayed == 0


def test_replay_of_one_device_leaves_the_others_pending(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    now = time.time()
    _receive(writer, _telemetry(AQ, now, {"metrics": {"pm25": 1}}),
             _telemetry(NOISE, now, {"metrics": {"noise_level": 50}}))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    register_device(db, NOISE, "noise_monitor", "kuaro")

    result = replay_unknown_devices(database_url, WINDOW, device_id=NOISE)

    assert (result.messages_replayed, result.still_unknown) == (1, 0)
    assert [r[:2] for r in _readings(db)] == [(NOISE, "noise_level")]
    assert db.execute("SELECT device_id FROM quarantine WHERE replayed_at IS NULL").fetchall() == [(AQ,)]


def test_a_reading_stored_meanwhile_is_a_duplicate_not_a_second_row(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    received = time.time() - 600
    message = _telemetry(AQ, received, {"ts": received - 5, "metrics": {"pm25": 7, "pm10": 9}})
    _receive(writer, message)
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    writer.directory.forget()  # the writer remembers the miss for a few seconds
    _receive(writer, message)  # redelivered by the device once it was registered
    assert _count(db, "SELECT count(*) FROM readings") == 2

    result = replay_unknown_devices(database_url, WINDOW)

    assert (result.messages_replayed, result.readings_stored, result.readings_duplicate) == (1, 0, 2)
    assert _count(db, "SELECT count(*) FROM readings") == 2


def test_replay_goes_in_chunks_and_stops_at_the_limit(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    now = time.time() - 600
    _receive(writer, *(_telemetry(AQ, now + i, {"metrics": {"pm25": i}}) for i in range(5)))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    first = replay_unknown_devices(database_url, WINDOW, limit=3, chunk_size=2)
    assert (first.messages_replayed, first.readings_stored) == (3, 3)
    rest = replay_unknown_devices(database_url, WINDOW, chunk_size=2)
    assert (rest.messages_replayed, rest.readings_stored) == (2, 2)
    assert sorted(r[3] for r in _readings(db)) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_rows_locked_by_a_concurrent_replay_are_left_to_it(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    now = time.time() - 600
    _receive(writer, _telemetry(AQ, now, {"metrics": {"pm25": 1}}),
             _telemetry(AQ, now + 1, {"metrics": {"pm25": 2}}))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    first_id = db.execute("SELECT min(id) FROM quarantine").fetchone()[0]

    with psycopg.connect(database_url) as other:  # holds its row lock until the block ends
        other.execute("SELECT id FROM quarantine WHERE id = %s FOR UPDATE", (first_id,))
        result = replay_unknown_devices(database_url, WINDOW)
        assert result.messages_replayed == 1
        other.rollback()

    pending = db.execute("SELECT id FROM quarantine WHERE replayed_at IS NULL").fetchall()
    assert pending == [(first_id,)]
    assert replay_unknown_devices(database_url, WINDOW).messages_replayed == 1
    assert _count(db, "SELECT count(*) FROM readings") == 2


def test_a_failed_chunk_stores_nothing_and_leaves_its_rows_pending(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    _receive(writer, _telemetry(AQ, time.time(), {"metrics": {"pm25": 1}}))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    # A real failure at the last step (marking the rows), after the readings were written.
    db.execute("CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql"
               " AS $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$")
    db.execute("CREATE TRIGGER test_refuse_mark BEFORE UPDATE ON quarantine"
               " FOR EACH ROW EXECUTE FUNCTION test_refuse()")
    try:
        with pytest.raises(psycopg.errors.RaiseException, match="refused by test"):
            replay_unknown_devices(database_url, WINDOW)
    finally:
        db.execute("DROP TRIGGER test_refuse_mark ON quarantine")
        db.execute("DROP FUNCTION test_refuse()")
    assert _count(db, "SELECT count(*) FROM readings") == 0
    assert _count(db, "SELECT count(*) FROM latest_readings") == 0
    assert _count(db, "SELECT count(*) FROM quarantine WHERE replayed_at IS NULL") == 1
    assert replay_unknown_devices(database_url, WINDOW).readings_stored == 1


def test_replay_accepts_a_connection_and_replays_status_messages_too(
        writer: Writer, db: psycopg.Connection) -> None:
    received = time.time() - 60
    _receive(writer, InboundMessage(status_topic(AQ), b"online", received))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = replay_unknown_devices(db, WINDOW)

    assert result.messages_replayed == 1
    assert db.execute("SELECT status, status_changed_at FROM devices").fetchone() == (
        "online", _utc(received))
    assert not db.closed  # the caller's connection is the caller's


def test_list_filters_by_reason_device_and_pending(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    register_device(db, NOISE, "noise_monitor", "kuaro")
    now = time.time()
    _receive(writer, _telemetry(AQ, now, {"metrics": {"pm25": 1}}),
             _telemetry(NOISE, now, {"metrics": {"noise_level": 500}}),
             InboundMessage(telemetry_topic(NOISE), b"{not json", now))

    everything = list_quarantine(db)
    assert [r.reason for r in everything] == ["invalid_json", "out_of_range", "unknown_device"]
    assert [r.reason for r in list_quarantine(db, device_id=NOISE, reason="out_of_range")] == [
        "out_of_range"]
    assert [r.device_id for r in list_quarantine(db, limit=1)] == [NOISE]
    bad_json = everything[0]
    assert (bad_json.topic, bad_json.payload_size, bad_json.payload_preview) == (
        telemetry_topic(NOISE), 9, "{not json")
    assert bad_json.received_at == _utc(now) and bad_json.replayed_at is None

    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    replay_unknown_devices(database_url, WINDOW)
    assert [r.reason for r in list_quarantine(db, reason="unknown_device")] == []
    replayed = list_quarantine(db, reason="unknown_device", pending_only=False)
    assert len(replayed) == 1 and replayed[0].replayed_at is not None
    assert set(replayed[0].to_dict()) == {
        "id", "received_at", "topic", "device_id", "reason", "reasons", "detail", "parts",
        "payload_size", "payload_kept", "payload_preview", "replayed_at", "replay_of"}
    with pytest.raises(ValueError, match="no_such_reason"):
        list_quarantine(db, reason="no_such_reason")


def test_list_previews_long_and_binary_payloads_safely(writer: Writer, db: psycopg.Connection) -> None:
    now = time.time()
    long_payload = b'{"metrics": {"pm25": 1}, "pad": "' + b"x" * 70_000 + b'"}'
    _receive(writer, InboundMessage(telemetry_topic(AQ), b"\xff\xfe\x1b[2J\x00ok\n", now),
             InboundMessage(telemetry_topic(AQ), long_payload, now + 1))

    big, binary = list_quarantine(db)
    assert big.payload_size == len(long_payload)
    assert len(big.payload_preview) == 201 and big.payload_preview.endswith("…")
    assert binary.payload_preview == "\ufffd\ufffd\ufffd[2J\ufffdok "
    assert binary.payload_size == 10


@pytest.mark.parametrize(("head", "size", "expected"), [
    (b"", 0, ""),
    (b"abc", 3, "abc"),
    (b"abc", 10, "abc…"),  # the head is all that was fetched of a longer payload
    ("é".encode() * 3, 6, "ééé"),
    (b"a\tb\r\nc", 6, "a b  c"),
])
def test_preview_payload(head: bytes, size: int, expected: str) -> None:
    assert preview_payload(head, size) == expected


def test_replay_decodes_with_the_content_type_the_message_came_with(
        writer: Writer, database_url: str, db: psycopg.Connection) -> None:
    received = float(int(time.time()) - 60)
    # A first record without "n" or "bn": SenML only by its MQTT v5 content type, not by shape.
    pack = orjson.dumps([{"bt": received - 30, "bu": "ug/m3"}, {"n": "pm25", "v": 17.5}])
    _receive(writer, InboundMessage(telemetry_topic(AQ), pack, received,
                                    content_type="application/senml+json"))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    assert replay_unknown_devices(database_url, WINDOW).readings_stored == 1
    assert _readings(db) == [(AQ, "pm25", _utc(received - 30), 17.5)]
