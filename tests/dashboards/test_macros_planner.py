"""Grafana's macro expansion (dashboards.macros) run against the real test database: expanded panel
queries go through the planner (smartcity_aggregate) for several ranges and variable selections.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from dashboards.macros import ALL, Variable, expand, interval_for
from smartcity.db.queries.bench import REFRESH_ROLLUPS
from smartcity.services import EmbeddedPostgres
from tests.api.readings_seed import register, write_readings

F = datetime(2026, 9, 15, 4, 30, tzinfo=UTC)

END = datetime(2026, 11, 30, tzinfo=UTC)
DEVICES = {"aq-grogot-01": ("air_quality_station", "tanah-grogot"),
           "aq-grogot-02": ("air_quality_station", "tanah-grogot"),
           "aq-kuaro-01": ("air_quality_station", "kuaro")}
PLANNER_DISTRICT = Variable("district", ("tanah-grogot", "kuaro", "long-ikis"), multi=True, include_all=True)
PLANNER_DEVICE = Variable("device", tuple(DEVICES), multi=True, include_all=True)

SERIES = """
SELECT time, key AS metric, value
FROM smartcity_aggregate('pm25', '$__interval', 'avg', $__timeFrom(), $__timeTo(),
                         site_ids => ARRAY[${district:sqlstring}]::text[], group_by => 'site')
ORDER BY time, key
"""
PER_DEVICE = """
SELECT $__timeGroupAlias(time, $__interval), key AS metric, max(value) AS value
FROM smartcity_aggregate('pm25', '$__interval', 'max', $__timeFrom(), $__timeTo(),
                         device_ids => ARRAY[$device]::text[])
WHERE $__timeFilter(time)
GROUP BY 1, 2 ORDER BY 1, 2
"""
TABLE = """
SELECT key AS district, sum(count) AS readings, max(value) AS worst_hour
FROM smartcity_aggregate('pm25', '1h', 'avg', $__timeFrom(), $__timeTo(),
                         site_ids => ARRAY[${district:sqlstring}]::text[], group_by => 'site')
GROUP BY key ORDER BY key
"""
SPANS = (timedelta(minutes=15), timedelta(hours=6), timedelta(hours=24), timedelta(days=7),
         timedelta(days=30), timedelta(days=90))


@pytest.fixture(scope="module")
def paser_db(postgres: EmbeddedPostgres) -> Iterator[str]:
    """A database holding 91 days of PM2.5 (every 30 min, every minute for the last day), refreshed."""
    url = postgres.url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, latest_readings, quarantine, devices, rollup_1m, rollup_1h,"
                     " rollup_1d, rollup_pending, retention_horizon RESTART IDENTITY CASCADE")
        keys = register(conn, DEVICES)
        start = int((END - timedelta(days=91)).timestamp())
        stop = int(END.timestamp())
        readings = [(device, "pm25", float(epoch), 20.0 + n % 7 + (epoch // 1800) % 50)
                    for n, device in enumerate(DEVICES)
                    for epoch in [*range(start, stop - 86_400, 1_800), *range(stop - 86_400, stop, 60)]]
        write_readings(url, keys, readings)
        while conn.execute(REFRESH_ROLLUPS).fetchone() != (0,):
            pass
    yield url


@pytest.mark.parametrize("span", SPANS, ids=lambda s: str(s).replace(" ", ""))
@pytest.mark.parametrize("points", [1000, 500])
def test_expanded_panel_queries_run_through_the_planner(paser_db: str, span: timedelta, points: int) -> None:
    time_from = END - span
    interval = interval_for(time_from, END, points)
    with psycopg.connect(paser_db, autocommit=True) as conn:
        for district in PLANNER_DISTRICT.selections():
            sql = expand(SERIES, time_from=time_from, time_to=END, variables=(district,),
                         max_data_points=points)
            assert f"'{interval.text}'" in sql and "${" not in sql and "$__" not in sql
            rows = conn.execute(sql).fetchall()
            wanted = {"tanah-grogot", "kuaro"} & set(PLANNER_DISTRICT.values if district.selected == (ALL,)
                                                     else district.selected)
            assert {row[1] for row in rows} == wanted, (district.selected, sql)
            times = [row[0] for row in rows]
            # A bucket is labelled by its start in the rollup zone (WITA): a 3h bucket can begin
            # before the range does, never a whole bucket before it.
            bucket = timedelta(milliseconds=interval.ms)
            assert times == sorted(times) and all(time_from - bucket < t < END for t in times)
        for device in PLANNER_DEVICE.selections():
            sql = expand(PER_DEVICE, time_from=time_from, time_to=END, variables=(device,),
                         max_data_points=points)
            rows = conn.execute(sql).fetchall()
            chosen = set(DEVICES) if device.selected == (ALL,) else set(device.selected)
            assert {row[1] for row in rows} == chosen
            assert all(row[0] == _bucket_start(row[0], interval.ms) for row in rows)


def test_a_table_panel_counts_every_reading_in_the_range(paser_db: str) -> None:
    # The last day holds one reading a minute per device: value 20 + device number + half-hour step.
    hours = range(int(END.timestamp()) - 86_400, int(END.timestamp()), 3_600)
    def worst(numbers: tuple[int, ...]) -> float:
        return max(sum(20 + n + (e // 1800) % 50 for n in numbers for e in range(h, h + 3_600, 60))
                   / (60 * len(numbers)) for h in hours)
    with psycopg.connect(paser_db, autocommit=True) as conn:
        sql = expand(TABLE, time_from=END - timedelta(days=1), time_to=END, max_data_points=500,
                     variables=(PLANNER_DISTRICT.select(ALL),))
        assert conn.execute(sql).fetchall() == [("kuaro", 1440, pytest.approx(worst((2,)))),
                                                ("tanah-grogot", 2880, pytest.approx(worst((0, 1))))]


def _bucket_start(moment: datetime, ms: int) -> datetime:
    epoch_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms - epoch_ms % ms)


# Every $__interval text Grafana's table can produce over the default 1m floor, and whether the
# planner takes it as a bucket. "1y" is the one it refuses: asked when range / maxDataPoints ≥ 6 weeks.
LADDER_TEXTS = ("1m", "2m", "5m", "10m", "15m", "20m", "30m", "1h", "2h", "3h", "6h", "12h", "1d",
                "7d", "30d", "1y")


def test_which_interval_texts_the_planner_accepts_as_buckets(paser_db: str) -> None:
    texts = {interval_for(F, F + timedelta(days=days), 1).text
             for days in (0.001, 0.002, 0.004, 0.007, 0.011, 0.015, 0.02, 0.03, 0.05, 0.1, 0.15, 0.3,
                          0.6, 2, 10, 30, 60)}
    assert texts == set(LADDER_TEXTS)
    below_floor = ("1s", "5s", "30s", "1ms", "50ms", "500ms")  # with a min_interval under 1m
    accepted = []
    with psycopg.connect(paser_db, autocommit=True) as conn:
        for text in LADDER_TEXTS + below_floor:
            try:
                conn.execute("SELECT * FROM smartcity_aggregate('pm25', %s, 'avg', %s, %s)",
                             (text, END - timedelta(days=2), END)).fetchall()
                accepted.append(text)
            except psycopg.errors.InvalidParameterValue as error:
                assert "is not a count and a unit" in str(error)
    assert accepted == [*LADDER_TEXTS[:-1], "1s", "5s", "30s"]
