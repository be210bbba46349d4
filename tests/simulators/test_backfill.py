"""Backfill: days of history stored in bulk, the same rows ingest would store, idempotent."""

from __future__ import annotations

import psycopg
import pytest

from simulators.backfill import backfill, parse_duration
from simulators.fleet import build_fleet
from smartcity.catalog import DEVICE_KINDS
from smartcity.launcher import register_fleet

END = 1_800_000_000.0  # fixed, so the grid is known


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400),
                                               ("2w", 14 * 86400), ("3600", 3600), ("1.5d", 129600)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "-1d", "0", "soon", "5y"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_backfill_stores_every_reading_once_and_updates_latest(
        database_url: str, db: psycopg.Connection) -> None:
    specs = build_fleet(4, seed=7, kinds=["weather_station", "river_level_sensor"])
    register_fleet(database_url, specs)
    result = backfill(database_url, specs, seed=7, span_s=2 * 86400, interval_s=600, end=END,
                      progress=False)
    points = 2 * 86400 // 600
    expected = sum(points * len(DEVICE_KINDS[s.kind].metrics) for s in specs)
    assert result.readings == result.stored == expected
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == expected
    first, last = db.execute("SELECT extract(epoch FROM min(time)), extract(epoch FROM max(time))"
                             " FROM readings").fetchone()
    assert float(first) == END - 2 * 86400 and float(last) == END - 600
    assert db.execute("SELECT count(*) FROM latest_readings").fetchone()[0] == sum(
        len(DEVICE_KINDS[s.kind].metrics) for s in specs)
    out_of_range = db.execute(
        "SELECT count(*) FROM readings r JOIN metrics m ON m.metric_id = r.metric"
        " WHERE r.value < m.min_value OR r.value > m.max_value").fetchone()[0]
    assert out_of_range == 0
    # Analysed at the end: every chunk has its statistics, so the refresh is planned on real sizes.
    unanalysed = db.execute(
        "SELECT count(*) FROM show_chunks('readings') AS chunk JOIN pg_class c ON c.oid = chunk"
        " WHERE c.reltuples <= 0").fetchone()[0]
    assert unanalysed == 0 and db.execute("SELECT count(*) FROM show_chunks('readings')").fetchone()[0] > 0

    again = backfill(database_url, specs, seed=7, span_s=2 * 86400, interval_s=600, end=END,
                     progress=False)
    assert again.stored == 0  # same grid, same keys: nothing twice


def test_backfill_refuses_unregistered_devices(database_url: str) -> None:
    specs = build_fleet(2, seed=1)
    with pytest.raises(ValueError, match="not registered"):
        backfill(database_url, specs, seed=1, span_s=3600, interval_s=600, progress=False)


def test_a_backfilled_haze_shows_in_the_history(database_url: str, db: psycopg.Connection) -> None:
    from simulators.scenarios import get_scenario

    specs = build_fleet(1, seed=3, kinds=["air_quality_station"])
    register_fleet(database_url, specs)
    backfill(database_url, specs, seed=3, span_s=14 * 86400, interval_s=1800, end=END,
             scenario=get_scenario("haze"), progress=False)
    daily = [row[0] for row in db.execute(
        "SELECT avg(value) FROM readings WHERE metric = 1"
        " GROUP BY time_bucket('1 day', time) ORDER BY 1 DESC").fetchall()]
    assert daily[0] > 55.4  # the worst day is past ISPU "Tidak Sehat"'s lower edge
    assert min(daily) < 55.4  # and there are clear days around the episode
