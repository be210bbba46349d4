"""Retention against real TimescaleDB: which chunks go, which stay and why, the raw horizon the
refresher then respects, dry runs, settings refused, the Apache edition's refusal to compress, and
`smartcity db retention`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from smartcity.cli import main
from smartcity.db.retention import RetentionError, RetentionReport, enforce_retention, plan_retention
from smartcity.settings import RetentionSettings, load_settings
from tests.services import wait_until

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ROLLUPS = ("rollup_1m", "rollup_1h", "rollup_1d")
PM25 = 2  # any metric id of the catalogue; readings carry no foreign key


@pytest.fixture
def conn(db: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The clean database, with empty rollups, no pending marks and no raw horizon, before and
    after: a horizon left behind would make the refresher skip other tests' hours."""
    clean = "TRUNCATE rollup_1m, rollup_1h, rollup_1d, rollup_pending, retention_horizon"
    db.execute(clean)
    yield db
    db.execute(clean)
    db.execute("TRUNCATE readings")


def _add_readings(conn: psycopg.Connection, *times: datetime, device: int = 1) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO readings (time, device, metric, value) VALUES (%s, %s, %s, 1.5)",
                        [(t, device, PM25) for t in times])


def _add_rollup(conn: psycopg.Connection, table: str, bucket: datetime, count: int = 1) -> None:
    assert table in ROLLUPS
    conn.execute(f"INSERT INTO {table} (device, metric, bucket, count, sum, min, max, first, first_time,"  # noqa: S608
                 " last, last_time) VALUES (1, %s, %s, %s, %s, 1.5, 1.5, 1.5, %s, 1.5, %s)",
                 (PM25, bucket, count, 1.5 * count, bucket, bucket))


def _chunks(conn: psycopg.Connection, table: str) -> list[tuple[datetime, datetime]]:
    """The table's chunk ranges, read from the catalogue view rather than through the module."""
    return conn.execute("SELECT range_start, range_end FROM timescaledb_information.chunks"
                        " WHERE hypertable_name = %s ORDER BY range_start", (table,)).fetchall()


def _state(conn: psycopg.Connection) -> dict[str, object]:
    state: dict[str, object] = {t: _chunks(conn, t) for t in ("readings", *ROLLUPS)}
    for table in ("readings", *ROLLUPS):
        state[f"{table} rows"] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
    state["horizon"] = conn.execute("SELECT * FROM retention_horizon").fetchall()
    state["pending"] = conn.execute("SELECT count(*) FROM rollup_pending").fetchone()
    return state


def _ranges(chunks: list) -> list[tuple[datetime, datetime]]:  # type: ignore[type-arg]
    return [(c.start, c.end) for c in chunks]


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.fixture
def history(conn: psycopg.Connection) -> psycopg.Connection:
    """Raw readings at noon from 100 to 80 days before NOW; rollups of every size at chosen ages."""
    _add_readings(conn, *(NOW - timedelta(days=d) for d in range(80, 101)))
    for age in (400, 380, 360, 10):
        _add_rollup(conn, "rollup_1m", NOW - timedelta(days=age))
    for table in ("rollup_1h", "rollup_1d"):
        for age in (1000, 400, 10):
            _add_rollup(conn, table, _midnight(NOW - timedelta(days=age)))
    return conn


def test_retention_drops_exactly_the_chunks_past_their_age(history: psycopg.Connection) -> None:
    conn = history
    before = {t: _chunks(conn, t) for t in ("readings", *ROLLUPS)}

    report = enforce_retention(conn, RetentionSettings(), now=NOW)

    # Raw: 90 days. Chunks are UTC days; the one holding NOW - 90 d itself ends after the cutoff.
    cutoff = NOW - timedelta(days=90)
    gone = [(_midnight(NOW - timedelta(days=d)), _midnight(NOW - timedelta(days=d)) + DAY)
            for d in range(100, 90, -1)]
    assert _ranges(report.table("readings").drop) == gone
    assert _chunks(conn, "readings") == [r for r in before["readings"] if r not in gone]
    assert conn.execute("SELECT min(time), count(*) FROM readings").fetchone() == (cutoff, 11)
    # 1-minute rollups: 365 days; the rows 400 and 380 days old go, 360 and 10 days old stay.
    minute_gone = [r for r in before["rollup_1m"] if r[1] <= NOW - timedelta(days=365)]
    assert len(minute_gone) == 2 and _ranges(report.table("rollup_1m").drop) == minute_gone
    assert [b for (b,) in conn.execute("SELECT bucket FROM rollup_1m ORDER BY bucket")] == [
        NOW - timedelta(days=360), NOW - timedelta(days=10)]
    # Hourly and daily rollups: kept for ever, even 1,000 days back.
    for table in ("rollup_1h", "rollup_1d"):
        assert report.table(table).drop == [] and report.table(table).cutoff is None
        assert _chunks(conn, table) == before[table]
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)  # noqa: S608
    assert conn.execute("SELECT dropped_before FROM retention_horizon WHERE relation = 'readings'"
                        ).fetchone() == (gone[-1][1],)
    assert report.horizon == gone[-1][1] and not report.dry_run

    again = enforce_retention(conn, RetentionSettings(), now=NOW)
    assert all(t.drop == [] for t in again.tables)


def test_a_dry_run_changes_nothing_and_lists_what_the_real_run_drops(
        history: psycopg.Connection) -> None:
    conn = history
    before = _state(conn)

    planned = enforce_retention(conn, RetentionSettings(), dry_run=True, now=NOW)
    planned_too = plan_retention(conn, RetentionSettings(), now=NOW)

    assert _state(conn) == before
    assert planned.dry_run and planned.to_dict() == planned_too.to_dict()
    assert sum(len(t.drop) for t in planned.tables) == 12  # 10 raw days, 2 weeks of minutes
    real = enforce_retention(conn, RetentionSettings(), now=NOW)
    assert real.dropped == planned.dropped and real.horizon == planned.horizon
    assert _state(conn) != before


def test_pending_rollup_marks_hold_a_raw_chunk_back_until_refreshed(conn: psycopg.Connection) -> None:
    days = [_midnight(NOW - timedelta(days=d)) for d in (95, 94, 93)]
    _add_readings(conn, *(d + timedelta(hours=5) for d in days))
    # The middle day's readings are not rolled up yet.
    conn.execute("SELECT smartcity_mark_rollups_stale(%s, %s)", (days[1], days[1] + DAY))

    report = enforce_retention(conn, RetentionSettings(), now=NOW)

    raw = report.table("readings")
    assert _ranges(raw.drop) == [(days[0], days[1])]
    assert [(h.chunk.start, h.chunk.end) for h in raw.held] == [(days[1], days[2]), (days[2], days[2] + DAY)]
    assert "1 device-hour(s) in it still wait for a rollup refresh" in raw.held[0].reason
    assert "is held back" in raw.held[1].reason
    assert "held" in report.to_text() and "wait for a rollup refresh" in report.to_text()
    # The horizon stops at the held chunk, so the refresher still rolls its hours up.
    assert report.horizon == days[1]
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (2,)
    refreshed = conn.execute("SELECT marks, hours, skipped FROM smartcity_refresh_rollups()").fetchone()
    assert refreshed == (1, 1, 0)
    assert conn.execute("SELECT bucket, count FROM rollup_1h").fetchall() == [
        (days[1] + timedelta(hours=5), 1)]

    after = enforce_retention(conn, RetentionSettings(), now=NOW)
    assert _ranges(after.table("readings").drop) == [(days[1], days[2]), (days[2], days[2] + DAY)]
    assert after.table("readings").held == [] and after.horizon == days[2] + DAY
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM rollup_1h").fetchone() == (1,)  # the rollup outlives them


def test_the_refresher_skips_hours_behind_the_recorded_horizon(conn: psycopg.Connection) -> None:
    old = _midnight(NOW - timedelta(days=120))
    _add_readings(conn, old + timedelta(hours=3))
    report = enforce_retention(conn, RetentionSettings(), now=NOW)
    horizon = old + DAY
    assert report.horizon == horizon
    assert conn.execute("SELECT dropped_before FROM retention_horizon").fetchone() == (horizon,)

    # A bulk load brings a reading behind the horizon and one after it, marked by hand: only the
    # later hour can be rebuilt; the older one would replace a complete rollup with one reading.
    behind, ahead = old + timedelta(hours=7), NOW - timedelta(days=10)
    _add_readings(conn, behind, ahead)
    conn.execute("SELECT smartcity_mark_rollups_stale('-infinity', 'infinity')")
    refreshed = conn.execute("SELECT marks, hours, skipped FROM smartcity_refresh_rollups()").fetchone()
    assert refreshed == (2, 1, 1)
    assert conn.execute("SELECT bucket FROM rollup_1h").fetchall() == [(ahead,)]


def test_rollup_chunks_the_refresher_may_still_read_are_kept(conn: psycopg.Connection) -> None:
    # Every table kept 90 days: a daily rollup in WITA is rebuilt from hours reaching 8 h back
    # before the horizon's UTC midnight, so the hourly chunk ending there must stay.
    _add_rollup(conn, "rollup_1h", datetime(2026, 1, 10, tzinfo=UTC))
    [(_, boundary)] = _chunks(conn, "rollup_1h")
    assert boundary == _midnight(boundary)
    _add_rollup(conn, "rollup_1h", boundary - timedelta(hours=3), count=5)
    _add_readings(conn, boundary - timedelta(hours=12), boundary + timedelta(hours=2))
    now = boundary + timedelta(days=90, hours=12)
    settings = RetentionSettings(raw_days=90, rollup_1m_days=90, rollup_1h_days=90, rollup_1d_days=90)

    report = enforce_retention(conn, settings, now=now)

    assert report.horizon == boundary
    hourly = report.table("rollup_1h")
    assert hourly.drop == [] and [(h.chunk.start, h.chunk.end) for h in hourly.held] == _chunks(
        conn, "rollup_1h")
    assert "may still rebuild" in hourly.held[0].reason
    conn.execute("SELECT smartcity_mark_rollups_stale(%s, %s)", (boundary, boundary + DAY))
    assert conn.execute("SELECT hours, skipped FROM smartcity_refresh_rollups()").fetchone() == (1, 0)
    # The WITA day holding the new hour still counts the 5 readings of the hour kept before it.
    assert conn.execute("SELECT bucket, count FROM rollup_1d").fetchall() == [
        (boundary - timedelta(hours=8), 6)]


@pytest.mark.parametrize(("overrides", "named"), [
    ({"raw_days": 400}, "SMARTCITY_RETENTION__RAW_DAYS=400 keeps data longer than"
                        " SMARTCITY_RETENTION__ROLLUP_1M_DAYS=365"),
    ({"rollup_1h_days": 100}, "SMARTCITY_RETENTION__ROLLUP_1M_DAYS=365 keeps data longer than"
                              " SMARTCITY_RETENTION__ROLLUP_1H_DAYS=100"),
    ({"raw_days": None}, "SMARTCITY_RETENTION__RAW_DAYS=empty (for ever) keeps data longer"),
    ({"rollup_1h_days": None, "rollup_1d_days": 500}, "SMARTCITY_RETENTION__ROLLUP_1H_DAYS"),
    ({"raw_days": 0}, "raw_days"),
    ({"compress_raw_after_days": 90}, "SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS=90"),
])
def test_bad_retention_settings_are_refused_naming_the_key(overrides: dict[str, object],
                                                           named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RetentionSettings.model_validate(overrides)
    assert named in str(caught.value)


def test_retention_settings_load_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMARTCITY_RETENTION__RAW_DAYS", "30")
    monkeypatch.setenv("SMARTCITY_RETENTION__ROLLUP_1M_DAYS", "")  # empty: for ever
    assert load_settings().retention == RetentionSettings(raw_days=30, rollup_1m_days=None)
    monkeypatch.setenv("SMARTCITY_RETENTION__ROLLUP_1D_DAYS", "60")
    with pytest.raises(ValidationError, match="SMARTCITY_RETENTION__ROLLUP_1H_DAYS"):
        load_settings()


def test_compression_on_the_apache_edition_is_refused_naming_setting_and_edition(
        history: psycopg.Connection) -> None:
    conn = history
    assert conn.execute("SHOW timescaledb.license").fetchone() == ("apache",)
    before = _state(conn)
    settings = RetentionSettings(compress_raw_after_days=30)
    for dry_run in (True, False):
        with pytest.raises(RetentionError) as caught:
            enforce_retention(conn, settings, dry_run=dry_run, now=NOW)
        assert "SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS=30" in str(caught.value)
        assert "'apache' edition" in str(caught.value)
    assert _state(conn) == before  # refused whole: nothing dropped either


def _cli(database_url: str, *args: str, **env: str):  # noqa: ANN202 - click's Result
    return CliRunner().invoke(main, ["db", "retention", *args],
                              env={"SMARTCITY_DATABASE_URL": database_url, **env})


def test_cli_dry_run_lists_what_would_go_and_the_real_run_drops_it(
        database_url: str, conn: psycopg.Connection) -> None:
    # The CLI's clock is the real one: readings 200 and 100 days old.
    now = datetime.now(UTC)
    _add_readings(conn, now - timedelta(days=200), now - timedelta(days=100), now - timedelta(days=1))
    before = _state(conn)

    dry = _cli(database_url, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    out = orjson.loads(dry.stdout)
    assert out["dry_run"] is True and _state(conn) == before
    assert [t["table"] for t in out["tables"]] == ["readings", *ROLLUPS]
    raw = out["tables"][0]
    assert raw["keep_days"] == 90 and len(raw["drop"]) == 2 and raw["held"] == []
    assert {"chunk", "start", "end"} <= set(raw["drop"][0])
    text = _cli(database_url, "--dry-run")
    assert text.exit_code == 0 and "readings: keeps 90 days; would drop 2 chunk(s)" in text.output
    assert "rollup_1h: kept for ever" in text.output

    real = _cli(database_url, "--json")
    assert real.exit_code == 0, real.output
    done = orjson.loads(real.stdout)  # the JSON alone on stdout; each drop is logged on stderr
    assert real.stderr.count("retention dropped readings chunk") == 2
    assert done["dry_run"] is False and done["tables"][0]["drop"] == raw["drop"]
    assert done["raw_horizon"] == raw["drop"][-1]["end"]
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)


def test_cli_refuses_compression_on_apache_with_a_clear_error(database_url: str,
                                                             conn: psycopg.Connection) -> None:
    result = _cli(database_url, "--dry-run", SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS="30")
    assert result.exit_code == 1
    assert "COMPRESS_RAW_AFTER_DAYS=30" in result.output and "'apache' edition" in result.output
    bad = _cli(database_url, "--dry-run", SMARTCITY_RETENTION__RAW_DAYS="500")
    assert bad.exit_code == 1 and "SMARTCITY_RETENTION__RAW_DAYS=500" in bad.output


def _waiting_on_lock(conn: psycopg.Connection, pid: int) -> bool:
    row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def test_a_run_waits_for_writers_and_sees_the_marks_they_commit(
        database_url: str, conn: psycopg.Connection) -> None:
    old = _midnight(NOW - timedelta(days=120))
    _add_readings(conn, old + timedelta(hours=1), old + DAY + timedelta(hours=1))
    with psycopg.connect(database_url) as writer, psycopg.connect(database_url) as runner:
        # A writer mid-transaction: a late reading in the older chunk, marked as the write path does.
        writer.execute("INSERT INTO readings (time, device, metric, value) VALUES (%s, 2, %s, 1)",
                       (old + timedelta(hours=2), PM25))
        writer.execute("INSERT INTO rollup_pending (device, hour, first_time, last_time)"
                       " VALUES (2, %s, %s, %s)", (old + timedelta(hours=2),) * 3)
        pid = runner.info.backend_pid
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(
            enforce_retention(runner, RetentionSettings(), now=NOW)))
        thread.start()
        try:
            wait_until(lambda: _waiting_on_lock(conn, pid), message="retention waiting for the writer")
            writer.commit()
        finally:
            thread.join(10)
        runner.commit()
    [report] = result
    assert isinstance(report, RetentionReport)
    raw = report.table("readings")
    # Checked after the writer committed: its mark holds both chunks back, and nothing is lost.
    assert raw.drop == [] and len(raw.held) == 2
    assert conn.execute("SELECT count(*) FROM readings").fetchone() == (3,)
    assert conn.execute("SELECT count(*) FROM retention_horizon").fetchone() == (0,)


def test_a_run_waits_for_a_running_refresh(database_url: str, conn: psycopg.Connection) -> None:
    _add_readings(conn, _midnight(NOW - timedelta(days=120)))
    with psycopg.connect(database_url) as refresher, psycopg.connect(database_url, autocommit=True) as runner:
        refresher.execute("SELECT pg_advisory_xact_lock(smartcity_rollup_lock_key())")
        pid = runner.info.backend_pid
        done = threading.Event()
        thread = threading.Thread(target=lambda: (enforce_retention(runner, RetentionSettings(), now=NOW),
                                                  done.set()))
        thread.start()
        try:
            wait_until(lambda: _waiting_on_lock(conn, pid), message="retention waiting for the refresher")
            assert not done.is_set() and conn.execute("SELECT count(*) FROM readings").fetchone() == (1,)
            refresher.commit()
        finally:
            thread.join(10)
    assert done.is_set() and conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)
