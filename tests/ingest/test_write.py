"""The writer's failure handling and bounds, against the real database and a real worker.

A refusal by the database (a trigger on ``readings``) isolates the refused message and stores the
rest; duplicates leave no ERROR in the server log; quarantine stays one bounded row per message;
a reading stamped in the future cannot freeze the latest values.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import AbstractContextManager

import orjson
import psycopg
import pytest

from ingest.batch import InboundMessage
from ingest.pipeline import IngestWorker, route_batch
from ingest.validate import TimeWindow
from ingest.write import Failure, Writer, classify_error
from smartcity.broker_url import BrokerAddress
from smartcity.contract import MAX_PAYLOAD_BYTES, telemetry_topic
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from smartcity.settings import IngestSettings
from tests.ingest.processes import ingest_settings, running_worker
from tests.ingest.refusal import REFUSED_VALUE, readings_refusing, table_refusing_all
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

WINDOW = TimeWindow(future_s=300, past_s=400 * 86400)
AQ = "aq-write-01"


@pytest.fixture
def aq(db: psycopg.Connection) -> str:
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    return AQ


def _worker(database_url: str, login: BrokerAddress, settings: IngestSettings
            ) -> AbstractContextManager[IngestWorker]:
    return running_worker(database_url, login, settings)


def _count(db: psycopg.Connection, sql: str, *params: object) -> int:
    return db.execute(sql, params).fetchone()[0]


@pytest.mark.parametrize(("error", "failure"), [
    (psycopg.OperationalError("connection lost"), Failure.TRANSIENT),  # no SQLSTATE: no answer
    (psycopg.errors.AdminShutdown(), Failure.TRANSIENT),  # 57P01
    (psycopg.errors.QueryCanceled(), Failure.TRANSIENT),  # 57014
    (psycopg.errors.DeadlockDetected(), Failure.TRANSIENT),  # 40P01
    (psycopg.errors.SerializationFailure(), Failure.TRANSIENT),  # 40001
    (psycopg.errors.TooManyConnections(), Failure.TRANSIENT),  # 53300
    (psycopg.errors.DiskFull(), Failure.TRANSIENT),  # 53100
    (psycopg.errors.ConnectionFailure(), Failure.TRANSIENT),  # 08006
    (psycopg.errors.CheckViolation(), Failure.DATA),  # 23514
    (psycopg.errors.NotNullViolation(), Failure.DATA),  # 23502
    (psycopg.errors.NumericValueOutOfRange(), Failure.DATA),  # 22003
    (psycopg.errors.RaiseException(), Failure.DATA),  # P0001: a trigger's RAISE
    (psycopg.DataError("cannot dump value"), Failure.DATA),  # refused before it was sent
    (psycopg.errors.InsufficientPrivilege(), Failure.SERVER),  # 42501: not the data's fault
    (psycopg.errors.UndefinedTable(), Failure.SERVER),  # 42P01
    (psycopg.errors.InternalError_(), Failure.SERVER),  # XX000
    (psycopg.ProgrammingError("bug"), Failure.SERVER),
])
def test_failures_are_told_apart_by_sqlstate_class(error: psycopg.Error, failure: Failure) -> None:
    assert classify_error(error) is failure


def test_a_refused_message_is_quarantined_alone_and_the_rest_of_its_batch_stored(
        database_url: str, db: psycopg.Connection, aq: str) -> None:
    now = time.time()
    messages = [InboundMessage(telemetry_topic(aq), orjson.dumps(
        {"ts": now - 100 + i, "metrics": {"pm25": i, "pm10": REFUSED_VALUE if i == 20 else i}}), now)
        for i in range(41)]
    writer = Writer(database_url)
    try:
        with readings_refusing(db) as refusal:
            rows = route_batch(writer, messages, WINDOW, threading.Event())
            assert rows is not None
            result = writer.store(rows, threading.Event())
    finally:
        writer.close()
    assert result is not None
    assert (result.readings_stored, dict(result.quarantined)) == (80, {"storage_rejected": 1})
    assert _count(db, "SELECT count(*) FROM readings") == 80
    assert _count(db, "SELECT count(*) FROM readings WHERE value = %s", REFUSED_VALUE) == 0
    [(reason, detail, payload, device_id)] = db.execute(
        "SELECT reason, detail, payload, device_id FROM quarantine").fetchall()
    assert (reason, payload, device_id) == ("storage_rejected", messages[20].payload, aq)
    assert refusal in detail and "P0001" in detail


def test_a_refused_message_through_a_worker_is_acked_and_ingest_goes_on(
        database_url: str, db: psycopg.Connection, fresh_mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins, aq: str) -> None:
    # One ingest account for both workers below: the second resumes the first's session.
    login, gateway = broker_login("ingest", fresh_mosquitto), broker_login("gateway", fresh_mosquitto)
    settings = ingest_settings(login, batch_max_age_ms=1000)  # one batch: the refused message in its middle
    now = int(time.time())
    payloads = [orjson.dumps({"ts": now - 100 + i, "metrics": {
        "pm25": i, "pm10": REFUSED_VALUE if i == 20 else i}}) for i in range(41)]
    with readings_refusing(db) as refusal:
        with _worker(database_url, login, settings) as worker, mqtt_publisher(gateway) as client:
            infos = [client.publish(telemetry_topic(aq), p, qos=1) for p in payloads]
            for info in infos:
                info.wait_for_publish(timeout=5)
            wait_until(lambda: worker.counters.messages >= 41, message="41 messages handled")
            assert worker.counters.batches == 1
            publish(client, telemetry_topic(aq), orjson.dumps({"ts": now, "metrics": {"pm25": 77}}))
            wait_until(lambda: worker.counters.messages >= 42, message="ingest goes on")
            assert worker.metrics.registry.get_sample_value(
                "smartcity_ingest_quarantined_total", {"reason": "storage_rejected"}) == 1
        stored = db.execute("SELECT m.name, r.value, count(*) OVER (PARTITION BY r.device, r.metric, r.time)"
                            " FROM readings r JOIN metrics m ON m.metric_id = r.metric").fetchall()
        assert sorted((name, value) for name, value, _ in stored) == sorted(
            [("pm25", float(i)) for i in range(41) if i != 20]
            + [("pm10", float(i)) for i in range(41) if i != 20] + [("pm25", 77.0)])
        assert all(copies == 1 for _, _, copies in stored)
        quarantined = db.execute("SELECT reason, detail, payload FROM quarantine").fetchall()
        assert len(quarantined) == 1 and quarantined[0][0] == "storage_rejected"
        assert refusal in quarantined[0][1] and quarantined[0][2] == payloads[20]

        # Acked: the same session, back again, gets nothing redelivered. Unacked messages come
        # first on reconnect, so once a new message is handled, none of the old ones can follow.
        with _worker(database_url, login, settings) as again, mqtt_publisher(gateway) as client:
            publish(client, telemetry_topic(aq), orjson.dumps({"ts": now + 1, "metrics": {"pm25": 78}}))
            wait_until(lambda: again.counters.messages >= 1, message="the new message handled")
            assert again.counters.messages == 1 and again.counters.readings_duplicate == 0
    assert _count(db, "SELECT count(*) FROM quarantine") == 1


def test_an_error_that_is_not_the_datas_fault_is_retried_not_quarantined(
        database_url: str, db: psycopg.Connection, aq: str) -> None:
    stop, attempts = threading.Event(), []

    def retried() -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 3:
            stop.set()

    writer = Writer(database_url, max_backoff_s=0.1, on_retry=retried)
    try:
        with table_refusing_all(db, "readings", "'no privilege' USING ERRCODE = 'insufficient_privilege'"):
            message = InboundMessage(telemetry_topic(aq), b'{"metrics": {"pm25": 1}}', time.time())
            rows = route_batch(writer, [message], WINDOW, stop)
            assert rows is not None
            assert writer.store(rows, stop) is None  # stopped while retrying: nothing acked
    finally:
        writer.close()
    assert len(attempts) == 3
    assert _count(db, "SELECT count(*) FROM quarantine") == 0


def test_when_even_the_quarantine_row_is_refused_the_batch_is_retried_not_lost(
        database_url: str, db: psycopg.Connection, aq: str) -> None:
    stop, retries = threading.Event(), []
    writer = Writer(database_url, max_backoff_s=0.1,
                    on_retry=lambda: (retries.append(1), len(retries) >= 2 and stop.set()))
    try:
        with table_refusing_all(db, "quarantine", "'quarantine refused by test'"), readings_refusing(db):
            message = InboundMessage(telemetry_topic(aq), orjson.dumps(
                {"metrics": {"pm10": REFUSED_VALUE}}), time.time())
            rows = route_batch(writer, [message], WINDOW, stop)
            assert rows is not None
            assert writer.store(rows, stop) is None  # unacked: the broker keeps it
    finally:
        writer.close()
    assert len(retries) == 2
    assert _count(db, "SELECT count(*) FROM readings") + _count(db, "SELECT count(*) FROM quarantine") == 0


# The message of issue #7: a 65 KB payload of 4,367 unknown metric names once became 4,367
# quarantine rows (+200 MB table, +204 MB WAL) and held ingest for 7.7 s.
UNKNOWN_NAMES = 4367


def _many_unknown_names(ts: float) -> bytes:
    metrics = {f"radon{i:04d}": 1 for i in range(UNKNOWN_NAMES)}
    return orjson.dumps({"ts": int(ts), "metrics": metrics})


def _wal_lsn(db: psycopg.Connection) -> int:
    return _count(db, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")


def test_a_message_of_thousands_of_bad_parts_is_one_bounded_row_and_does_not_hold_ingest(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress, aq: str) -> None:
    payload = _many_unknown_names(time.time())
    assert 60_000 < len(payload) <= MAX_PAYLOAD_BYTES
    table_before = _count(db, "SELECT pg_total_relation_size('quarantine')")
    wal_before = _wal_lsn(db)
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq), payload)
        sent = time.monotonic()
        publish(client, telemetry_topic(aq), b'{"metrics": {"pm25": 5}}')
        wait_until(lambda: _count(db, "SELECT count(*) FROM readings"), timeout=10,
                   message="the valid message stored")
        took = time.monotonic() - sent
    assert took < 2.0, f"a valid message waited {took:.2f} s behind the bad one"
    [(rows, total, by_reason, kept, size, parts_bytes)] = db.execute(
        "SELECT count(*) OVER (), (parts->>'total')::int, parts->'by_reason', length(payload),"
        " payload_size, pg_column_size(parts) FROM quarantine").fetchall()
    assert (rows, total, by_reason) == (1, UNKNOWN_NAMES, {"unknown_metric": UNKNOWN_NAMES})
    assert kept == size == len(payload)
    assert parts_bytes < 8 * 1024  # twenty details and the counts, not 4,367
    growth = _count(db, "SELECT pg_total_relation_size('quarantine')") - table_before
    wal = _wal_lsn(db) - wal_before
    assert growth < 256 * 1024, f"quarantine grew {growth} bytes"
    assert wal < 1024 * 1024, f"{wal} bytes of WAL"
    assert worker.metrics.registry.get_sample_value(
        "smartcity_ingest_quarantined_bytes_total") == len(payload)
    assert worker.counters.quarantined == UNKNOWN_NAMES


def test_large_payloads_of_an_unknown_device_are_cut_to_the_limit(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress) -> None:
    big = b'{"metrics": {"pm25": 1}, "pad": "' + b"x" * 900_000 + b'"}'
    with mqtt_publisher(gateway) as client:
        for _ in range(10):
            publish(client, telemetry_topic("aq-never-registered"), big)
    wait_until(lambda: worker.counters.messages >= 10, message="10 messages handled")
    rows = db.execute("SELECT reason, device_id, length(payload), payload_size FROM quarantine").fetchall()
    assert rows == [("payload_too_large", "aq-never-registered", MAX_PAYLOAD_BYTES, len(big))] * 10
    assert worker.metrics.registry.get_sample_value(
        "smartcity_ingest_quarantined_bytes_total") == 10 * MAX_PAYLOAD_BYTES


def _log_after(postgres: EmbeddedPostgres, offset: int, db: psycopg.Connection) -> str:
    """Return the server log written since ``offset``, once everything before now is in it."""
    marker = f"test-marker-{uuid.uuid4().hex}"
    db.execute(psycopg.sql.SQL("DO $$ BEGIN RAISE LOG {}; END $$").format(psycopg.sql.Literal(marker)))

    def written() -> str | None:
        with open(postgres.log_file, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return text if marker in text else None

    return wait_until(written, message="marker in postgres.log")


def test_a_redelivered_message_leaves_no_error_in_the_server_log(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress,
        postgres: EmbeddedPostgres, aq: str) -> None:
    offset = postgres.log_file.stat().st_size
    payload = orjson.dumps({"ts": int(time.time()) - 60, "metrics": {"pm25": 3, "pm10": 4}})
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq), payload)
        wait_until(lambda: worker.counters.messages >= 1, message="first copy stored")
        publish(client, telemetry_topic(aq), payload)
        wait_until(lambda: worker.counters.messages >= 2, message="second copy handled")
    assert (worker.counters.readings_stored, worker.counters.readings_duplicate) == (2, 2)
    log = _log_after(postgres, offset, db)
    assert "ERROR" not in log and "duplicate key" not in log, log


def test_a_reading_from_the_near_future_does_not_freeze_the_latest_values(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress, aq: str) -> None:
    now = time.time()
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq), orjson.dumps({"ts": now + 295, "metrics": {"pm25": 999}}))
        wait_until(lambda: worker.counters.messages >= 1, message="future reading stored")
        assert db.execute("SELECT value FROM latest_readings").fetchall() == [(999.0,)]
        for i, value in enumerate((11, 12, 13)):
            publish(client, telemetry_topic(aq), orjson.dumps({"metrics": {"pm25": value}}))
            wait_until(lambda i=i: worker.counters.messages >= 2 + i, message="reading stored")
            latest = db.execute("SELECT value, time, received_at FROM latest_readings").fetchall()
            assert [row[0] for row in latest] == [float(value)]  # what /latest shows
            assert latest[0][1] <= latest[0][2]  # no ts: the receive time, before the storing transaction
    assert _count(db, "SELECT count(*) FROM readings") == 4  # the future reading is still stored
    # A reading that is older than the current latest value still does not replace it.
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(aq), orjson.dumps({"ts": now - 60, "metrics": {"pm25": 1}}))
    wait_until(lambda: worker.counters.messages >= 5, message="late reading stored")
    assert db.execute("SELECT value FROM latest_readings").fetchall() == [(13.0,)]
