"""Calendar buckets and counter increases of the planner, worked out by hand.

Each case is asked twice: with every hour still pending (answered from raw readings) and after the
refresher caught up (answered from the rollups); the answer must not change. Where a case says an
answer comes from the rollups, the raw readings are deleted behind the planner's back (as
retention would) and the answer must still be the same.

Dates: 2026-03-02 is a Monday. WITA is UTC+8 (a WITA day starts at 16:00 UTC), WIB
(Asia/Jakarta) UTC+7.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.smartcity.aggregate_lab import Arrival, Lab

Row = tuple[str, datetime, float, int]

ASK = ("SELECT key, time, value, count FROM smartcity_aggregate(%s, %s, %s, %s, %s,"
       " device_ids => %s, site_ids => %s, group_by => %s, tz => %s)")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def e(*args: int) -> int:
    return int(t(*args).timestamp())


def ask(lab: Lab, metric: str, bucket: str, agg: str, start: datetime, end: datetime, *,
        devices: list[str] | None = None, sites: list[str] | None = None, group_by: str = "device",
        tz: str | None = None) -> list[Row]:
    rows = lab.conn.execute(ASK, (metric, bucket, agg, start, end, devices, sites, group_by, tz)).fetchall()
    return [(key, time.astimezone(UTC), value, count) for key, time, value, count in rows]


def pending_then_refreshed(lab: Lab, *args: object, **kwargs: object) -> list[Row]:
    """Ask with every hour pending, then after a catch-up; the answers must agree; return it."""
    assert lab.pending() > 0, "the case should start unrefreshed"
    raw = ask(lab, *args, **kwargs)  # type: ignore[arg-type]
    lab.catch_up()
    assert ask(lab, *args, **kwargs) == raw  # type: ignore[arg-type]
    return raw


def drop_raw_readings(lab: Lab) -> None:
    """Delete every raw reading without marking anything: only the rollups can answer now."""
    lab.conn.execute("DELETE FROM readings")
    assert lab.pending() == 0


def pressure(device_id: str, *points: tuple[int, float]) -> list[Arrival]:
    return [(device_id, "water_pressure", epoch, value) for epoch, value in points]


def volume(device_id: str, *points: tuple[int, float]) -> list[Arrival]:
    return [(device_id, "water_volume", epoch, value) for epoch, value in points]


# ---- days, weeks, months ----------------------------------------------------------------------

@pytest.fixture
def around_wita_midnight(fresh_lab: Lab) -> Lab:
    """Four pressures around WITA midnight of 1→2 March (16:00 UTC), two on each side."""
    fresh_lab.ingest(pressure("wm-a1", (e(2026, 3, 1, 15, 30), 1.0), (e(2026, 3, 1, 15, 59, 59), 2.0),
                              (e(2026, 3, 1, 16, 0), 4.0), (e(2026, 3, 1, 16, 30), 8.0)))
    return fresh_lab


def test_a_day_bucket_ends_at_wita_midnight_which_is_16_utc(around_wita_midnight: Lab) -> None:
    lab = around_wita_midnight
    assert pending_then_refreshed(lab, "water_pressure", "1d", "avg", t(2026, 3, 1), t(2026, 3, 3)) == [
        ("wm-a1", t(2026, 2, 28, 16), 1.5, 2),  # 1 March WITA
        ("wm-a1", t(2026, 3, 1, 16), 6.0, 2),  # 2 March WITA
    ]


def test_the_same_readings_make_other_days_in_utc_and_in_jakarta(around_wita_midnight: Lab) -> None:
    lab = around_wita_midnight
    start, end = t(2026, 2, 28), t(2026, 3, 3)
    assert pending_then_refreshed(lab, "water_pressure", "1d", "sum", start, end, tz="UTC") == [
        ("wm-a1", t(2026, 3, 1), 15.0, 4)]
    # 15:30 to 16:30 UTC is 22:30 to 23:30 WIB: all on 1 March in Jakarta.
    assert ask(lab, "water_pressure", "1d", "sum", start, end, tz="Asia/Jakarta") == [
        ("wm-a1", t(2026, 2, 28, 17), 15.0, 4)]
    assert ask(lab, "water_pressure", "1d", "max", start, end, tz="Asia/Makassar") == [
        ("wm-a1", t(2026, 2, 28, 16), 2.0, 2), ("wm-a1", t(2026, 3, 1, 16), 8.0, 2)]


def test_jakarta_days_come_exactly_from_the_hourly_rollups_while_days_are_kept_in_wita(
        around_wita_midnight: Lab) -> None:
    lab = around_wita_midnight
    lab.catch_up()
    drop_raw_readings(lab)
    start, end = t(2026, 2, 28, 17), t(2026, 3, 2, 17)  # two whole WIB days
    assert ask(lab, "water_pressure", "1d", "avg", start, end, tz="Asia/Jakarta") == [
        ("wm-a1", t(2026, 2, 28, 17), 3.75, 4)]
    assert ask(lab, "water_pressure", "1d", "first", start, end, tz="Asia/Jakarta")[0][2] == 1.0
    assert ask(lab, "water_pressure", "1d", "last", start, end, tz="Asia/Jakarta")[0][2] == 8.0


def test_wita_days_come_from_the_daily_rollups(around_wita_midnight: Lab) -> None:
    lab = around_wita_midnight
    lab.catch_up()
    drop_raw_readings(lab)
    lab.conn.execute("DELETE FROM rollup_1h")
    lab.conn.execute("DELETE FROM rollup_1m")
    start, end = t(2026, 2, 28, 16), t(2026, 3, 2, 16)  # 1 and 2 March, WITA
    assert ask(lab, "water_pressure", "1d", "count", start, end) == [
        ("wm-a1", t(2026, 2, 28, 16), 2.0, 2), ("wm-a1", t(2026, 3, 1, 16), 2.0, 2)]


def test_a_week_starts_on_monday_in_the_zone(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.ingest(pressure("wm-a1",
                        (e(2026, 3, 1, 15, 0), 1.0),  # Sunday 1 March 23:00 WITA
                        (e(2026, 3, 1, 16, 0), 2.0),  # Monday 2 March 00:00 WITA
                        (e(2026, 3, 8, 15, 59), 4.0),  # Sunday 8 March 23:59 WITA
                        (e(2026, 3, 8, 16, 0), 8.0)))  # Monday 9 March 00:00 WITA
    start, end = t(2026, 2, 20), t(2026, 3, 20)
    assert pending_then_refreshed(lab, "water_pressure", "1w", "sum", start, end) == [
        ("wm-a1", t(2026, 2, 22, 16), 1.0, 1),  # the week of Monday 23 February, WITA
        ("wm-a1", t(2026, 3, 1, 16), 6.0, 2),
        ("wm-a1", t(2026, 3, 8, 16), 8.0, 1),
    ]
    # In UTC all four fall on Sundays: two weeks, Monday 00:00 UTC.
    assert ask(lab, "water_pressure", "1w", "sum", start, end, tz="UTC") == [
        ("wm-a1", t(2026, 2, 23), 3.0, 2), ("wm-a1", t(2026, 3, 2), 12.0, 2)]


def test_a_month_bucket_across_a_month_boundary(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.ingest(pressure("wm-b1",
                        (e(2026, 2, 28, 15, 59, 59), 1.0),  # 28 February 23:59:59 WITA
                        (e(2026, 2, 28, 16, 0), 2.0),  # 1 March 00:00 WITA
                        (e(2026, 3, 31, 15, 59), 4.0),  # 31 March 23:59 WITA
                        (e(2026, 3, 31, 16, 0), 8.0)))  # 1 April 00:00 WITA
    start, end = t(2026, 1, 1), t(2026, 5, 1)
    assert pending_then_refreshed(lab, "water_pressure", "1mo", "sum", start, end, group_by="site") == [
        ("kuaro", t(2026, 1, 31, 16), 1.0, 1), ("kuaro", t(2026, 2, 28, 16), 6.0, 2),
        ("kuaro", t(2026, 3, 31, 16), 8.0, 1)]
    assert ask(lab, "water_pressure", "1mo", "sum", start, end, group_by="site", tz="UTC") == [
        ("kuaro", t(2026, 2, 1), 3.0, 2), ("kuaro", t(2026, 3, 1), 12.0, 2)]
    # A range starting inside a month: the bucket keeps the month's start, counts what is in range.
    assert ask(lab, "water_pressure", "1mo", "sum", t(2026, 3, 15), end, group_by="none") == [
        ("all", t(2026, 2, 28, 16), 4.0, 1), ("all", t(2026, 3, 31, 16), 8.0, 1)]


# ---- increase -----------------------------------------------------------------------------------

@pytest.fixture
def meters(fresh_lab: Lab) -> Lab:
    """Three water meters on two sites; wm-a1's meter is replaced (reset) at 10:40 on 1 March."""
    fresh_lab.ingest(volume("wm-a1", (e(2026, 3, 1, 9, 50), 100.0), (e(2026, 3, 1, 10, 10), 104.0),
                            (e(2026, 3, 1, 10, 40), 2.0), (e(2026, 3, 1, 11, 5), 5.0)))
    fresh_lab.ingest(volume("wm-a2", (e(2026, 3, 1, 10, 20), 7.0), (e(2026, 3, 1, 11, 20), 9.0)))
    # wm-b1's reading before the range is four days older: not in the raw look-back of a day.
    fresh_lab.ingest(volume("wm-b1", (e(2026, 2, 25, 9, 0), 50.0), (e(2026, 3, 1, 10, 30), 55.5)))
    return fresh_lab


def test_increase_per_device_counts_the_reset_and_the_rise_from_before_the_range(meters: Lab) -> None:
    start, end = t(2026, 3, 1, 10), t(2026, 3, 1, 12)
    assert pending_then_refreshed(meters, "water_volume", "1h", "increase", start, end) == [
        ("wm-a1", t(2026, 3, 1, 10), 4.0 + 2.0, 2),  # 100→104, then the new meter reads 2
        ("wm-a1", t(2026, 3, 1, 11), 3.0, 1),  # 2→5 across the bucket edge
        ("wm-a2", t(2026, 3, 1, 10), 0.0, 1),  # its first reading ever rises by nothing
        ("wm-a2", t(2026, 3, 1, 11), 2.0, 1),
        ("wm-b1", t(2026, 3, 1, 10), 5.5, 1),  # from 50 four days before
    ]


def test_increase_per_site_and_overall_sums_the_devices(meters: Lab) -> None:
    start, end = t(2026, 3, 1, 10), t(2026, 3, 1, 12)
    assert pending_then_refreshed(meters, "water_volume", "1h", "increase", start, end, group_by="site") == [
        ("kuaro", t(2026, 3, 1, 10), 5.5, 1),
        ("tanah-grogot", t(2026, 3, 1, 10), 6.0, 3), ("tanah-grogot", t(2026, 3, 1, 11), 5.0, 2)]
    assert ask(meters, "water_volume", "1d", "increase", start, end, group_by="none") == [
        ("all", t(2026, 2, 28, 16), 16.5, 6)]
    assert ask(meters, "water_volume", "1d", "increase", start, end, sites=["tanah-grogot"],
               group_by="site") == [("tanah-grogot", t(2026, 2, 28, 16), 11.0, 5)]


def test_increase_from_an_unaligned_start_counts_the_rise_from_the_reading_before_it(meters: Lab) -> None:
    # From 10:30: wm-a1's 10:40 reading rises from 104 (10:10, before the start) by a reset to 2.
    start, end = t(2026, 3, 1, 10, 30), t(2026, 3, 1, 11, 10)
    assert pending_then_refreshed(meters, "water_volume", "15m", "increase", start, end,
                                  devices=["wm-a1"]) == [
        ("wm-a1", t(2026, 3, 1, 10, 30), 2.0, 1), ("wm-a1", t(2026, 3, 1, 11, 0), 3.0, 1)]
    assert ask(meters, "water_volume", "1h", "increase", t(2026, 3, 1, 10, 11), end, devices=["wm-a1"]) == [
        ("wm-a1", t(2026, 3, 1, 10), 2.0, 1), ("wm-a1", t(2026, 3, 1, 11), 3.0, 1)]


def test_a_late_reading_before_the_range_changes_the_first_rise_once_refreshed(meters: Lab) -> None:
    meters.catch_up()
    start, end = t(2026, 3, 1, 10), t(2026, 3, 1, 12)
    before = ask(meters, "water_volume", "1d", "increase", start, end, devices=["wm-b1"])
    assert before == [("wm-b1", t(2026, 2, 28, 16), 5.5, 1)]
    # A late reading of 52 on 27 February: the rise into the range is now 3.5, pending or refreshed.
    meters.ingest(volume("wm-b1", (e(2026, 2, 27, 8, 0), 52.0)))
    expected = [("wm-b1", t(2026, 2, 28, 16), 3.5, 1)]
    assert pending_then_refreshed(meters, "water_volume", "1d", "increase", start, end,
                                  devices=["wm-b1"]) == expected


def test_rows_come_ordered_by_key_then_time(meters: Lab) -> None:
    rows = ask(meters, "water_volume", "1m", "last", t(2026, 2, 1), t(2026, 4, 1))
    assert [(r[0], r[1]) for r in rows] == sorted((r[0], r[1]) for r in rows)
    assert len(rows) == 8


def test_a_duplicate_arrival_keeps_the_first_stored_value(fresh_lab: Lab) -> None:
    lab = fresh_lab
    assert lab.ingest(pressure("wm-a1", (e(2026, 3, 1, 10), 1.0))) == 1
    assert lab.ingest(pressure("wm-a1", (e(2026, 3, 1, 10), 9.0), (e(2026, 3, 1, 10, 1), 3.0))) == 1
    assert pending_then_refreshed(lab, "water_pressure", "1h", "sum", t(2026, 3, 1), t(2026, 3, 2)) == [
        ("wm-a1", t(2026, 3, 1, 10), 4.0, 2)]


def test_psycopg_sees_the_planner_rows_as_typed(fresh_lab: Lab) -> None:
    fresh_lab.ingest(pressure("wm-a1", (e(2026, 3, 1, 10), 1.0)))
    cur = fresh_lab.conn.execute(ASK, ("water_pressure", "1h", "count", t(2026, 3, 1), t(2026, 3, 2),
                                       None, None, "device", None))
    assert [c.name for c in cur.description or []] == ["key", "time", "value", "count"]
    key, time, value, count = cur.fetchone() or ()
    assert (type(key), type(time), type(value), type(count)) == (str, datetime, float, int)


def test_a_zone_whose_offset_is_whole_hours_only_at_the_ends_of_the_range(fresh_lab: Lab) -> None:
    # Lord Howe Island keeps UTC+11 in its summer and UTC+10:30 in its winter: a range from March to
    # November 2026 starts and ends on whole hours, but its winter days start at 13:30 UTC, inside
    # an hour of the rollups.
    lab = fresh_lab
    lab.ingest(pressure("wm-a1", (e(2026, 6, 10, 13, 15), 1.0),  # 10 June 23:45 local
                        (e(2026, 6, 10, 13, 45), 2.0)))  # 11 June 00:15 local
    start, end = t(2026, 3, 1), t(2026, 11, 1)
    assert pending_then_refreshed(lab, "water_pressure", "1d", "sum", start, end,
                                  tz="Australia/Lord_Howe") == [
        ("wm-a1", t(2026, 6, 9, 13, 30), 1.0, 1), ("wm-a1", t(2026, 6, 10, 13, 30), 2.0, 1)]


def test_millisecond_times_fall_in_the_right_minute_hour_and_range(fresh_lab: Lab) -> None:
    # Devices may send epoch milliseconds: a reading 250 ms before a boundary stays before it.
    lab = fresh_lab
    base = e(2026, 3, 1, 15, 59, 59)
    lab.ingest([("wm-a1", "water_pressure", base + 0.75, 1.0),
                ("wm-a1", "water_pressure", base + 1.25, 2.0),  # 16:00:00.25, next WITA day
                ("wm-a1", "water_pressure", base + 61.5, 4.0)])  # 16:01:00.5
    start = datetime.fromtimestamp(base + 0.5, UTC)  # between the first reading and the boundary
    assert pending_then_refreshed(lab, "water_pressure", "1m", "sum", start, t(2026, 3, 2)) == [
        ("wm-a1", t(2026, 3, 1, 15, 59), 1.0, 1), ("wm-a1", t(2026, 3, 1, 16, 0), 2.0, 1),
        ("wm-a1", t(2026, 3, 1, 16, 1), 4.0, 1)]
    assert ask(lab, "water_pressure", "1d", "avg", start, datetime.fromtimestamp(base + 61.5, UTC)) == [
        ("wm-a1", t(2026, 2, 28, 16), 1.0, 1), ("wm-a1", t(2026, 3, 1, 16), 2.0, 1)]
    after_first = datetime.fromtimestamp(base + 0.8, UTC)
    assert ask(lab, "water_pressure", "1h", "count", after_first, t(2026, 3, 2)) == [
        ("wm-a1", t(2026, 3, 1, 16), 2.0, 2)]
