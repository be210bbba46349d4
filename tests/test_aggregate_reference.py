"""The numpy reference of the planner, checked on cases small enough to work out by hand.

The property tests trust tests/aggregate_reference.py as the truth; these cases keep it honest.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.aggregate_reference import (
    RefDevice,
    RefQuery,
    RefReading,
    RefRow,
    bucket_start,
    compute_aggregate,
    counter_rise,
)

WATER = frozenset({"water_volume", "water_pressure"})
DEVICES = {d.device_id: d for d in (RefDevice("wm-a1", "tanah-grogot", WATER),
                                    RefDevice("wm-a2", "tanah-grogot", WATER),
                                    RefDevice("wm-b1", "kuaro", WATER),
                                    RefDevice("aq-a1", "tanah-grogot", frozenset({"pm25"})))}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("moment", "bucket", "zone", "start"), [
    # WITA (UTC+8) days start at 16:00 UTC the day before.
    (utc(2026, 3, 1, 15, 59, 59), "1d", "Asia/Makassar", utc(2026, 2, 28, 16)),
    (utc(2026, 3, 1, 16, 0, 0), "1d", "Asia/Makassar", utc(2026, 3, 1, 16)),
    (utc(2026, 3, 1, 16, 0, 0), "1d", "UTC", utc(2026, 3, 1)),
    (utc(2026, 3, 1, 16, 0, 0), "1d", "Asia/Jakarta", utc(2026, 2, 28, 17)),
    # 2026-03-02 is a Monday: the WITA week starts at 2026-03-01 16:00 UTC.
    (utc(2026, 3, 1, 16, 0, 0), "1w", "Asia/Makassar", utc(2026, 3, 1, 16)),
    (utc(2026, 3, 1, 15, 0, 0), "1w", "Asia/Makassar", utc(2026, 2, 22, 16)),
    (utc(2026, 3, 1, 15, 0, 0), "1w", "UTC", utc(2026, 2, 23)),
    # March in WITA starts on 28 February, 16:00 UTC.
    (utc(2026, 2, 28, 16, 30), "1mo", "Asia/Makassar", utc(2026, 2, 28, 16)),
    (utc(2026, 2, 28, 16, 30), "1mo", "UTC", utc(2026, 2, 1)),
    (utc(2026, 2, 28, 16, 30), "1mo", "Asia/Jakarta", utc(2026, 1, 31, 17)),
    (utc(2026, 2, 28, 16, 37, 12), "15m", "Asia/Makassar", utc(2026, 2, 28, 16, 30)),
    (utc(2026, 2, 28, 16, 37, 12), "5m", "UTC", utc(2026, 2, 28, 16, 35)),
    (utc(2026, 2, 28, 16, 37, 12), "1m", "Asia/Jakarta", utc(2026, 2, 28, 16, 37)),
    (utc(2026, 2, 28, 16, 37, 12), "1h", "Asia/Makassar", utc(2026, 2, 28, 16)),
])
def test_buckets_follow_the_calendar_of_the_zone(moment: datetime, bucket: str, zone: str,
                                                 start: datetime) -> None:
    assert bucket_start(moment, bucket, zone) == start


def test_a_fall_of_the_counter_is_a_reset_and_the_first_reading_rises_by_nothing() -> None:
    assert counter_rise(None, 50.0) == 0.0
    assert counter_rise(10.0, 12.5) == 2.5
    assert counter_rise(12.5, 3.0) == 3.0


def test_increase_counts_the_rise_from_the_reading_before_the_range_and_across_a_reset() -> None:
    readings = [
        RefReading("wm-a1", "water_volume", utc(2026, 3, 1, 9, 50), 100.0),  # before the range
        RefReading("wm-a1", "water_volume", utc(2026, 3, 1, 10, 10), 104.0),
        RefReading("wm-a1", "water_volume", utc(2026, 3, 1, 10, 40), 2.0),  # meter replaced
        RefReading("wm-a1", "water_volume", utc(2026, 3, 1, 11, 5), 5.0),
        RefReading("wm-a2", "water_volume", utc(2026, 3, 1, 10, 20), 7.0),  # its first reading
        RefReading("wm-a2", "water_volume", utc(2026, 3, 1, 11, 20), 9.0),
    ]
    query = RefQuery("water_volume", "1h", "increase", utc(2026, 3, 1, 10), utc(2026, 3, 1, 12))
    assert compute_aggregate(readings, DEVICES, query, "Asia/Makassar") == [
        RefRow("wm-a1", utc(2026, 3, 1, 10), 4.0 + 2.0, 2),
        RefRow("wm-a1", utc(2026, 3, 1, 11), 3.0, 1),
        RefRow("wm-a2", utc(2026, 3, 1, 10), 0.0, 1),
        RefRow("wm-a2", utc(2026, 3, 1, 11), 2.0, 1),
    ]
    by_site = RefQuery("water_volume", "1d", "increase", utc(2026, 3, 1, 10), utc(2026, 3, 1, 12),
                       group_by="site")
    assert compute_aggregate(readings, DEVICES, by_site, "Asia/Makassar") == [
        RefRow("tanah-grogot", utc(2026, 2, 28, 16), 11.0, 5)]


def test_first_and_last_across_devices_break_ties_by_device_id() -> None:
    same_time = utc(2026, 3, 1, 10, 0)
    readings = [RefReading("wm-b1", "water_pressure", same_time, 1.0),
                RefReading("wm-a2", "water_pressure", same_time, 2.0),
                RefReading("wm-a1", "water_pressure", same_time, 3.0)]
    for agg, value in (("first", 3.0), ("last", 1.0), ("min", 1.0), ("avg", 2.0), ("count", 3.0)):
        query = RefQuery("water_pressure", "1h", agg, utc(2026, 3, 1), utc(2026, 3, 2), group_by="none")
        assert compute_aggregate(readings, DEVICES, query, "UTC") == [RefRow("all", utc(2026, 3, 1, 10),
                                                                            value, 3)], agg


def test_devices_are_those_asked_for_or_those_whose_kind_reports_the_metric() -> None:
    readings = [RefReading("aq-a1", "water_pressure", utc(2026, 3, 1, 10), 9.0),
                RefReading("wm-b1", "water_pressure", utc(2026, 3, 1, 10), 1.0)]
    start, end = utc(2026, 3, 1), utc(2026, 3, 2)
    every = RefQuery("water_pressure", "1d", "sum", start, end, tz="UTC")
    assert [r.key for r in compute_aggregate(readings, DEVICES, every, "UTC")] == ["wm-b1"]
    named = RefQuery("water_pressure", "1d", "sum", start, end, device_ids=("aq-a1",), tz="UTC")
    assert [r.key for r in compute_aggregate(readings, DEVICES, named, "UTC")] == ["aq-a1"]
    kuaro = RefQuery("water_pressure", "1d", "sum", start, end, site_ids=("tanah-grogot",), tz="UTC")
    assert compute_aggregate(readings, DEVICES, kuaro, "UTC") == []
