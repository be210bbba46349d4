"""The ingest worker against real Mosquitto and TimescaleDB: store, dedupe, quarantine, status.

Devices' messages come through a ``gateway`` login (it may publish for any device); the worker
logs in with an ``ingest`` account of its own (the ``worker`` fixture).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from ingest.pipeline import IngestWorker
from smartcity.broker_url import BrokerAddress
from smartcity.contract import status_topic, telemetry_topic
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto
from smartcity.settings import IngestSettings
from tests.ingest.processes import running_worker
from tests.logins import anonymous
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

# Readings must fall inside the worker's time window whatever day the tests run.
HOUR_AGO = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture
def aq_station(db: psycopg.Connection) -> str:
    register_device(db, "aq-tanah-grogot-01", "air_quality_station", "tanah-grogot")
    return "aq-tanah-grogot-01"


def _count(db: psycopg.Connection, sql: str, *params: object) -> int:
    return db.execute(sql, params).fetchone()[0]


def _wait_for_messages(worker: IngestWorker, n: int) -> None:
    wait_until(lambda: worker.counters.messages >= n, message=f"{n} messages stored")


def test_published_reading_is_stored_with_latest_and_last_seen(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq_station),
                b'{"ts": "%s", "metrics": {"pm25": 12.5, "pm10": 30}}' % HOUR_AGO.isoformat().encode())
    _wait_for_messages(worker, 1)
    rows = db.execute(
        "SELECT m.name, r.value, r.time FROM readings r JOIN metrics m ON m.metric_id = r.metric"
        " ORDER BY m.name"
    ).fetchall()
    assert [(name, value) for name, value, _ in rows] == [("pm10", 30.0), ("pm25", 12.5)]
    assert rows[0][2] == HOUR_AGO
    assert _count(db, "SELECT count(*) FROM latest_readings") == 2
    assert _count(db, "SELECT count(*) FROM devices WHERE last_seen IS NOT NULL") == 1


def test_same_message_delivered_twice_is_stored_once(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    payload = orjson.dumps({"ts": int(HOUR_AGO.timestamp()), "metrics": {"pm25": 10, "co": 500}})
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq_station), payload)
        publish(client, telemetry_topic(aq_station), payload)
    _wait_for_messages(worker, 2)
    assert _count(db, "SELECT count(*) FROM readings") == 2
    assert worker.counters.readings_stored == 2
    assert worker.counters.readings_duplicate == 2
    sample = worker.metrics.registry.get_sample_value
    assert sample("smartcity_ingest_readings_stored_total") == 2
    assert sample("smartcity_ingest_readings_duplicate_total") == 2
    assert sample("smartcity_ingest_messages_total", {"channel": "telemetry"}) == 2
    assert sample("smartcity_ingest_broker_connected") == 1


def test_latest_value_keeps_the_newest_time_even_when_older_data_arrives_later(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    with mqtt_publisher(gateway) as client:
        newer, older = int(HOUR_AGO.timestamp()), int(HOUR_AGO.timestamp()) - 3600
        publish(client, telemetry_topic(aq_station), b'{"ts": %d, "metrics": {"pm25": 2}}' % newer)
        publish(client, telemetry_topic(aq_station), b'{"ts": %d, "metrics": {"pm25": 1}}' % older)
    _wait_for_messages(worker, 2)
    assert _count(db, "SELECT count(*) FROM readings") == 2
    assert db.execute("SELECT value FROM latest_readings").fetchone()[0] == 2.0


def test_bad_parts_go_to_quarantine_while_valid_readings_are_stored(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    mixed = (b'{"metrics": {"pm25": 12, "pm10": NaN, "co": -5, "radon": 3, "no2": Infinity,'
             b' "o3": 40}}')
    unknown, future = b'{"metrics": {"pm25": 1}}', b'{"ts": 4102444800, "metrics": {"so2": 1}}'
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq_station), mixed)
        publish(client, telemetry_topic(aq_station), b"{not json")
        publish(client, telemetry_topic("aq-unregistered-01"), unknown)
        publish(client, telemetry_topic(aq_station), future)
    _wait_for_messages(worker, 4)
    stored = {r[0] for r in db.execute(
        "SELECT m.name FROM readings r JOIN metrics m ON m.metric_id = r.metric").fetchall()}
    assert stored == {"pm25", "o3"}
    # One row per message; a message's rejected parts are counted by reason in ``parts``.
    rows = db.execute("SELECT reason, reasons, parts->'by_reason', parts->'total' FROM quarantine"
                      " ORDER BY id").fetchall()
    assert rows == [
        ("non_finite", ["non_finite", "out_of_range", "unknown_metric"],
         {"non_finite": 2, "out_of_range": 1, "unknown_metric": 1}, 4),
        ("invalid_json", ["invalid_json"], {"invalid_json": 1}, 1),
        ("unknown_device", ["unknown_device"], {"unknown_device": 1}, 1),
        ("timestamp_out_of_window", ["timestamp_out_of_window"], {"timestamp_out_of_window": 1}, 1),
    ]
    sample = worker.metrics.registry.get_sample_value
    assert sample("smartcity_ingest_quarantined_total", {"reason": "non_finite"}) == 2
    assert sample("smartcity_ingest_quarantined_messages_total", {"reason": "non_finite"}) == 1
    assert sample("smartcity_ingest_quarantined_bytes_total") == len(mixed + b"{not json" + unknown + future)
    raw = db.execute("SELECT payload, topic, device_id FROM quarantine WHERE reason = 'invalid_json'"
                     ).fetchone()
    assert raw == (b"{not json", telemetry_topic(aq_station), aq_station)
    unknown = db.execute("SELECT device_id FROM quarantine WHERE reason = 'unknown_device'").fetchone()
    assert unknown == ("aq-unregistered-01",)


def test_worker_keeps_running_after_bad_input(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    with mqtt_publisher(gateway) as client:
        for payload in (b"", b"\x00\xff" * 100, b"[" * 10000, b"null", b'{"metrics": null}'):
            publish(client, telemetry_topic(aq_station), payload)
        publish(client, telemetry_topic(aq_station), b'{"metrics": {"pm25": 7}}')
    _wait_for_messages(worker, 6)
    assert _count(db, "SELECT count(*) FROM quarantine") == 5
    assert _count(db, "SELECT count(*) FROM readings") == 1


def test_status_messages_update_the_device(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        aq_station: str) -> None:
    with mqtt_publisher(gateway) as client:
        publish(client, status_topic(aq_station), "online", retain=True)
        wait_until(lambda: _count(db, "SELECT count(*) FROM devices WHERE status = 'online'"),
                   message="device online")
        publish(client, status_topic(aq_station), "offline", retain=True)
        wait_until(lambda: _count(db, "SELECT count(*) FROM devices WHERE status = 'offline'"),
                   message="device offline")
        publish(client, status_topic(aq_station), "", retain=True)  # clear the retained status


def test_topics_that_are_no_channel_are_quarantined_and_commands_ignored(
        database_url: str, db: psycopg.Connection, anonymous_mosquitto: EmbeddedMosquitto,
        aq_station: str) -> None:
    # The platform's broker refuses these publishes (tests/broker/test_broker_auth.py); a broker of
    # the user's own without ACLs delivers them, and the worker must not rely on the broker.
    broker = anonymous(anonymous_mosquitto)
    prefix = f"smartcity/v1/devices/{aq_station}"
    invalid = [f"{prefix}/telemetry/extra", f"{prefix}/../telemetry", f"{prefix}/telemetry/",
               f"{prefix}/Telemetry", "smartcity/v1/devices//telemetry", "smartcity/v1/devices/UPPER/status"]
    payload = b'{"metrics": {"pm25": 1}}'
    settings = IngestSettings(client_id="test-no-acl-topics", share_group=f"g{uuid.uuid4().hex[:8]}",
                              batch_max_age_ms=20)
    with running_worker(database_url, broker, settings) as worker, mqtt_publisher(broker) as client:
        for topic in invalid:
            publish(client, topic, payload)
        publish(client, f"{prefix}/commands", b'{"lamp_on": 1}')
        publish(client, telemetry_topic(aq_station), b'{"metrics": {"pm25": 2}}')
        _wait_for_messages(worker, len(invalid) + 1)
        wait_until(lambda: worker.subscriber.skipped["commands"] == 1, message="commands acked, skipped")
    rows = db.execute("SELECT topic, reason, device_id, payload FROM quarantine ORDER BY id").fetchall()
    assert rows == [(topic, "invalid_topic", None, payload) for topic in invalid]
    assert db.execute("SELECT value FROM readings").fetchall() == [(2.0,)]
    sample = worker.metrics.registry.get_sample_value
    assert sample("smartcity_ingest_messages_total", {"channel": "invalid"}) == len(invalid)
    assert sample("smartcity_ingest_quarantined_total", {"reason": "invalid_topic"}) == len(invalid)
