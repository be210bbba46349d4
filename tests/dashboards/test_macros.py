"""Grafana's PostgreSQL macros and variable interpolation (dashboards.macros), against the reference table.

Expected strings are written out by hand from shared/reference/grafana.md and Grafana's documented
behaviour, never computed with the module under test. test_macros_planner.py runs expanded panel queries
against the real test database, through the planner.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dashboards.macros import ALL, Interval, MacroError, Variable, expand, interval_for

F = datetime(2026, 9, 15, 4, 30, tzinfo=UTC)  # epoch 1789446600
T = F + timedelta(hours=6)                     # epoch 1789468200
WITA = timezone(timedelta(hours=8))


def run(sql: str, *, variables: tuple[Variable, ...] = (), max_data_points: int = 360,
        timescaledb: bool = True, time_from: datetime = F, time_to: datetime = T) -> str:
    """Expand over F..T; 6 h over 360 points is 60 s, so $__interval is 1m unless asked otherwise."""
    return expand(sql, time_from=time_from, time_to=time_to, variables=variables,
                  max_data_points=max_data_points, timescaledb=timescaledb)


# --- the reference table, string for string ---------------------------------------------------------

@pytest.mark.parametrize(("sql", "timescaledb", "expected"), [
    ("$__time(ts)", True, 'ts AS "time"'),
    ("$__timeEpoch(ts)", True, 'extract(epoch from ts) as "time"'),
    ("$__timeFilter(ts)", True, "ts BETWEEN '2026-09-15T04:30:00Z' AND '2026-09-15T10:30:00Z'"),
    ("$__timeFrom()", True, "'2026-09-15T04:30:00Z'"),
    ("$__timeTo()", True, "'2026-09-15T10:30:00Z'"),
    ("$__timeGroup(ts,'5m')", True, "time_bucket('300.000s',ts)"),
    ("$__timeGroup(ts,'5m')", False, "floor(extract(epoch from ts)/300)*300"),
    ("$__timeGroupAlias(ts,'5m')", True, "time_bucket('300.000s',ts) AS \"time\""),
    ("$__timeGroupAlias(ts,'5m')", False, 'floor(extract(epoch from ts)/300)*300 AS "time"'),
    ("$__unixEpochFilter(epoch_s)", True, "epoch_s >= 1789446600 AND epoch_s <= 1789468200"),
    ("$__unixEpochGroup(epoch_s,'5m')", True, "floor((epoch_s)/300)*300"),
    ("$__unixEpochGroupAlias(epoch_s,'5m')", True, 'floor((epoch_s)/300)*300 AS "time"'),
    ("$__unixEpochFrom() $__unixEpochTo()", True, "1789446600 1789468200"),
    ("$__unixEpochNanoFilter(ns)", True,
     "ns >= 1789446600000000000 AND ns <= 1789468200000000000"),
    ("$__unixEpochNanoFrom() $__unixEpochNanoTo()", True, "1789446600000000000 1789468200000000000"),
    ("$__interval_ms", True, "60000"),
    ("$__interval", True, "1m"),
    ("${__interval} ${__interval_ms}", True, "1m 60000"),
])
def test_each_documented_expansion(sql: str, timescaledb: bool, expected: str) -> None:
    assert run(sql, timescaledb=timescaledb) == expected


@pytest.mark.parametrize(("interval", "timescaledb", "non_timescaledb"), [
    ("'1m'", "time_bucket('60.000s',ts)", "floor(extract(epoch from ts)/60)*60"),
    ("1h", "time_bucket('3600.000s',ts)", "floor(extract(epoch from ts)/3600)*3600"),
    ("'1h30m'", "time_bucket('5400.000s',ts)", "floor(extract(epoch from ts)/5400)*5400"),
    ("'1.5s'", "time_bucket('1.500s',ts)", "floor(extract(epoch from ts)/1.5)*1.5"),
    ("'500ms'", "time_bucket('0.500s',ts)", "floor(extract(epoch from ts)/0.5)*0.5"),
    ("'1d'", "time_bucket('86400.000s',ts)", "floor(extract(epoch from ts)/86400)*86400"),
    ("'1w'", "time_bucket('604800.000s',ts)", "floor(extract(epoch from ts)/604800)*604800"),
    # Go prints a float64 of a million or more with an exponent; PostgreSQL reads it back.
    ("'30d'", "time_bucket('2592000.000s',ts)", "floor(extract(epoch from ts)/2.592e+06)*2.592e+06"),
])
def test_time_group_intervals_in_go_duration_and_day_week_syntax(
        interval: str, timescaledb: str, non_timescaledb: str) -> None:
    assert run(f"$__timeGroup(ts,{interval})") == timescaledb
    assert run(f"$__timeGroup(ts, {interval})", timescaledb=False) == non_timescaledb


@pytest.mark.parametrize("fill", ["0", "NULL", "previous", "-1.5", "2e3", ".5", "NaN", "-Inf"])
def test_a_fill_argument_is_checked_and_left_out_of_the_sql(fill: str) -> None:
    assert run(f"$__timeGroup(ts, '5m', {fill})") == "time_bucket('300.000s',ts)"
    assert run(f"$__timeGroupAlias(ts, '5m', {fill})") == "time_bucket('300.000s',ts) AS \"time\""


def test_arguments_are_trimmed_of_spaces() -> None:
    assert run("$__timeFilter(  r.time  )") == (
        "r.time BETWEEN '2026-09-15T04:30:00Z' AND '2026-09-15T10:30:00Z'")
    assert run("$__timeGroup( ts , '5m' )") == "time_bucket('300.000s',ts)"


def test_interval_macro_inside_time_group_after_the_plain_text_pass() -> None:
    assert run("$__timeGroup(ts, $__interval)", max_data_points=36) == "time_bucket('600.000s',ts)"
    assert run("$__timeGroup(ts, '$__interval')", max_data_points=36) == "time_bucket('600.000s',ts)"


def test_time_group_followed_by_a_comma_is_aliased_as_before_grafana_5_3() -> None:
    sql = "SELECT $__timeGroup(ts,'5m'), avg(v) FROM t GROUP BY 1"
    assert run(sql) == "SELECT time_bucket('300.000s',ts) AS \"time\", avg(v) FROM t GROUP BY 1"
    # Inside a window's ORDER BY a ")" follows, so no alias.
    assert run("lag(v) OVER (ORDER BY $__timeGroup(ts,'5m'))") == (
        "lag(v) OVER (ORDER BY time_bucket('300.000s',ts))")


def test_the_alias_follows_the_first_occurrence_of_the_same_call_as_grafana_does() -> None:
    # Grafana looks up the first place the same text occurs: the GROUP BY copy gets the alias
    # too, which PostgreSQL rejects. Panels write $__timeGroupAlias and GROUP BY 1 instead.
    sql = "SELECT $__timeGroup(ts,'5m'), avg(v) FROM t GROUP BY $__timeGroup(ts,'5m')"
    assert run(sql) == ("SELECT time_bucket('300.000s',ts) AS \"time\", avg(v) FROM t "
                        "GROUP BY time_bucket('300.000s',ts) AS \"time\"")


def test_a_whole_panel_query() -> None:
    sql = ("SELECT $__timeGroupAlias(time, $__interval), avg(value) AS \"$device\"\n"
           "FROM readings WHERE $__timeFilter(time) AND device IN ($device)\nGROUP BY 1 ORDER BY 1")
    device = Variable("device", ("aq-kuaro-01", "aq-grogot-01"), multi=True).select("aq-kuaro-01")
    assert run(sql, variables=(device,)) == (
        "SELECT time_bucket('60.000s',time) AS \"time\", avg(value) AS \"'aq-kuaro-01'\"\n"
        "FROM readings WHERE time BETWEEN '2026-09-15T04:30:00Z' AND '2026-09-15T10:30:00Z'"
        " AND device IN ('aq-kuaro-01')\nGROUP BY 1 ORDER BY 1")


# --- RFC 3339 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("moment", "text"), [
    (datetime(2026, 9, 15, 4, 30, 0, tzinfo=UTC), "2026-09-15T04:30:00Z"),
    (datetime(2026, 9, 15, 4, 30, 0, 500000, tzinfo=UTC), "2026-09-15T04:30:00.5Z"),
    (datetime(2026, 9, 15, 4, 30, 0, 120, tzinfo=UTC), "2026-09-15T04:30:00.00012Z"),
    (datetime(2026, 9, 15, 4, 30, 0, 123456, tzinfo=UTC), "2026-09-15T04:30:00.123456Z"),
    (datetime(2026, 9, 15, 12, 30, 0, 10000, tzinfo=WITA), "2026-09-15T04:30:00.01Z"),
    (datetime(2026, 1, 1, 7, 0, tzinfo=WITA), "2025-12-31T23:00:00Z"),
])
def test_times_are_rfc3339_in_utc_without_trailing_fraction_zeros(moment: datetime, text: str) -> None:
    end = moment + timedelta(hours=1)
    assert expand("$__timeFrom()", time_from=moment, time_to=end, max_data_points=100) == f"'{text}'"


def test_unix_epoch_from_to_are_whole_seconds_rounded_down() -> None:
    start = F + timedelta(milliseconds=999)
    assert expand("$__unixEpochFrom()", time_from=start, time_to=T, max_data_points=100) == "1789446600"


# --- variables --------------------------------------------------------------------------------------

SITE = Variable("site", ("tanah-grogot", "o'brien"))
DISTRICT = Variable("district", ("tanah-grogot", "kuaro", "o'brien"), multi=True, include_all=True)


@pytest.mark.parametrize(("variable", "sql", "expected"), [
    # A single-value variable: quotes doubled, no quotes around it.
    (SITE, "'$site'", "'tanah-grogot'"),
    (SITE.select("o'brien"), "site = '$site'", "site = 'o''brien'"),
    (SITE.select("o'brien"), "'${site}' '[[site]]'", "'o''brien' 'o''brien'"),
    (SITE.select("o'brien"), "${site:sqlstring}", "'o''brien'"),
    (SITE.select("o'brien"), "${site:csv}", "o'brien"),
    (SITE.select("o'brien"), "${site:raw}", "o'brien"),
    (SITE.select("o'brien"), "${site:singlequote}", "'o\\'brien'"),
    # Multi-value: each quoted, comma-separated, even when one is selected.
    (DISTRICT.select("kuaro"), "IN ($district)", "IN ('kuaro')"),
    (DISTRICT.select("kuaro", "o'brien"), "IN ($district)", "IN ('kuaro','o''brien')"),
    (DISTRICT.select("kuaro", "o'brien"), "IN ([[district]])", "IN ('kuaro','o''brien')"),
    (DISTRICT.select("kuaro", "o'brien"), "${district:csv}", "kuaro,o'brien"),
    (DISTRICT.select("kuaro", "o'brien"), "${district:sqlstring}", "'kuaro','o''brien'"),
    (DISTRICT.select("kuaro", "o'brien"), "[[district:sqlstring]]", "'kuaro','o''brien'"),
    (DISTRICT.select("kuaro", "o'brien"), "${district:pipe}", "kuaro|o'brien"),
    (DISTRICT.select("kuaro", "o'brien"), "${district:json}", '["kuaro","o\'brien"]'),
    (SITE.select("o'brien"), "${site:json}", "o'brien"),
    # Grafana's sqlstring escapes " with a backslash too: avoid " in option values.
    (Variable("q", ('say "hi"',)), "${q:sqlstring} '$q'", "'say \\\"hi\\\"' 'say \"hi\"'"),
    (DISTRICT.select("kuaro", "o'brien"), "${district:doublequote}", '"kuaro","o\'brien"'),
    # All: every option, formatted like a multi-value selection.
    (DISTRICT.select(ALL), "IN ($district)", "IN ('tanah-grogot','kuaro','o''brien')"),
    (DISTRICT.select(ALL), "${district:csv}", "tanah-grogot,kuaro,o'brien"),
    # A custom all value goes in as it is, whatever the format.
    (Variable("d", ("a", "b"), include_all=True, all_value="%", current=(ALL,)), "LIKE '$d'", "LIKE '%'"),
    (Variable("d", ("a", "b"), include_all=True, all_value="%", current=(ALL,)), "${d:sqlstring}", "%"),
    # Include-all but single-value, one option chosen: quoted like a multi-value one.
    (Variable("d", ("a", "b"), include_all=True).select("b"), "IN ($d)", "IN ('b')"),
])
def test_variable_interpolation(variable: Variable, sql: str, expected: str) -> None:
    assert run(sql, variables=(variable,)) == expected


def test_variable_names_are_whole_words() -> None:
    assert run("$site_id", variables=(Variable("site_id", ("a",)), SITE)) == "a"
    with pytest.raises(MacroError, match=r"undefined variable \$site_x"):
        run("$site_x", variables=(SITE,))


def test_browser_built_ins() -> None:
    assert run("$__from $__to") == "1789446600000 1789468200000"
    assert run("${__from:date} ${__to:date:iso}") == "2026-09-15T04:30:00.000Z 2026-09-15T10:30:00.000Z"
    assert run("${__from:date:seconds} ${__from:date:ms}") == "1789446600 1789446600000"
    # Seconds are rounded (Math.round), not truncated as in $__unixEpochFrom().
    late = F + timedelta(milliseconds=500)
    assert expand("${__from:date:seconds} $__unixEpochFrom()", time_from=late, time_to=T,
                  max_data_points=100) == "1789446601 1789446600"


def test_a_variable_value_that_looks_like_a_macro_is_expanded_after_as_in_grafana() -> None:
    column = Variable("col", ("$__timeFilter(ts)",))
    assert run("$col", variables=(column,)) == (
        "ts BETWEEN '2026-09-15T04:30:00Z' AND '2026-09-15T10:30:00Z'")


def test_selections_enumerate_each_option_combinations_and_all() -> None:
    picks = [v.selected for v in DISTRICT.selections()]
    assert picks == [("tanah-grogot",), ("kuaro",), ("o'brien",), ("tanah-grogot", "kuaro"),
                     ("tanah-grogot", "kuaro", "o'brien"), (ALL,)]
    assert [v.selected for v in SITE.selections()] == [("tanah-grogot",), ("o'brien",)]
    assert DISTRICT.selected == ("tanah-grogot",)  # Grafana's default: the first option


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Variable("d", ()), "has no options"),
    (lambda: Variable("d", "abc"), "not one string"),  # type: ignore[arg-type]
    (lambda: Variable("d", ("a",), current="a"), "not one string"),  # type: ignore[arg-type]
    (lambda: Variable("__d", ("a",)), "must be letters"),
    (lambda: Variable("d-x", ("a",)), "must be letters"),
    (lambda: Variable("d", ("a", "a")), "distinct strings"),
    (lambda: Variable("d", ("a", ALL)), "reserved"),
    (lambda: Variable("d", ("a",), all_value="%"), "no All option"),
    (lambda: Variable("d", ("a", "b")).select("a", "b"), "takes one value"),
    (lambda: Variable("d", ("a", "b")).select(ALL), "no All option to select"),
    (lambda: Variable("d", ("a", "b"), multi=True).select("c"), r"\['c'\] not among its options"),
    (lambda: Variable("d", ("a",), multi=True, include_all=True).select("a", ALL), "not among"),
])
def test_a_bad_variable_is_refused_with_its_name(make: object, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        make()  # type: ignore[operator]


# --- $__interval ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("span", "points", "ms", "text"), [
    (timedelta(minutes=15), 1000, 60_000, "1m"),      # 900 ms → 1s, floored to 1m
    (timedelta(hours=6), 1000, 60_000, "1m"),         # 21.6 s → 20s, floored
    (timedelta(hours=24), 1000, 60_000, "1m"),        # 86.4 s → 1m
    (timedelta(hours=24), 500, 120_000, "2m"),        # 172.8 s → 2m
    (timedelta(days=7), 1000, 600_000, "10m"),        # 604.8 s → 10m
    (timedelta(days=7), 500, 1_200_000, "20m"),       # 20.16 min → 20m
    (timedelta(days=30), 1000, 1_800_000, "30m"),     # 43.2 min → 30m
    (timedelta(days=30), 500, 3_600_000, "1h"),       # 86.4 min → 1h
    (timedelta(days=90), 1000, 7_200_000, "2h"),      # 2.16 h → 2h
    (timedelta(days=90), 500, 10_800_000, "3h"),      # 4.32 h → 3h
    (timedelta(days=365), 1000, 21_600_000, "6h"),    # 8.76 h → 6h
    (timedelta(days=365), 100, 86_400_000, "1d"),     # 3.65 d → 1d
    (timedelta(days=365 * 5), 100, 604_800_000, "7d"),  # 18.25 d → 1w, named in days
    (timedelta(days=365 * 3), 50, 2_592_000_000, "30d"),  # 21.9 d → 30d
    (timedelta(days=3650), 10, 31_536_000_000, "1y"),
])
def test_interval_rounds_to_grafanas_table(span: timedelta, points: int, ms: int, text: str) -> None:
    assert interval_for(F, F + span, points) == Interval(ms, text)
    assert run("$__interval_ms $__interval", time_to=F + span, max_data_points=points) == f"{ms} {text}"


@pytest.mark.parametrize(("span", "points", "ms", "text"), [
    (timedelta(minutes=15), 1000, 1_000, "1s"),
    (timedelta(minutes=15), 10, 120_000, "2m"),  # exactly 90 s is the first range of 2m
    (timedelta(hours=1), 500, 5_000, "5s"),
    (timedelta(minutes=1), 1000, 50, "50ms"),
    (timedelta(seconds=1), 1000, 1, "1ms"),
])
def test_interval_below_a_minute_with_a_low_floor(span: timedelta, points: int, ms: int, text: str) -> None:
    assert interval_for(F, F + span, points, "1ms") == Interval(ms, text)


def test_min_interval_floor_and_its_spellings() -> None:
    quarter = F + timedelta(minutes=15)
    assert interval_for(F, quarter, 1000) == Interval(60_000, "1m")  # the data source default
    assert interval_for(F, quarter, 1000, "5m") == Interval(300_000, "5m")
    assert interval_for(F, quarter, 1000, ">10s") == Interval(10_000, "10s")
    assert interval_for(F, quarter, 1000, "30") == Interval(30_000, "30s")  # no unit: seconds
    assert interval_for(F, quarter, 1000, "1h") == Interval(3_600_000, "1h")
    # The text names only the largest whole unit: a 90 s floor is 90000 ms but "1m" (as in Grafana).
    assert interval_for(F, quarter, 1000, "90s") == Interval(90_000, "1m")
    # The floor never lowers a larger interval.
    assert interval_for(F, F + timedelta(days=90), 1000, "5m") == Interval(7_200_000, "2h")


# --- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sql", "message"), [
    ("$__timeFilterx(ts)", r"unknown macro \$__timeFilterx"),
    ("$__timeFilter(ts", r"\$__timeFilter was left unexpanded: .* closed argument list"),
    ("$__dashboard", r"\$__dashboard was left unexpanded: not a supported built-in"),
    ("$__range_s", r"\$__range_s was left unexpanded: not a supported built-in"),
    ("$__timeGroup(date_trunc('hour', ts), '5m')", "interval 'ts' is not a positive duration"),
    ("$__timeFilter()", r"\$__timeFilter\(\): \$__timeFilter takes exactly one time column"),
    ("$__timeFilter(a, b)", "takes exactly one time column, got 2"),
    ("$__time()", "takes exactly one time column"),
    ("$__unixEpochFilter()", "takes exactly one time column"),
    ("$__timeFrom(ts)", r"\$__timeFrom\(\) takes no arguments"),
    ("$__timeGroup(ts)", "takes a time column, an interval and an optional fill value"),
    ("$__timeGroup(ts, '5m', 0, 1)", "takes a time column, an interval"),
    ("$__timeGroup(, '5m')", "takes a time column, an interval"),
    ("$__timeGroup(ts, '5x')", "interval \"'5x'\" is not a positive duration"),
    ("$__timeGroup(ts, '')", "is not a positive duration"),
    ("$__timeGroup(ts, '0s')", "is not a positive duration"),
    ("$__timeGroup(ts, '-5m')", "is not a positive duration"),
    ("$__timeGroup(ts, '1.5d')", "is not a positive duration"),
    ("$__unixEpochGroup(ts, 'm')", "is not a positive duration"),
    ("$__timeGroup(ts, '5m', zero)", "fill value 'zero' is not NULL, previous or a number"),
    ("$__timeGroup(ts, '5m', null)", "fill value 'null' is not NULL, previous or a number"),
    ("$__timeGroup(ts, '5m', 1e)", "fill value '1e' is not NULL, previous or a number"),
    ("$device", r"undefined variable \$device: define 'device' \(known: site\)"),
    ("${device}", r"undefined variable \$\{device\}"),
    ("[[device]]", r"undefined variable \[\[device\]\]"),
    ("${site:regex}", "format 'regex' is not supported"),
    ("${site.text}", "field paths"),
    ("${__from:date:YYYY}", "date format 'date:YYYY' is not supported"),
])
def test_bad_sql_raises_an_error_naming_the_culprit(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        run(sql, variables=(SITE,))


def test_bad_ranges_and_parameters_are_refused() -> None:
    with pytest.raises(MacroError, match="time_from must be a timezone-aware datetime"):
        expand("1", time_from=datetime(2026, 9, 15), time_to=T, max_data_points=100)
    with pytest.raises(MacroError, match="must be before time_to"):
        expand("1", time_from=T, time_to=F, max_data_points=100)
    with pytest.raises(MacroError, match="must be before time_to"):
        expand("1", time_from=F, time_to=F, max_data_points=100)
    for points in (0, -1, 1.5, True):
        with pytest.raises(MacroError, match="max_data_points must be a positive whole number"):
            interval_for(F, T, points)  # type: ignore[arg-type]
    for floor in ("1.5m", "abc", "", "5 minutes", "1x"):
        with pytest.raises(MacroError, match="min_interval .* is not a whole count with a unit"):
            interval_for(F, T, 100, floor)
    with pytest.raises(MacroError, match="sql must be a string, got bytes"):
        expand(b"SELECT 1", time_from=F, time_to=T, max_data_points=100)  # type: ignore[arg-type]
    with pytest.raises(MacroError, match="variable 'site' is given twice"):
        run("$site", variables=(SITE, SITE))


def test_a_variable_is_not_changed_by_expanding() -> None:
    before = DISTRICT.select("kuaro", "o'brien")
    run("IN ($district)", variables=(before,))
    assert before == Variable("district", ("tanah-grogot", "kuaro", "o'brien"), multi=True,
                              include_all=True, current=("kuaro", "o'brien"))
