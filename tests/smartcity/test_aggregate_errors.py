"""Bad questions to the planner get SQLSTATE 22023 and a message saying what is wrong; nothing is lost."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from smartcity.catalog import METRICS
from tests.smartcity.aggregate_lab import Lab

START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
GOOD: dict[str, Any] = {"metric": "water_volume", "bucket": "1h", "agg": "sum", "start_time": START,
                        "end_time": END, "device_ids": None, "site_ids": None, "group_by": "device",
                        "tz": None}
CALL = ("SELECT * FROM smartcity_aggregate(%(metric)s, %(bucket)s, %(agg)s, %(start_time)s, %(end_time)s,"
        " %(device_ids)s, %(site_ids)s, %(group_by)s, %(tz)s)")


@pytest.fixture
def one_reading(fresh_lab: Lab) -> Lab:
    fresh_lab.ingest([("wm-a1", "water_volume", int(START.timestamp()) + 600, 12.5)])
    return fresh_lab


@pytest.mark.parametrize(("change", "message", "hint"), [
    ({"metric": "pm2.5"}, r"^unknown metric 'pm2\.5'$", r"^known metrics: co, conductivity, "),
    ({"metric": None}, r"^unknown metric NULL$", r"^known metrics: "),
    ({"bucket": "1y"}, r"^bucket '1y' is not a count and a unit$", r"1m, 5m, 15m, 1h, 1d, 1w, 1mo"),
    ({"bucket": "0m"}, r"^bucket '0m' is not a count and a unit$", r"units: s, m, h, d, w, mo"),
    ({"bucket": "15"}, r"^bucket '15' is not a count and a unit$", r"1m, 5m"),
    ({"bucket": "1 hour"}, r"^bucket '1 hour' is not a count and a unit$", r"1h"),
    ({"bucket": None}, r"^bucket NULL is not a count and a unit$", r"1h"),
    ({"agg": "median"}, r"^unknown agg 'median'$", r"avg, min, max, sum, count, first, last, increase"),
    ({"group_by": "kind"}, r"^unknown group_by 'kind'$", r"device, site, none"),
    ({"end_time": START}, r"^start \(2026-03-01 .*\) must be before end \(2026-03-01 .*\)$", None),
    ({"start_time": END, "end_time": START}, r"^start \(2026-03-02 .*\) must be before end \(2026-03-01",
     None),
    ({"start_time": None}, r"^start \(<NULL>\) must be before end", None),
    # Was SQLSTATE 22008 "cannot subtract infinite timestamps" from deep inside the planner.
    ({"start_time": "-infinity"}, r"^start \(-infinity\) and end \(2026-03-02 .*\) must be finite times$",
     r"a range of at most what is stored"),
    ({"end_time": "infinity"}, r"^start \(2026-03-01 .*\) and end \(infinity\) must be finite times$", None),
    ({"metric": "water_pressure", "agg": "increase"},
     r"^increase needs a cumulative metric; water_pressure is not one$",
     r"^cumulative metrics: energy, water_volume$"),
    ({"device_ids": ["wm-a1", "wm-zz", "nope-1"]}, r"^unknown device nope-1, wm-zz$", None),
    ({"site_ids": ["kuaro", "atlantis"]}, r"^unknown site atlantis$", None),
    ({"tz": "Mars/Olympus"}, r'^time zone "Mars/Olympus" not recognized$', None),
    ({"tz": "WITA"}, r'^time zone "WITA" not recognized$', None),
])
def test_bad_input_is_refused_with_22023_and_a_clear_message(one_reading: Lab, change: dict[str, Any],
                                                            message: str, hint: str | None) -> None:
    conn = one_reading.conn
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        conn.execute(CALL, {**GOOD, **change}).fetchall()
    diag = caught.value.diag
    assert caught.value.sqlstate == "22023"
    assert re.search(message, diag.message_primary or ""), diag.message_primary
    if hint is not None:
        assert re.search(hint, diag.message_hint or ""), diag.message_hint
    # Nothing is lost and the session goes on: the reading is there and a good question is answered.
    assert conn.execute(CALL, GOOD).fetchall() == [("wm-a1", datetime(2026, 3, 1, tzinfo=UTC), 12.5, 1)]
    assert one_reading.pending() == 1


def test_the_unknown_metric_hint_lists_every_metric_of_the_catalogue(one_reading: Lab) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        one_reading.conn.execute(CALL, {**GOOD, "metric": "flow"}).fetchall()
    listed = (caught.value.diag.message_hint or "").removeprefix("known metrics: ").split(", ")
    assert listed == sorted(METRICS)


def test_the_rollup_zone_must_be_a_whole_number_of_hours_from_utc(one_reading: Lab) -> None:
    for zone, message in (("Asia/Kolkata", "whole number of hours from UTC; Asia/Kolkata is not"),
                          ("Mars/Olympus", 'time zone "Mars/Olympus" not recognized')):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=re.escape(message)):
            one_reading.conn.execute("SELECT smartcity_set_rollup_timezone(%s)", (zone,))
    zone = one_reading.conn.execute("SELECT timezone FROM rollup_settings").fetchone()
    assert zone == ("Asia/Makassar",)


def test_a_rollup_zone_off_whole_hours_for_part_of_the_year_is_refused(one_reading: Lab) -> None:
    # UTC+11 in the southern summer (so on 30 November, whatever today is, half the year), UTC+10:30
    # in winter: its winter days cannot be made of hours.
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="Australia/Lord_Howe is not"):
        one_reading.conn.execute("SELECT smartcity_set_rollup_timezone('Australia/Lord_Howe')")
    assert one_reading.conn.execute("SELECT timezone FROM rollup_settings").fetchone() == ("Asia/Makassar",)
    # Zones whose daylight saving moves by whole hours are fine.
    assert one_reading.set_zone("Europe/Berlin") is True
    assert one_reading.set_zone("Asia/Makassar") is True
