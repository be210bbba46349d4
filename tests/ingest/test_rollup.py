"""The rollup refresher against a real database (and a real broker and ingest worker where it matters):
rollups equal a recomputation from the raw readings after every kind of catch-up, a killed refresher
loses nothing, two refreshers take turns, a time-zone change rebuilds the days, outages are survived."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
import pytest

from ingest.metrics import RollupMetrics
from ingest.pipeline import IngestWorker
from ingest.rollup import Refresher, RollupService, TimezoneRefused, catch_up_once, run_rollup
from simulators.backfill import backfill
from simulators.fleet import build_fleet
from smartcity.broker_url import BrokerAddress
from smartcity.devices import register_device
from smartcity.launcher import register_fleet
from smartcity.settings import RetentionSettings, RollupSettings, Settings
from tests.ingest.rollups import assert_rollups_equal_raw, buckets_equal_raw, hour_of
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

END = 1_800_000_000.0 - 1_800_000_000.0 % 86400  # a UTC midnight, so the days are known


@pytest.fixture
def rollup_db(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The clean test database with empty rollups, no pending marks, no raw horizon and days in
    Asia/Makassar, before and after: a horizon left behind would make other tests' refreshers skip
    every hour before it."""
    clean = "TRUNCATE rollup_pending, rollup_1m, rollup_1h, rollup_1d, retention_horizon"
    db.execute(clean)
    db.execute("SELECT smartcity_set_rollup_timezone('Asia/Makassar')")
    yield db
    db.execute(clean)
    db.execute("SELECT smartcity_set_rollup_timezone('Asia/Makassar')")


def _pending(db: psycopg.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM rollup_pending").fetchone()[0])


def _settings(**changes: object) -> RollupSettings:
    return RollupSettings(**{"interval_s": 0.1, "metrics_port": 0, **changes})


@contextmanager
def _running(url: str, settings: RollupSettings) -> Iterator[RollupService]:
    """Run a refresher service in a thread until the block ends."""
    service = RollupService(url, settings)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield service
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "the refresher did not stop within 10 s"


def _backfill(url: str, kinds: list[str], days: float, interval_s: float, seed: int = 3,
              end: float = END) -> int:
    specs = build_fleet(len(kinds), seed=seed, kinds=kinds)
    register_fleet(url, specs)
    return backfill(url, specs, seed=seed, span_s=days * 86400, interval_s=interval_s, end=end,
                    progress=False).stored


def _observations(start: float, count: int, step_s: float, metrics: dict[str, list[float]]) -> bytes:
    return orjson.dumps([{"ts": start + i * step_s, "metrics": {m: v[i] for m, v in metrics.items()}}
                         for i in range(count)])


def test_readings_through_a_live_worker_are_rolled_up_exactly_and_the_lag_comes_back_down(
        database_url: str, rollup_db: psycopg.Connection, worker: IngestWorker,
        gateway: BrokerAddress) -> None:
    db = rollup_db
    register_device(db, "wm-roll-01", "water_meter", "tanah-grogot")
    register_device(db, "aq-roll-01", "air_quality_station", "kuaro")
    base = time.time() - 2 * 86400
    base -= base % 3600
    # A water meter over 30 hours with a counter reset, two readings in some minutes (every 37 s),
    # and an air-quality station every 10 minutes across a WITA midnight.
    volume = [1000.0 + 3.5 * i for i in range(2900)]
    volume[1500:] = [v - volume[1500] + 2.0 for v in volume[1500:]]  # the meter was replaced
    aq = {m: [float(10 + (i * 7 + k) % 90) for i in range(180)]
          for k, m in enumerate(("pm25", "pm10", "co", "no2", "o3", "so2", "hc"))}
    settings = RollupSettings(metrics_port=0)  # the defaults: a catch-up every 5 s, bound 60 s
    lags: list[float] = []

    def drained() -> bool:
        # The age of the oldest pending mark, as every reader of the rollups would see it.
        lags.append(float(db.execute("SELECT extract(epoch FROM smartcity_rollup_lag())").fetchone()[0]))
        return _pending(db) == 0
    with _running(database_url, settings) as service, mqtt_publisher(gateway) as client:
        for i in range(0, 2900, 500):  # batches of at most 1000 observations, as the contract allows
            n = min(500, 2900 - i)
            publish(client, "smartcity/v1/devices/wm-roll-01/telemetry",
                    _observations(base + i * 37, n, 37, {"water_volume": volume[i:i + n],
                                                         "water_pressure": [2.5] * n}))
        publish(client, "smartcity/v1/devices/aq-roll-01/telemetry", _observations(base, 180, 600, aq))
        stored = 2900 * 2 + 180 * 7
        wait_until(lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] == stored,
                   timeout=30, message="every reading stored")
        wait_until(drained, timeout=30, interval=0.2, message="marks refreshed")
        assert_rollups_equal_raw(db)

        # Late readings inside hours already refreshed, and before everything else: the old
        # buckets are corrected, not left stale.
        publish(client, "smartcity/v1/devices/wm-roll-01/telemetry",
                _observations(base + 5 * 3600 + 0.5, 20, 60, {"water_volume": [1.0 * i for i in range(20)]}))
        publish(client, "smartcity/v1/devices/aq-roll-01/telemetry",
                _observations(base - 86400 + 5, 3, 7, {"pm25": [1.0, 2.0, 3.0]}))
        wait_until(lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] == stored + 23,
                   timeout=30, message="late readings stored")
        wait_until(drained, timeout=30, interval=0.2, message="late marks refreshed")
        lag = service.refresher.lag_s()
    checked = assert_rollups_equal_raw(db)
    assert checked > 5000  # minutes, hours and days of both devices were compared
    # Within one interval and a catch-up, far under the bound; and none left at the end.
    assert max(lags) < settings.interval_s + 5 < settings.max_lag_s and lag == 0.0
    metrics = service.refresher.metrics.registry
    assert (metrics.get_sample_value("smartcity_rollup_marks_total") or 0) >= 2 * 30
    assert (metrics.get_sample_value("smartcity_rollup_rows_total", {"rollup": "1d"}) or 0) > 0
    assert (metrics.get_sample_value("smartcity_rollup_refresh_seconds_count") or 0) > 0


def _smartcity(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    environ.update({"SMARTCITY_DATABASE_URL": url, **env})
    return subprocess.run([sys.executable, "-m", "smartcity", *args], env=environ, capture_output=True,
                          text=True, timeout=120, check=False)


def test_rollup_once_catches_up_a_backfill_and_prints_what_it_refreshed(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    db = rollup_db
    stored = _backfill(database_url, ["weather_station", "water_meter", "street_light"], days=1.5,
                       interval_s=300)
    hours = db.execute("SELECT count(DISTINCT (device, time_bucket('1 hour', time))) FROM readings"
                       ).fetchone()[0]
    assert _pending(db) >= hours > 0

    done = _smartcity(database_url, "rollup", "--once", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["marks"] == hours and result["minutes"] == stored  # one reading per minute
    assert result["hours"] == db.execute("SELECT count(*) FROM rollup_1h").fetchone()[0] > 0
    assert result["days"] == db.execute("SELECT count(*) FROM rollup_1d").fetchone()[0] > 0
    assert (result["pending_after"], result["skipped"], result["timezone"]) == (0, 0, "Asia/Makassar")
    assert _pending(db) == 0
    assert_rollups_equal_raw(db)

    again = _smartcity(database_url, "rollup", "--once")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("refreshed 0 pending hours in 0 rounds")


def test_rollup_refuses_json_without_once_and_a_zone_the_rollups_cannot_use(database_url: str) -> None:
    refused = _smartcity(database_url, "rollup", "--json")
    assert refused.returncode == 2 and "--json needs --once" in refused.stderr
    for zone, why in [("Asia/Kolkata", "whole number of hours"), ("Mars/Olympus", "not an IANA")]:
        bad = _smartcity(database_url, "rollup", "--once", SMARTCITY_ROLLUP__TIMEZONE=zone)
        assert bad.returncode == 1 and "SMARTCITY_ROLLUP__TIMEZONE" in bad.stderr and why in bad.stderr


def test_the_database_refusing_the_zone_is_a_clear_error_and_changes_nothing(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    # Settings refuse such a zone at load; this is the database's own check behind it.
    unchecked = RollupSettings.model_construct(timezone="Asia/Kathmandu", max_marks=100)
    refresher = Refresher(database_url, unchecked)
    with pytest.raises(TimezoneRefused, match="whole number of hours"):
        refresher.set_timezone()
    refresher.close()
    assert rollup_db.execute("SELECT timezone FROM rollup_settings").fetchone()[0] == "Asia/Makassar"


def _rollup_backends(db: psycopg.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM pg_stat_activity"
                          " WHERE application_name = 'smartcity-rollup'").fetchone()[0])


def test_a_refresher_killed_mid_catch_up_loses_nothing(
        database_url: str, rollup_db: psycopg.Connection, tmp_path: Path) -> None:
    db = rollup_db
    _backfill(database_url, ["weather_station", "water_meter", "air_quality_station", "street_light"],
              days=3, interval_s=60)
    marks = _pending(db)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    environ.update({"SMARTCITY_DATABASE_URL": database_url, "SMARTCITY_ROLLUP__MAX_MARKS": "2",
                    "SMARTCITY_ROLLUP__METRICS_PORT": "0"})
    with open(tmp_path / "rollup.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "smartcity", "rollup"], env=environ,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _pending(db) < marks * 0.7, timeout=60, interval=0.01,
                   message="part of the catch-up done")
        # Kill it while its refresh transaction runs (it is nearly always inside one).
        wait_until(lambda: db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'smartcity-rollup'"
            " AND state = 'active' AND query LIKE '%smartcity_refresh_rollups%'").fetchone()[0],
            timeout=10, interval=0.001, message="a refresh transaction running")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    # The server ends the orphaned transaction by itself (committed whole, or rolled back).
    wait_until(lambda: _rollup_backends(db) == 0, timeout=30, message="the refresher's backend gone")
    left = _pending(db)
    assert 0 < left < marks, (left, marks)
    pending_hours = {(d, h) for d, h in db.execute("SELECT device, hour FROM rollup_pending").fetchall()}
    for width in ("1m", "1h"):
        _, wrong = buckets_equal_raw(db, width)
        # Every bucket that is not exact belongs to an hour whose mark is still there.
        assert {(d, hour_of(b)) for d, _, b in wrong} <= pending_hours, width
    assert buckets_equal_raw(db, "1h")[0]  # and some hours were refreshed before the kill

    done = catch_up_once(database_url, _settings(), threading.Event())
    assert done is not None and done.pending_after == 0 and done.refreshed.marks > 0
    assert_rollups_equal_raw(db)


def test_two_refreshers_take_turns_and_the_result_is_exact(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    db = rollup_db
    _backfill(database_url, ["weather_station", "water_meter", "noise_monitor"], days=2, interval_s=120)
    # One refresher is inside its transaction (it holds the lock until it commits)…
    with psycopg.connect(database_url) as holder:
        claimed = holder.execute("SELECT marks FROM smartcity_refresh_rollups(5)").fetchone()[0]
        assert claimed > 0
        # …so another one is told so (marks NULL) and changes nothing…
        other = Refresher(database_url, _settings())
        assert other.refresh() is None
        other.close()
        # …and `rollup --once` waits its turn rather than returning with work left.
        metrics = RollupMetrics()
        stop, results = threading.Event(), []
        waiter = threading.Thread(target=lambda: results.append(
            catch_up_once(database_url, _settings(max_marks=50), stop, metrics)))
        waiter.start()
        wait_until(lambda: (metrics.registry.get_sample_value("smartcity_rollup_busy_total") or 0) >= 2,
                   message="the second refresher waiting")
        assert waiter.is_alive()
        holder.commit()
    waiter.join(60)
    assert not waiter.is_alive()
    done = results[0]
    assert done is not None and done.waited_s > 0 and done.pending_after == 0
    assert_rollups_equal_raw(db)

    # Two services at once over a fresh backfill, small claims so that they collide.
    _backfill(database_url, ["weather_station", "water_meter"], days=2, interval_s=120, seed=9,
              end=END - 5 * 86400)
    with _running(database_url, _settings(max_marks=3, interval_s=0.01)) as a, \
            _running(database_url, _settings(max_marks=3, interval_s=0.01)) as b:
        wait_until(lambda: _pending(db) == 0, timeout=60, message="both refreshers done")
    refreshed = [(s.refresher.metrics.registry.get_sample_value("smartcity_rollup_marks_total") or 0)
                 for s in (a, b)]
    assert sum(refreshed) > 0
    assert_rollups_equal_raw(db)


def test_a_time_zone_change_rebuilds_the_days_in_the_new_zone(
        database_url: str, rollup_db: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    db = rollup_db
    _backfill(database_url, ["water_meter", "weather_station"], days=3, interval_s=600)
    wita = Refresher(database_url, _settings())
    assert wita.set_timezone() is False  # already Asia/Makassar
    wita.catch_up()
    wita.close()
    assert_rollups_equal_raw(db, "Asia/Makassar")
    wita_days = db.execute("SELECT count(*) FROM rollup_1d").fetchone()[0]

    for zone in ("UTC", "Asia/Jakarta"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest.rollup"):
            refresher = Refresher(database_url, _settings(timezone=zone))
            assert refresher.set_timezone() is True
            assert refresher.set_timezone() is False  # only a change rebuilds
            refresher.close()
        assert f"daily rollups rebuilt in {zone}" in caplog.text
        assert db.execute("SELECT timezone FROM rollup_settings").fetchone()[0] == zone
        assert_rollups_equal_raw(db, zone, widths=("1d",))
    # 3 days of data starting at a UTC midnight: 3 UTC days, 4 WITA or WIB days (partial ends).
    assert db.execute("SELECT count(DISTINCT bucket) FROM rollup_1d").fetchone()[0] == 4
    assert wita_days == db.execute("SELECT count(*) FROM rollup_1d").fetchone()[0]


def test_the_service_survives_losing_its_connection_and_warns_about_lag(
        database_url: str, rollup_db: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    db = rollup_db
    caplog.set_level(logging.INFO, logger="ingest.rollup")
    with _running(database_url, _settings(interval_s=0.2, max_lag_s=30)) as service:
        wait_until(lambda: _rollup_backends(db) == 1, message="refresher connected")
        # An operator (or a failover) ends the refresher's session; meanwhile a mark that has
        # waited two minutes (of a device with no readings) puts the lag over its bound.
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name = 'smartcity-rollup'")
        db.execute("INSERT INTO rollup_pending (device, hour, first_time, last_time, marked_at)"
                   " VALUES (0, '2026-01-01', '2026-01-01', '2026-01-01 00:00:30',"
                   " now() - interval '2 minutes')")
        _backfill(database_url, ["water_meter"], days=0.5, interval_s=60)
        wait_until(lambda: _pending(db) == 0, timeout=30, message="marks refreshed after the outage")
        wait_until(lambda: "rollup lag back to" in caplog.text, timeout=10, message="lag back under")
    assert "rollup refresh failed (transient" in caplog.text
    assert "rollups lag the readings by" in caplog.text and "SMARTCITY_ROLLUP__MAX_LAG_S" in caplog.text
    errors = service.refresher.metrics.registry.get_sample_value("smartcity_rollup_errors_total",
                                                                 {"kind": "transient"})
    assert errors and errors >= 1
    assert_rollups_equal_raw(db)


def test_the_service_stops_promptly_on_request(database_url: str, rollup_db: psycopg.Connection) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    environ.update({"SMARTCITY_DATABASE_URL": database_url, "SMARTCITY_ROLLUP__METRICS_PORT": "0",
                    "SMARTCITY_ROLLUP__INTERVAL_S": "3600"})
    process = subprocess.Popen([sys.executable, "-m", "smartcity", "rollup"], env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _rollup_backends(rollup_db) == 1, timeout=20, message="refresher connected")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert b"received SIGTERM; stopping" in output


def test_a_catch_up_leaves_marks_written_after_it_began_to_the_next_one(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    db = rollup_db

    def mark(count: int, marked_at: str) -> None:
        # Marks of a device without readings: refreshing them writes nothing, which keeps the
        # rounds fast and the count of rounds exact.
        db.execute("INSERT INTO rollup_pending (device, hour, first_time, last_time, marked_at)"
                   " SELECT 0, h, h, h, " + marked_at + " FROM generate_series("
                   " '2026-01-01'::timestamptz, '2026-01-01'::timestamptz + (%s - 1) * interval '1 hour',"
                   " interval '1 hour') h", (count,))

    refresher = Refresher(database_url, _settings(max_marks=1))
    mark(3, "now() - interval '1 minute'")  # older than the catch-up: all of them, one per round
    first = refresher.catch_up()
    assert first is not None and (first.marks, first.rounds) == (3, 3) and _pending(db) == 0

    mark(1, "now() - interval '1 minute'")
    mark(3, "now() + interval '1 hour'")  # stand-ins for marks written while it runs
    second = refresher.catch_up()
    refresher.close()
    assert second is not None and (second.marks, second.rounds) == (1, 1)
    assert _pending(db) == 3  # left for the next catch-up, not chased


def test_hours_older_than_the_raw_horizon_are_left_alone_and_counted(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    db = rollup_db
    _backfill(database_url, ["weather_station", "water_meter"], days=2, interval_s=600)
    first = catch_up_once(database_url, _settings(), threading.Event())
    assert first is not None and first.refreshed.skipped == 0
    before = db.execute("SELECT count(*), sum(count) FROM rollup_1h").fetchone()
    # Retention dropped raw readings up to a day ago; then everything is marked again (a restore).
    db.execute("INSERT INTO retention_horizon (relation, dropped_before)"
               " VALUES ('readings', to_timestamp(%s))", (END - 86400,))
    marked = db.execute("SELECT smartcity_mark_rollups_stale('-infinity', 'infinity')").fetchone()[0]
    metrics = RollupMetrics()
    done = catch_up_once(database_url, _settings(), threading.Event(), metrics)
    assert done is not None and done.pending_after == 0
    assert done.refreshed.marks == marked and done.refreshed.skipped == marked // 2 > 0
    assert metrics.registry.get_sample_value("smartcity_rollup_skipped_hours_total") == marked // 2
    assert db.execute("SELECT count(*), sum(count) FROM rollup_1h").fetchone() == before
    assert_rollups_equal_raw(db)


def test_the_service_enforces_retention_on_its_schedule_and_keeps_the_rollups(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    db = rollup_db
    now = time.time()
    # Two days of readings 100 days back (past the 90-day raw retention) and two recent ones,
    # stored through the write path, so the rollups are built from them before they go.
    _backfill(database_url, ["weather_station"], days=2, interval_s=3600, end=now - 100 * 86400)
    _backfill(database_url, ["weather_station"], days=2, interval_s=3600, end=now)
    old_hours = db.execute("SELECT count(*) FROM readings WHERE time < now() - interval '95 days'"
                           ).fetchone()[0]
    assert old_hours > 0
    settings = Settings(database_url=database_url, rollup=_settings(),
                        retention=RetentionSettings(interval_s=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=run_rollup, args=(settings, stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: db.execute("SELECT count(*) FROM retention_horizon").fetchone()[0] == 1,
                   timeout=30, message="the scheduled retention run")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert db.execute("SELECT count(*) FROM readings WHERE time < now() - interval '95 days'"
                      ).fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] > 0  # the recent days stay
    # The old days are still answered, from the rollups the refresher built before the drop.
    old = db.execute("SELECT sum(count) FROM rollup_1h WHERE bucket < now() - interval '95 days'"
                     ).fetchone()[0]
    assert old == old_hours


def test_rollup_stops_with_a_clear_error_when_retention_cannot_run(
        database_url: str, rollup_db: psycopg.Connection) -> None:
    # Compression needs the community edition; this one is Apache: the service says so and stops
    # (under `smartcity up`, a crash loop with the same message) instead of failing every hour.
    result = _smartcity(database_url, "rollup", SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS="7",
                        SMARTCITY_ROLLUP__METRICS_PORT="0")
    assert result.returncode == 1
    assert "SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS" in result.stderr
    assert "apache" in result.stderr
