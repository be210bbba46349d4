"""`smartcity quarantine list|replay` against the real database."""

from __future__ import annotations

import threading
import time

import orjson
import psycopg
from click.testing import CliRunner

from ingest.batch import InboundMessage
from ingest.pipeline import route_batch
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.cli import main
from smartcity.contract import Reason, telemetry_topic
from smartcity.devices import register_device

AQ = "aq-tanah-grogot-01"
NOISE = "noise-kuaro-01"


def _run(database_url: str, *args: str):  # noqa: ANN202 - click's Result
    runner = CliRunner()
    return runner.invoke(main, list(args), env={"SMARTCITY_DATABASE_URL": database_url},
                         catch_exceptions=False)


def _receive(database_url: str, *messages: tuple[str, bytes]) -> float:
    """Store messages as an ingest worker would, received an hour ago; return that time."""
    received = float(int(time.time()) - 3600)  # whole seconds: exact through timestamptz
    inbound = [InboundMessage(telemetry_topic(device_id), payload, received)
               for device_id, payload in messages]
    writer = Writer(database_url)
    try:
        rows = route_batch(writer, inbound, TimeWindow(300, 400 * 86400), threading.Event())
        assert rows is not None and writer.store(rows, threading.Event()) is not None
    finally:
        writer.close()
    return received


def test_list_json_prints_pending_items_newest_first(database_url: str, db: psycopg.Connection) -> None:
    register_device(db, NOISE, "noise_monitor", "kuaro")
    _receive(database_url, (AQ, b'{"metrics": {"pm25": 1}}'), (NOISE, b'{"metrics": {"noise_level": 5}}'))

    result = _run(database_url, "quarantine", "list", "--json")

    assert result.exit_code == 0, result.output
    items = orjson.loads(result.stdout)
    assert [(i["reason"], i["device_id"]) for i in items] == [("out_of_range", NOISE),
                                                              ("unknown_device", AQ)]
    assert set(items[1]) == {"id", "received_at", "topic", "device_id", "reason", "reasons", "detail",
                             "parts", "payload_size", "payload_kept", "payload_preview", "replayed_at",
                             "replay_of"}
    assert items[1]["reasons"] == {"unknown_device": 1} and items[1]["replay_of"] is None
    assert items[1]["parts"] == [{"reason": "unknown_device", "detail": f"device {AQ} is not registered"}]
    assert items[1]["topic"] == telemetry_topic(AQ) and items[1]["replayed_at"] is None
    assert items[1]["payload_preview"] == '{"metrics": {"pm25": 1}}' and items[1]["payload_size"] == 24
    only_aq = orjson.loads(_run(database_url, "quarantine", "list", "--device", AQ, "--json").stdout)
    assert [i["device_id"] for i in only_aq] == [AQ]
    by_reason = _run(database_url, "quarantine", "list", "--reason", "out_of_range", "--json")
    assert [i["reason"] for i in orjson.loads(by_reason.stdout)] == ["out_of_range"]
    assert len(orjson.loads(_run(database_url, "quarantine", "list", "--limit", "1", "--json").stdout)) == 1


def test_list_refuses_an_unknown_reason_naming_the_valid_ones(database_url: str) -> None:
    result = _run(database_url, "quarantine", "list", "--reason", "bogus")
    assert result.exit_code == 2
    assert "bogus" in result.output
    assert all(reason.value in result.output for reason in Reason)


def test_replay_json_prints_counts_and_list_all_shows_replayed_items(
        database_url: str, db: psycopg.Connection) -> None:
    received = _receive(database_url, (AQ, b'{"metrics": {"pm25": 12, "co": -5}}'),
                        (NOISE, b'{"metrics": {"noise_level": 50}}'))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = _run(database_url, "quarantine", "replay", "--json")

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {
        "messages_replayed": 1, "readings_stored": 1, "readings_duplicate": 0, "quarantined": 1,
        "quarantined_by_reason": {"out_of_range": 1}, "still_unknown": 1}
    stored = db.execute("SELECT time FROM readings").fetchall()
    assert [t.timestamp() for (t,) in stored] == [received]
    pending = orjson.loads(_run(database_url, "quarantine", "list", "--json").stdout)
    assert sorted((i["reason"], i["device_id"]) for i in pending) == [("out_of_range", AQ),
                                                                      ("unknown_device", NOISE)]
    everything = orjson.loads(_run(database_url, "quarantine", "list", "--all", "--json").stdout)
    replayed = [i for i in everything if i["replayed_at"] is not None]
    assert [(i["reason"], i["device_id"]) for i in replayed] == [("unknown_device", AQ)]


def test_replay_device_only_takes_that_device(database_url: str, db: psycopg.Connection) -> None:
    _receive(database_url, (AQ, b'{"metrics": {"pm25": 1}}'), (NOISE, b'{"metrics": {"noise_level": 50}}'))
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    register_device(db, NOISE, "noise_monitor", "kuaro")

    result = _run(database_url, "quarantine", "replay", "--device", NOISE)

    assert result.exit_code == 0, result.output
    assert result.output.startswith("replayed 1 messages: 1 readings stored")
    pending = db.execute("SELECT device_id FROM quarantine WHERE replayed_at IS NULL").fetchall()
    assert pending == [(AQ,)]
    second = orjson.loads(_run(database_url, "quarantine", "replay", "--json").stdout)
    assert second["messages_replayed"] == 1
    third = orjson.loads(_run(database_url, "quarantine", "replay", "--json").stdout)
    assert third["messages_replayed"] == 0 and third["readings_stored"] == 0


def test_list_text_shows_one_line_per_item(database_url: str) -> None:
    _receive(database_url, (AQ, b'{"metrics": {"pm25": 1}}'))
    result = _run(database_url, "quarantine", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and "unknown_device" in lines[0] and AQ in lines[0]


def test_replay_without_a_reachable_database_is_a_one_line_error() -> None:
    result = _run("postgresql://smartcity@127.0.0.1:1/smartcity?connect_timeout=2",
                  "quarantine", "replay")
    assert result.exit_code == 1 and "replay stopped" in result.output


def test_a_message_with_parts_of_several_reasons_is_one_item_found_by_each_reason(
        database_url: str, db: psycopg.Connection) -> None:
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    _receive(database_url, (AQ, b'{"metrics": {"pm25": 12, "co": -5, "radon": 1, "thoron": 2}}'))

    for reason in ("unknown_metric", "out_of_range"):
        items = orjson.loads(_run(database_url, "quarantine", "list", "--reason", reason, "--json").stdout)
        assert len(items) == 1
    [item] = items
    assert (item["reason"], item["reasons"]) == ("out_of_range", {"out_of_range": 1, "unknown_metric": 2})
    assert [p["reason"] for p in item["parts"]] == ["out_of_range", "unknown_metric", "unknown_metric"]
    assert item["detail"].endswith("(and 2 more rejected parts)")
    assert orjson.loads(_run(database_url, "quarantine", "list", "--reason", "invalid_json",
                             "--json").stdout) == []
    [line] = _run(database_url, "quarantine", "list").output.splitlines()
    assert "out_of_range×1,unknown_metric×2" in line


def test_list_text_shows_the_size_received_and_what_was_kept(database_url: str) -> None:
    big = b'{"metrics": {"pm25": 1}, "pad": "' + b"x" * 70_000 + b'"}'
    _receive(database_url, (AQ, big))
    [line] = _run(database_url, "quarantine", "list").output.splitlines()
    assert "payload_too_large" in line and f"{len(big)} B (kept 65536)" in line
    [item] = orjson.loads(_run(database_url, "quarantine", "list", "--json").stdout)
    assert (item["payload_size"], item["payload_kept"]) == (len(big), 65536)
