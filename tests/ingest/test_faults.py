"""Fault tests: worker killed, database restarted, broker restarted, three workers sharing.

Each publishes a stream at QoS 1 while the fault happens and then requires that what is stored
equals what was published: every reading once, none lost, none twice. The broker wants logins, as
the platform runs it: each worker has an ingest account of its own (a restarted worker logs in with
the same one and so resumes its session), the stream a gateway account.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from smartcity.broker_url import BrokerAddress
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from tests.ingest.processes import IngestProcess
from tests.logins import BrokerLogins
from tests.mqtt import TelemetryStream
from tests.services import wait_until

pytestmark = pytest.mark.slow

DEVICES = [f"river-fault-{i:02d}" for i in range(5)]


@pytest.fixture
def river_sensors(db: psycopg.Connection) -> list[str]:
    for device_id in DEVICES:
        register_device(db, device_id, "river_level_sensor", "tanah-grogot")
    return DEVICES


@pytest.fixture
def stream_login(fresh_mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins) -> BrokerAddress:
    """The gateway login the test's stream publishes for the river sensors with."""
    return broker_login("gateway", fresh_mosquitto)


@pytest.fixture
def workers(database_url: str, fresh_mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins,
            tmp_path: Path) -> Iterator[list[IngestProcess]]:
    """Unstarted worker processes in one share group, each with its own ingest account; all
    stopped at the end of the test."""
    group = f"faults{uuid.uuid4().hex[:6]}"
    made = [IngestProcess(database_url, broker_login("ingest", fresh_mosquitto), group,
                          tmp_path / f"worker-{i}.log") for i in range(3)]
    yield made
    for worker in made:
        worker.stop()


def _stored(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT (device, metric, time)) FROM readings").fetchone()


def _expect_all_stored(url: str, stream: TelemetryStream, timeout: float = 60) -> None:
    stream.finish()
    wait_until(lambda: _stored(url)[0] >= stream.count, timeout=timeout, interval=0.2,
               message=f"{stream.count} readings stored")
    assert _stored(url) == (stream.count, stream.count)


def _flowing_stream(url: str, login: BrokerAddress, devices: list[str]) -> TelemetryStream:
    """Start 3,000 messages at 1,000/s and return once the first readings are stored."""
    stream = TelemetryStream(login, devices, count=3000, rate=1000).start()
    wait_until(lambda: _stored(url)[0] > 500, message="stream flowing")
    return stream


def test_worker_killed_mid_stream_loses_nothing(
        database_url: str, fresh_mosquitto: EmbeddedMosquitto, river_sensors: list[str],
        stream_login: BrokerAddress, workers: list[IngestProcess]) -> None:
    worker = workers[0].start()
    stream = _flowing_stream(database_url, stream_login, river_sensors)
    worker.kill()  # unacked messages stay in its persistent session on the broker
    wait_until(lambda: stream.sent > 2000, message="more published while the worker is dead")
    worker.start()
    _expect_all_stored(database_url, stream)


def test_worker_stopped_with_sigterm_mid_stream_exits_cleanly_and_loses_nothing(
        database_url: str, fresh_mosquitto: EmbeddedMosquitto, river_sensors: list[str],
        stream_login: BrokerAddress, workers: list[IngestProcess]) -> None:
    worker = workers[0].start()
    stream = _flowing_stream(database_url, stream_login, river_sensors)
    started = time.monotonic()
    assert worker.stop(timeout=15) == 0  # flush, commit, ack, disconnect
    assert time.monotonic() - started < 5
    worker.start()
    _expect_all_stored(database_url, stream)


def test_database_restart_mid_stream_loses_nothing(
        database_url: str, postgres: EmbeddedPostgres, fresh_mosquitto: EmbeddedMosquitto,
        river_sensors: list[str], stream_login: BrokerAddress, workers: list[IngestProcess]) -> None:
    worker = workers[0].start()
    stream = _flowing_stream(database_url, stream_login, river_sensors)
    postgres.stop("fast")
    try:
        wait_until(lambda: stream.sent > 2000, message="more published while the database is down")
        assert worker.metric("smartcity_ingest_broker_connected") == 1.0
    finally:
        postgres.start()
    _expect_all_stored(database_url, stream)
    assert (worker.metric("smartcity_ingest_write_retries_total") or 0) >= 1


def test_broker_restart_mid_stream_loses_nothing(
        database_url: str, fresh_mosquitto: EmbeddedMosquitto, river_sensors: list[str],
        stream_login: BrokerAddress, workers: list[IngestProcess]) -> None:
    # One worker, plain subscription (the default): Mosquitto 2.0 restores it from persistence,
    # while it does not restore shared subscriptions (see README, Scaling).
    workers[0].env["SMARTCITY_INGEST__SHARE_GROUP"] = ""
    worker = workers[0].start()
    stream = _flowing_stream(database_url, stream_login, river_sensors)
    fresh_mosquitto.stop()  # clean stop: Mosquitto saves sessions and queued messages
    fresh_mosquitto.start()
    wait_until(lambda: worker.metric("smartcity_ingest_broker_connected") == 1.0, timeout=40,
               message="worker reconnected")
    _expect_all_stored(database_url, stream)


def test_three_workers_share_the_stream_without_loss_or_duplicates(
        database_url: str, fresh_mosquitto: EmbeddedMosquitto, river_sensors: list[str],
        stream_login: BrokerAddress, workers: list[IngestProcess]) -> None:
    for worker in workers:
        worker.start()
    stream = TelemetryStream(stream_login, river_sensors, count=3000, rate=2000).start()
    _expect_all_stored(database_url, stream)
    stored = [w.metric("smartcity_ingest_readings_stored_total") for w in workers]
    duplicates = [w.metric("smartcity_ingest_readings_duplicate_total") for w in workers]
    assert sum(stored) == stream.count  # the union is exactly what was published
    assert all(s > 0 for s in stored), f"every worker takes a share: {stored}"
    assert duplicates == [0, 0, 0]
