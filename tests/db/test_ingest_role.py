"""Ingest end to end as a login of smartcity_ingest (migration 012): a real worker, broker and database
store readings, skip a redelivery, quarantine bad messages, mark rollups, keep latest values, last seen
and status, and never retry for want of a right. Then the rollup refresher, as the owner, refreshes
what the ingest role marked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from psycopg import sql

from ingest.pipeline import IngestWorker
from smartcity.broker_url import BrokerAddress
from smartcity.contract import status_topic, telemetry_topic
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from smartcity.devices import register_device
from smartcity.services import EmbeddedPostgres
from tests.ingest.processes import ingest_settings, running_worker
from tests.ingest.rollups import assert_rollups_equal_raw
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher, publish
from tests.roles import temporary_login
from tests.services import wait_until

# Inside the worker's time window whatever day the tests run; two hours, so two marks.
HOUR_AGO = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
STATION = "aq-tanah-grogot-01"


@pytest.fixture
def ingest_url(postgres: EmbeddedPostgres, db: psycopg.Connection) -> Iterator[str]:
    with temporary_login(db, postgres.url, "smartcity_ingest") as url:
        yield url


@pytest.fixture
def ingest_worker(ingest_url: str, broker_login: BrokerLogins, db: psycopg.Connection
                  ) -> Iterator[IngestWorker]:
    register_device(db, STATION, "air_quality_station", "tanah-grogot")  # the owner registers
    login = broker_login("ingest")
    with running_worker(ingest_url, login, ingest_settings(login, batch_max_age_ms=20)) as worker:
        yield worker


@pytest.fixture
def clear_retained_status(gateway: BrokerAddress) -> Iterator[None]:
    """Clear the station's retained status afterwards: the broker is the session's, and a retained
    `online` would reach every later test's worker as a status of a device it does not know."""
    yield
    with mqtt_publisher(gateway) as client:
        publish(client, status_topic(STATION), b"", retain=True)


def _scalar(db: psycopg.Connection, statement: str, *params: object) -> object:
    return db.execute(statement, params).fetchone()[0]


def test_the_ingest_role_stores_quarantines_marks_and_keeps_latest(
        clear_retained_status: None, ingest_worker: IngestWorker, ingest_url: str, db: psycopg.Connection,
        gateway: BrokerAddress) -> None:
    # The worker's connection is the login's, not the owner's.
    login = ingest_url.split("://")[1].split(":")[0]
    assert _scalar(db, "SELECT count(*) FROM show_chunks('readings')") == 0  # the role will make one
    sessions = db.execute("SELECT DISTINCT usename FROM pg_stat_activity"
                          " WHERE application_name = 'smartcity-ingest'").fetchall()
    assert sessions == [(login,)]
    first = orjson.dumps({"ts": int(HOUR_AGO.timestamp()), "metrics": {"pm25": 35.5, "pm10": 50}})
    second = orjson.dumps({"ts": int(HOUR_AGO.timestamp()) + 3600 - 60, "metrics": {"pm25": 40}})
    with mqtt_publisher(gateway) as client:
        publish(client, telemetry_topic(STATION), first)
        publish(client, telemetry_topic(STATION), first)  # a redelivery: stored once
        publish(client, telemetry_topic(STATION), second)
        publish(client, telemetry_topic(STATION), b"{not json")
        publish(client, telemetry_topic(STATION), b'{"metrics": {"pm25": 5000}}')  # out of range
        publish(client, telemetry_topic("aq-nobody-01"), b'{"metrics": {"pm25": 1}}')
        publish(client, status_topic(STATION), b"online", retain=True)
    wait_until(lambda: ingest_worker.counters.messages >= 7, message="7 messages handled")

    readings = db.execute("SELECT m.name, r.time, r.value FROM readings r JOIN metrics m"
                          " ON m.metric_id = r.metric ORDER BY r.time, m.name").fetchall()
    assert readings == [("pm10", HOUR_AGO, 50.0), ("pm25", HOUR_AGO, 35.5),
                        ("pm25", HOUR_AGO + timedelta(minutes=59), 40.0)]
    assert ingest_worker.counters.readings_duplicate == 2
    reasons = db.execute("SELECT reason, device_id FROM quarantine ORDER BY id").fetchall()
    assert sorted(reasons) == [("invalid_json", STATION), ("out_of_range", STATION),
                               ("unknown_device", "aq-nobody-01")]
    latest = dict(db.execute("SELECT m.name, l.value FROM latest_readings l JOIN metrics m"
                             " ON m.metric_id = l.metric").fetchall())
    assert latest == {"pm25": 40.0, "pm10": 50.0}
    status, last_seen = db.execute("SELECT status, last_seen FROM devices WHERE device_id = %s",
                                   (STATION,)).fetchone()
    assert status == "online" and last_seen is not None
    marks = db.execute("SELECT DISTINCT hour FROM rollup_pending").fetchall()
    assert marks == [(HOUR_AGO,)]
    # The chunk the role's insert created belongs to the hypertable's owner, not to the login: the
    # login can neither drop nor empty it.
    chunks = db.execute("SELECT c::text, pg_get_userbyid(relowner), has_table_privilege(%s, c, 'DELETE'),"
                        " has_table_privilege(%s, c, 'TRUNCATE') FROM show_chunks('readings') c"
                        " JOIN pg_class ON pg_class.oid = c", (login, login)).fetchall()
    owner = _scalar(db, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'readings'::regclass")
    assert len(chunks) == 1 and [row[1:] for row in chunks] == [(owner, False, False)]
    # No write was refused and retried: a missing right would have shown up here (a SERVER
    # failure is retried, loudly, rather than quarantined).
    assert ingest_worker.metrics.registry.get_sample_value("smartcity_ingest_write_retries_total") == 0

    # The owner's refresher brings the rollups up to date with what the ingest role marked.
    marks_done = db.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()[0]
    assert marks_done >= 1
    assert _scalar(db, "SELECT count(*) FROM rollup_pending") == 0
    assert _scalar(db, "SELECT sum(count) FROM rollup_1h") == 3
    assert_rollups_equal_raw(db)


def test_a_login_without_the_ingest_role_holds_its_messages_until_granted(
        postgres: EmbeddedPostgres, db: psycopg.Connection, broker_login: BrokerLogins,
        gateway: BrokerAddress) -> None:
    # A deployment mistake: the worker's login is in the read-only role. Its writes are refused
    # (42501 says nothing about the data), so it retries, loudly, and acks nothing; once the DBA
    # grants the ingest role, everything published meanwhile is stored and nothing was quarantined.
    register_device(db, STATION, "air_quality_station", "tanah-grogot")
    broker = broker_login("ingest")
    with temporary_login(db, postgres.url, "smartcity_grafana") as url, \
            running_worker(url, broker, ingest_settings(broker, batch_max_age_ms=20)) as worker:
        login = url.split("://")[1].split(":")[0]
        with mqtt_publisher(gateway) as client:
            for minute in range(5):
                publish(client, telemetry_topic(STATION), orjson.dumps(
                    {"ts": int(HOUR_AGO.timestamp()) + 60 * minute, "metrics": {"pm25": 10 + minute}}))
        retries = worker.metrics.registry.get_sample_value
        wait_until(lambda: retries("smartcity_ingest_write_retries_total") >= 1, message="a refused write")
        assert _scalar(db, "SELECT count(*) FROM readings") == 0
        assert worker.counters.messages == 0  # nothing handled, so nothing acked
        db.execute(sql.SQL("GRANT smartcity_ingest TO {}").format(sql.Identifier(login)))
        wait_until(lambda: worker.counters.messages >= 5, timeout=30, message="the held messages stored")
    assert _scalar(db, "SELECT count(*) FROM readings") == 5
    assert _scalar(db, "SELECT count(*) FROM quarantine") == 0
