"""Ingest never takes a reading that raw retention would drop at once: its past window is the
shorter of its own and the raw retention, and the quarantine says which one refused a reading."""

from __future__ import annotations

import threading
import time

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from ingest.batch import InboundMessage
from ingest.pipeline import IngestWorker, route_batch
from ingest.validate import TimeWindow, time_window
from ingest.write import Writer
from smartcity.cli import main
from smartcity.contract import telemetry_topic
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto
from smartcity.settings import IngestSettings
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

AQ = "aq-retention-01"
DAY = 86400.0


@pytest.mark.parametrize(("past_window_days", "raw_days", "days", "retention_said"), [
    (400, 90, 90, True),  # the defaults: retention is the tighter limit
    (30, 90, 30, False),  # ingest's own window is tighter
    (400, None, 400, False),  # raw kept for ever
    (90, 90, 90, False),  # equal: ingest's own window says it
])
def test_the_past_window_is_the_shorter_of_ingest_and_raw_retention(
        past_window_days: int, raw_days: int | None, days: int, retention_said: bool) -> None:
    window = time_window(IngestSettings(past_window_days=past_window_days, future_window_s=60), raw_days)
    assert (window.future_s, window.past_s) == (60, days * DAY)
    assert ("SMARTCITY_RETENTION__RAW_DAYS" in window.past_note) is retention_said
    assert bool(window.past_note) is retention_said


def test_a_worker_quarantines_a_reading_older_than_raw_retention_saying_why(
        database_url: str, db: psycopg.Connection, fresh_mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins) -> None:
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    login, gateway = broker_login("ingest", fresh_mosquitto), broker_login("gateway", fresh_mosquitto)
    settings = IngestSettings(client_id=str(login.username), batch_max_age_ms=20)
    worker = IngestWorker(database_url, login, settings,
                          raw_retention_days=90)
    assert worker.window == time_window(settings, 90)
    now = int(time.time())
    worker.start()
    try:
        wait_until(lambda: worker.subscriber.connected, message="worker connected")
        with mqtt_publisher(gateway) as client:
            publish(client, telemetry_topic(AQ), orjson.dumps(
                {"ts": now - 120 * 86400, "metrics": {"pm25": 11}}))
            publish(client, telemetry_topic(AQ), orjson.dumps(
                {"ts": now - 80 * 86400, "metrics": {"pm25": 12}}))
            wait_until(lambda: worker.counters.messages >= 2, message="both messages handled")
    finally:
        worker.stop()
    assert db.execute("SELECT value FROM readings").fetchall() == [(12.0,)]
    [(reason, detail)] = db.execute("SELECT reason, detail FROM quarantine").fetchall()
    assert reason == "timestamp_out_of_window"
    assert detail == ("pm25: ts 120 days in the past (raw readings are kept 90 days"
                      " (SMARTCITY_RETENTION__RAW_DAYS), so older ones are not stored)")


def test_quarantine_replay_uses_the_same_window(database_url: str, db: psycopg.Connection) -> None:
    # Quarantined while the device was unknown; by the time it is registered and replayed, the
    # raw retention (90 days by default) refuses the reading from 100 days back.
    now = float(int(time.time()))
    message = InboundMessage(telemetry_topic(AQ), orjson.dumps(
        {"ts": now - 100 * DAY, "metrics": {"pm25": 3}}), now - 3600)
    writer = Writer(database_url)
    try:
        rows = route_batch(writer, [message], TimeWindow(300, 400 * DAY), threading.Event())
        assert rows is not None and writer.store(rows, threading.Event()) is not None
    finally:
        writer.close()
    assert db.execute("SELECT reason FROM quarantine").fetchall() == [("unknown_device",)]
    register_device(db, AQ, "air_quality_station", "tanah-grogot")

    result = CliRunner().invoke(main, ["quarantine", "replay", "--json"],
                                env={"SMARTCITY_DATABASE_URL": database_url})

    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["quarantined_by_reason"] == {"timestamp_out_of_window": 1}
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    [(detail,)] = db.execute("SELECT detail FROM quarantine WHERE replayed_at IS NULL").fetchall()
    assert "SMARTCITY_RETENTION__RAW_DAYS" in detail and "100 days in the past" in detail

