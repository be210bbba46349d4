"""Every panel, expanded as Grafana expands it and run as smartcity_grafana against ninety days of
the simulated demo fleet with a haze and a flood (tests/dashboards/scenario_data.py); the alert rules
and annotations have their own module on the same data (test_alert_rules_run.py).

The dashboards are read from their committed JSON: what Grafana would load, not what the builders
would build now. Each query runs for ranges of 15 minutes to 90 days ending at the data's end and for
several selections of the dashboard's variables, whose options come from the variables' own queries
as Grafana would run them. Answers must come back in the
shape the panel's format needs, and a planner panel's numbers must be the API's for the same question.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import pytest

from api import create_app
from dashboards.living import BIN_FULL_PERCENT, LAMP_DEAD_MAX_W
from dashboards.macros import ALL, Variable, expand, interval_for
from smartcity.apikeys import Scope, create_key
from smartcity.catalog import METRICS
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.dashboards.panel_runs import (
    CALL,
    DASHBOARDS,
    PLAIN,
    RANGES,
    SELECTIONS,
    TARGETS,
    Target,
    check_table,
    check_time_series,
    conn_fixture,  # noqa: F401  (the module's fixture `conn`)
    expand_target,
    history_fixture,  # noqa: F401  (the module's fixture `history`)
    run,
    variables_for,
)
from tests.dashboards.scenario_data import END, HAZE_SITES, ScenarioData
from tests.logins import create_login, login_url
from tests.services import wait_until


@pytest.fixture(scope="module")
def api(postgres: EmbeddedPostgres, mosquitto: EmbeddedMosquitto,
        history: ScenarioData) -> Iterator[TestClient]:
    """The API over the same history, with an admin key."""
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        key = create_key(connection, Scope.ADMIN, "panels").key
        api_login = create_login(connection, "api", mosquitto)  # the module's: no test empties tables
    # A panel asks for every device's 3-hour buckets over 90 days at once: more points than the
    # API's default bound on one answer, which guards the API, not the question.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=postgres.url, mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
        api=ApiSettings(aggregate_max_points=1_000_000, mqtt_url=login_url(api_login)))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, timeout=10,
                   message="API healthy")
        yield client


# --- every panel, every range, every selection -------------------------------------------------

# Where a panel rightly answers nothing, from the simulated data (the other tests check the same
# panels where they answer): the one failing lamp (light-tanah-grogot-01) was dark in the month before
# the data's end, not the last week; no bin is 80 % full at the end (test_bins_needing_collection
# finds the hours of the last week when one is); the faulty reports come every 6 hours.
_EMPTY_EVERYWHERE: dict[str, list[str]] = {
    "smartcity-living/Failed lamps per district/A": ["15m", "6h", "24h", "7d"],
    "smartcity-living/Failed lamps/A": ["15m", "6h", "24h", "7d"],
    "smartcity-living/Bins needing collection/A": list(RANGES),
    "smartcity-platform/Quarantined messages by reason/A": ["15m"],
}
EXPECTED_EMPTY: dict[str, dict[str, list[str]]] = {selection: _EMPTY_EVERYWHERE for selection in SELECTIONS}


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_every_panel_runs_as_grafana_in_its_shape(conn: psycopg.Connection, selection: str) -> None:
    empty: dict[str, list[str]] = defaultdict(list)
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variables = variables_for(conn, board, selection)
        for target in (t for t in TARGETS if t.dashboard["uid"] == board["uid"]):
            for label, span in RANGES.items():
                columns, rows = run(conn, expand_target(target, variables, span))
                if target.target["format"] == "time_series":
                    check_time_series(f"{target.name} {label} {selection}", columns, rows)
                else:
                    check_table(target, columns, rows)
                if not rows:
                    empty[target.name].append(label)
    # Data exists over every range for every panel, except where noted above (and why).
    found = {name: labels for name, labels in empty.items() if labels}
    assert found == EXPECTED_EMPTY[selection], f"panels without rows: {json.dumps(found)}"



def test_quarantine_panel_counts_what_ingest_quarantined(conn: psycopg.Connection,
                                                        history: ScenarioData) -> None:
    target = next(t for t in TARGETS if t.panel["title"] == "Quarantined messages by reason")
    variables = variables_for(conn, target.dashboard, "all")
    columns, rows = run(conn, expand_target(target, variables, RANGES["90d"]))
    by_reason: Counter[str] = Counter()
    for row in rows:
        by_reason[row[columns.index("metric")]] += row[columns.index("value")]
    print(by_reason, history.quarantined)
    assert by_reason == history.quarantined


# --- the planner panels give the API's numbers --------------------------------------------------

def _options(variable: Variable) -> tuple[str, ...]:
    return variable.values if variable.selected == (ALL,) else variable.selected


def _api_series(api: TestClient, call: re.Match[str], variables: dict[str, Variable], span: timedelta,
                max_data_points: int, *, group_by: str | None = None) -> dict[tuple[str, datetime], float]:
    """Ask GET /aggregates the question the panel's planner call asks; return (key, time) → value."""
    bucket = interval_for(END - span, END, max_data_points).text
    params: list[tuple[str, str]] = [
        ("metric", call["metric"]), ("agg", call["agg"]), ("bucket", bucket),
        ("start", (END - span).isoformat()), ("end", END.isoformat()),
        ("group_by", group_by or call["group_by"]), ("tz", call["tz"])]
    params += [("site", site) for site in _options(variables["district"])]
    if call["devices"] != "NULL":
        params += [("device", device) for device in _options(variables["device"])]
    response = api.get(f"/api/v1/aggregates?{urlencode(params)}")
    assert response.status_code == 200, response.text
    return {(series["key"], datetime.fromisoformat(point["time"])): point["value"]
            for series in response.json()["series"] for point in series["points"]}


def _panel_series(columns: list[str], rows: list[tuple[Any, ...]]) -> dict[tuple[str, datetime], float]:
    at, key, value = columns.index("time"), columns.index("metric"), columns.index("value")
    return {(row[key], row[at]): row[value] for row in rows if row[value] is not None}


def _close(panel: dict[tuple[str, datetime], float], expected: dict[tuple[str, datetime], float],
           name: str) -> None:
    assert panel.keys() == expected.keys(), (
        f"{name}: series points differ: panel only {sorted(panel.keys() - expected.keys())[:3]}, "
        f"API only {sorted(expected.keys() - panel.keys())[:3]}")
    for point, value in panel.items():
        assert float(value) == pytest.approx(float(expected[point]), rel=1e-9, abs=1e-9), f"{name} at {point}"


def _device_sites(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT device_id, site_id FROM devices").fetchall())


def _expected(target: Target, call: re.Match[str], api: TestClient, variables: dict[str, Variable],
              span: timedelta, sites: dict[str, str]) -> dict[tuple[str, datetime], float] | None:
    """The panel's answer worked out from the API's; None for a panel shape not handled here."""
    text, points = target.target["rawSql"], target.panel["maxDataPoints"]
    plain = PLAIN.match(text)
    if plain:
        factor = float(plain["factor"] or 1)
        # A factor turns a 0/1 switch into a percentage: nothing else, and only on a percent axis.
        if plain["factor"]:
            assert (factor, METRICS[call["metric"]].unit) == (100, "0/1"), target.name
            assert target.panel["fieldConfig"]["defaults"]["unit"] == "percent", target.name
        return {k: v * factor for k, v in _api_series(api, call, variables, span, points).items()}
    if text.startswith('SELECT a.time AS "time", sum(a.value) AS value, d.site_id AS metric'):
        totals: dict[tuple[str, datetime], float] = defaultdict(float)
        for (device, time), value in _api_series(api, call, variables, span, points).items():
            totals[(sites[device], time)] += value
        return dict(totals)
    if "lag(value) OVER w" in text:  # the rate of rise: per hour between consecutive buckets, in cm
        factor = float(re.search(r"\(value - lag\(value\) OVER w\) \* ([\d.]+)", text)[1])  # type: ignore[index]
        by_device: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        for (device, time), value in sorted(_api_series(api, call, variables, span, points).items()):
            by_device[device].append((time, value))
        rates = {}
        for device, series in by_device.items():
            for (t0, v0), (t1, v1) in zip(series, series[1:], strict=False):
                rates[(device, t1)] = (v1 - v0) * factor / ((t1 - t0).total_seconds() / 3600)
        return rates
    return None


PLANNER_TARGETS = [t for t in TARGETS
                   if t.target["format"] == "time_series" and CALL.search(t.target["rawSql"])]
# Time-series panels built from several planner calls, compared by their own tests below.
_DERIVED = {"smartcity-living/Failed lamps per district/A"}


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_planner_panels_equal_the_api(conn: psycopg.Connection, api: TestClient, selection: str) -> None:
    sites = _device_sites(conn)
    spans = RANGES if selection == "all" else {k: RANGES[k] for k in ("6h", "30d")}
    compared = 0
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variables = variables_for(conn, board, selection)
        for target in (t for t in PLANNER_TARGETS if t.dashboard["uid"] == board["uid"]):
            call = CALL.search(target.target["rawSql"])
            assert call is not None
            for label, span in spans.items():
                expected = _expected(target, call, api, variables, span, sites)
                if expected is None:
                    assert target.name in _DERIVED, f"{target.name}: a planner panel no test compares"
                    continue
                columns, rows = run(conn, expand_target(target, variables, span))
                _close(_panel_series(columns, rows), expected, f"{target.name} {label} {selection}")
                compared += bool(expected)
    assert compared >= len(PLANNER_TARGETS) - len(_DERIVED)  # and most with points to compare
    assert compared > 0


# --- the ISPU map gives the API's index ---------------------------------------------------------

def _ispu_map(conn: psycopg.Connection, selection: str, to: datetime) -> dict[str, dict[str, Any]]:
    target = next(t for t in TARGETS if t.panel["type"] == "geomap")
    variables = variables_for(conn, target.dashboard, selection)
    text = expand(target.target["rawSql"], time_from=to - timedelta(hours=24), time_to=to,
                  variables=variables.values(), max_data_points=target.panel["maxDataPoints"])
    columns, rows = run(conn, text)
    return {row[0]: dict(zip(columns, row, strict=True)) for row in rows}


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_the_ispu_map_equals_the_api_at_the_range_end(conn: psycopg.Connection, api: TestClient,
                                                      history: ScenarioData, selection: str) -> None:
    haze = history.haze_plateau[0] + timedelta(days=3)
    for to in (END, haze):
        shown = _ispu_map(conn, selection, to)
        districts = SELECTIONS[selection][0]
        assert set(shown) == ({s for s, in conn.execute("SELECT site_id FROM sites")} if districts == (ALL,)
                              else set(districts))
        for site, row in shown.items():
            answer = api.get("/api/v1/ispu", params={"site": site, "at": to.isoformat()}).json()
            assert (row["ispu"], row["category"], row["color"], row["dominant"]) == (
                answer["ispu"], answer["category"], answer["color"], answer["dominant"]), (site, to)
    # In the haze, its districts read unhealthy and the others do not (the scenario's smoke).
    during = _ispu_map(conn, "all", haze)
    unhealthy = {site for site, row in during.items() if row["ispu"] is not None and row["ispu"] > 100}
    assert unhealthy == set(HAZE_SITES)


# --- tables and series built from several planner calls -----------------------------------------

def _hourly(api: TestClient, metric: str, agg: str, span: timedelta, to: datetime = END
            ) -> dict[tuple[str, datetime], float]:
    params = {"metric": metric, "agg": agg, "bucket": "1h", "start": (to - span).isoformat(),
              "end": to.isoformat(), "group_by": "device", "tz": "Asia/Makassar"}
    response = api.get("/api/v1/aggregates", params=params)
    assert response.status_code == 200, response.text
    return {(s["key"], datetime.fromisoformat(p["time"])): p["value"]
            for s in response.json()["series"] for p in s["points"]}


def _bucket_start(moment: datetime, width: timedelta, tz: str) -> datetime:
    """time_bucket(width, moment, tz) for widths of whole hours that divide a day."""
    local = moment.astimezone(ZoneInfo(tz))
    hours = int(width.total_seconds() // 3600)
    return local.replace(hour=local.hour - local.hour % hours, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("span", ["7d", "30d", "90d"])
def test_failed_lamps_are_the_api_hours_on_yet_dark(conn: psycopg.Connection, api: TestClient,
                                                    span: str) -> None:
    sites = _device_sites(conn)
    on = _hourly(api, "lamp_on", "min", RANGES[span])
    power = _hourly(api, "lamp_power", "max", RANGES[span])
    failed = sorted(k for k, v in on.items() if v == 1 and k in power and power[k] < LAMP_DEAD_MAX_W)
    by_lamp: dict[str, list[datetime]] = defaultdict(list)
    for lamp, hour in failed:
        by_lamp[lamp].append(hour)
    table = next(t for t in TARGETS if t.panel["title"] == "Failed lamps")
    series = next(t for t in TARGETS if t.panel["title"] == "Failed lamps per district")
    variables = variables_for(conn, table.dashboard, "all")
    columns, rows = run(conn, expand_target(table, variables, RANGES[span]))
    assert [dict(zip(columns, row, strict=True)) for row in rows] == sorted(
        ({"lamp": lamp, "district": sites[lamp], "first_failed": hours[0], "last_failed": hours[-1],
          "failed_hours": len(hours)} for lamp, hours in by_lamp.items()),
        key=lambda r: (-r["last_failed"].timestamp(), r["lamp"]))
    interval = interval_for(END - RANGES[span], END, series.panel["maxDataPoints"])
    width = max(timedelta(milliseconds=interval.ms), timedelta(hours=1))
    counts: dict[tuple[str, datetime], set[str]] = defaultdict(set)
    for lamp, hour in failed:
        counts[(sites[lamp], _bucket_start(hour, width, "Asia/Makassar"))].add(lamp)
    columns, rows = run(conn, expand_target(series, variables, RANGES[span]))
    check_time_series(series.name, columns, rows)
    assert _panel_series(columns, rows) == {k: len(v) for k, v in counts.items()}
    if span != "7d":  # the simulated lamps failed in the month before the data's end
        assert rows and by_lamp


def test_bins_needing_collection_are_those_last_reported_full(conn: psycopg.Connection) -> None:
    target = next(t for t in TARGETS if t.panel["title"] == "Bins needing collection")
    variables = variables_for(conn, target.dashboard, "all")
    shown_any = 0
    for hours in range(0, 7 * 24, 1):  # hourly over the last week: bins fill up and are emptied
        to = END - timedelta(hours=hours)
        text = expand(target.target["rawSql"], time_from=to - timedelta(hours=24), time_to=to,
                      variables=variables.values(), max_data_points=target.panel["maxDataPoints"])
        columns, rows = run(conn, text)
        last = conn.execute(
            "SELECT DISTINCT ON (d.device_id) d.device_id, d.site_id, r.value FROM readings r"
            " JOIN devices d ON d.id = r.device JOIN metrics m ON m.metric_id = r.metric"
            " WHERE m.name = 'fill_level' AND r.time >= %s AND r.time < %s"
            " ORDER BY d.device_id, r.time DESC", (to - timedelta(hours=24), to)).fetchall()
        full = sorted(((d, s, v) for d, s, v in last if v >= BIN_FULL_PERCENT), key=lambda r: (-r[2], r[0]))
        assert [row[:3] for row in rows] == full, to
        assert columns[:3] == ["device", "district", "fill_level"]
        shown_any += bool(full)
    assert shown_any  # some of those times had a full bin (the simulated bins fill and are emptied)


# --- platform health ------------------------------------------------------------------------------

@pytest.mark.parametrize("span", ["24h", "90d"])
def test_readings_per_second_are_the_api_counts_over_the_interval(conn: psycopg.Connection, api: TestClient,
                                                                 span: str) -> None:
    target = next(t for t in TARGETS if t.panel["title"] == "Readings ingested per second")
    variables = variables_for(conn, target.dashboard, "two-districts")
    interval = interval_for(END - RANGES[span], END, target.panel["maxDataPoints"])
    totals: dict[tuple[str, datetime], float] = defaultdict(float)
    for name in METRICS:
        params = [("metric", name), ("agg", "count"), ("bucket", interval.text), ("group_by", "none"),
                  ("start", (END - RANGES[span]).isoformat()), ("end", END.isoformat()),
                  ("site", "tanah-grogot"), ("site", "kuaro")]
        response = api.get(f"/api/v1/aggregates?{urlencode(params)}")
        assert response.status_code == 200, response.text
        for series in response.json()["series"]:
            for point in series["points"]:
                totals[("readings/s", datetime.fromisoformat(point["time"]))] += point["value"]
    columns, rows = run(conn, expand_target(target, variables, RANGES[span]))
    expected = {k: v / (interval.ms / 1000) for k, v in totals.items()}
    assert expected
    _close(_panel_series(columns, rows), expected, f"{target.name} {span}")


def test_device_panels_count_the_chosen_districts_devices_and_the_lag_is_the_pending_hours(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    board = next(t.dashboard for t in TARGETS if t.dashboard["uid"] == "smartcity-platform")
    variables = variables_for(conn, board, "two-districts")
    answers = {t.panel["title"]: run(conn, expand_target(t, variables, RANGES["24h"]))
           for t in TARGETS if t.dashboard is board}
    chosen = [s for s in history.specs if s.site_id in ("tanah-grogot", "kuaro")]
    columns, rows = answers["Devices by status"]
    counts = dict(zip(columns, rows[0], strict=True))
    # Backfilled devices were heard from (last seen) but never sent a status message: all unknown.
    assert counts == {**{status: 0 for status in counts}, "unknown": len(chosen)}
    columns, rows = answers["Devices, longest silent first"]
    listed = [dict(zip(columns, row, strict=True)) for row in rows]
    assert sorted(r["device"] for r in listed) == sorted(s.device_id for s in chosen)
    assert all(r["last_seen"] is not None and r["last_seen"] < END for r in listed)
    assert [r["last_seen"] for r in listed] == sorted(r["last_seen"] for r in listed)
    (lag,), = answers["Rollup lag"][1]
    assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone()[0] > 0 and lag > 0  # type: ignore[index]
