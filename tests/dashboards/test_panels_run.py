"""Every panel and alert rule, expanded as Grafana expands it and run as smartcity_grafana against
ninety days of the simulated demo fleet with a haze and a flood (tests/dashboards/scenario_data.py).

The dashboards are read from their committed JSON, the rules from the provisioning YAML: what
Grafana would load, not what the builders would build now. Each query runs for ranges of 15 minutes
to 90 days ending at the data's end and for several selections of the dashboard's variables, whose
options come from the variables' own queries as Grafana would run them. Answers must come back in the
shape the panel's format needs, and a planner panel's numbers must be the API's for the same question.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
import pytest
import yaml
from psycopg import sql

from api import create_app
from dashboards.alerts import pm25_unhealthy_edge, river_warning_level
from dashboards.living import BIN_FULL_PERCENT, LAMP_DEAD_MAX_W
from dashboards.macros import ALL, Variable, expand, interval_for
from smartcity.apikeys import Scope, create_key
from smartcity.catalog import METRICS
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.dashboards import scenario_data
from tests.dashboards.scenario_data import END, FLOOD_SITES, HAZE_SITES, ScenarioData
from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards" / "json").glob("*.json"))
RULE_FILES = sorted((ROOT / "dashboards" / "provisioning" / "alerting").glob("*.yaml"))
ROLE = "smartcity_grafana"
RANGES = {"15m": timedelta(minutes=15), "6h": timedelta(hours=6), "24h": timedelta(hours=24),
          "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
# Tables the session's other tests fill; emptied once before this module stores its history.
_DATA_TABLES = ("readings", "latest_readings", "quarantine", "devices", "rollup_1m", "rollup_1h", "rollup_1d",
                "rollup_pending", "retention_horizon", "api_keys")
# A planner call as the panel builders write it (smartcity/db/queries/panels.py).
_CALL = re.compile(
    r"smartcity_aggregate\('(?P<metric>\w+)', '\$__interval', '(?P<agg>\w+)',"
    r" \$__timeFrom\(\), \$__timeTo\(\),\s+(?P<devices>NULL|ARRAY\[\$\{device:sqlstring\}\]::text\[\]),"
    r" ARRAY\[\$\{district:sqlstring\}\]::text\[\],"
    r" '(?P<group_by>\w+)', '(?P<tz>[\w/]+)'\)")
# The panel shapes whose numbers are the planner's rows as they are (value × factor for a percentage).
_PLAIN = re.compile(r'SELECT time AS "time", value(?: \* (?P<factor>[\d.]+) AS value)?, key AS metric\nFROM ')


@dataclass(frozen=True)
class Target:
    """One query of one panel, as the committed dashboard JSON holds it."""

    dashboard: dict[str, Any]
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.dashboard['uid']}/{self.panel['title']}/{self.target['refId']}"


def _targets() -> list[Target]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append(Target(board, panel, target))
    return found


TARGETS = _targets()


def _run(conn: psycopg.Connection, text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run expanded SQL with smartcity_grafana's rights; return column names and rows."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(ROLE)))
    try:
        cursor = conn.execute(text.encode())  # bytes: psycopg must not read Grafana's text as a template
        return [c.name for c in cursor.description or []], cursor.fetchall()
    finally:
        conn.execute("RESET ROLE")


@pytest.fixture(scope="module")
def history(postgres: EmbeddedPostgres) -> ScenarioData:
    """The demo fleet's ninety days, stored once for the module."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY CASCADE")
    return scenario_data.load(postgres.url)


@pytest.fixture(scope="module")
def conn(postgres: EmbeddedPostgres, history: ScenarioData) -> Iterator[psycopg.Connection]:
    """An autocommit connection for the module's queries."""
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def api(postgres: EmbeddedPostgres, mosquitto: EmbeddedMosquitto,
        history: ScenarioData) -> Iterator[TestClient]:
    """The API over the same history, with an admin key."""
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        key = create_key(connection, Scope.ADMIN, "panels").key
    # A panel asks for every device's 3-hour buckets over 90 days at once: more points than the
    # API's default bound on one answer, which guards the API, not the question.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=postgres.url, mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
        api=ApiSettings(aggregate_max_points=1_000_000))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"}) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, timeout=10,
                   message="API healthy")
        yield client


# --- variables, as Grafana fills them ------------------------------------------------------------

def _variable(conn: psycopg.Connection, definition: dict[str, Any], chosen: dict[str, Variable],
              selection: tuple[str, ...]) -> Variable:
    """Run a query variable's SQL (expanded with the variables before it) and select ``selection``."""
    text = expand(definition["query"], time_from=END - timedelta(hours=6), time_to=END,
                  variables=chosen.values(), max_data_points=100)
    columns, rows = _run(conn, text)
    value_at = columns.index("__value") if "__value" in columns else 0
    values = tuple(str(row[value_at]) for row in rows)
    wanted = tuple(v for v in selection if v in values) if selection != (ALL,) else selection
    assert wanted, f"variable {definition['name']}: none of {selection} among its options {values}"
    return Variable(definition["name"], values, multi=definition["multi"],
                    include_all=definition["includeAll"], all_value=definition.get("allValue"),
                    current=wanted)


# Per selection: the districts chosen, and the devices (ALL, or one device of each kind prefix).
SELECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "all": ((ALL,), (ALL,)),
    "one-district": (("tanah-grogot",), (ALL,)),
    "two-districts": (("tanah-grogot", "kuaro"), (ALL,)),
    "devices": ((ALL,), ("aq-kuaro-01", "wx-long-ikis-01", "river-tanah-grogot-01", "wq-tanah-grogot-01",
                         "noise-long-ikis-01", "light-tanah-grogot-01", "bin-tanah-grogot-01",
                         "meter-tanah-grogot-03")),
}


def _variables(conn: psycopg.Connection, board: dict[str, Any], selection: str) -> dict[str, Variable]:
    districts, devices = SELECTIONS[selection]
    chosen: dict[str, Variable] = {}
    for definition in board["templating"]["list"]:
        picked = {"district": districts, "device": devices}[definition["name"]]
        chosen[definition["name"]] = _variable(conn, definition, chosen, picked)
    return chosen


def _expand(target: Target, variables: dict[str, Variable], span: timedelta) -> str:
    return expand(target.target["rawSql"], time_from=END - span, time_to=END, variables=variables.values(),
                  max_data_points=target.panel["maxDataPoints"])


# --- shapes -------------------------------------------------------------------------------------

def _check_time_series(name: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert "time" in columns, f"{name}: no time column in {columns}"
    at = columns.index("time")
    times = [row[at] for row in rows]
    assert None not in times, f"{name}: NULL times"
    assert times == sorted(times), f"{name}: times not ascending"
    values = [c for c in columns if c not in ("time", "metric")]
    assert len(values) == 1, f"{name}: one value column per series wanted, got {values}"
    if "metric" in columns:  # long format: one row per series and time, so (time, metric) is unique
        keys = [(row[at], row[columns.index("metric")]) for row in rows]
        assert len(keys) == len(set(keys)), f"{name}: a series has two values at one time"
        assert None not in {k for _, k in keys}, f"{name}: a series without a name"
    else:
        assert len(times) == len(set(times)), f"{name}: two values at one time"


def _fields_named(panel: dict[str, Any]) -> set[str]:
    """The result fields a panel's options or field config name."""
    named: set[str] = set()
    for layer in panel.get("options", {}).get("layers", []):
        location = layer.get("location", {})
        named |= {location[k] for k in ("latitude", "longitude") if k in location}
        named |= {v["field"] for v in layer.get("config", {}).get("style", {}).values()
                  if isinstance(v, dict) and "field" in v}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            named.add(override["matcher"]["options"])
    return named


def _check_table(target: Target, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert columns and len(columns) == len(set(columns)), f"{target.name}: columns {columns}"
    missing = _fields_named(target.panel) - set(columns)
    assert not missing, f"{target.name}: the panel names fields the query lacks: {missing}"
    if target.panel["type"] == "stat" and rows:  # a stat shows numbers: every column must be one
        assert all(isinstance(v, int | float | type(None)) or hasattr(v, "is_finite")
                   for v in rows[0]), f"{target.name}: non-numeric stat {rows[0]}"


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
        variables = _variables(conn, board, selection)
        for target in (t for t in TARGETS if t.dashboard["uid"] == board["uid"]):
            for label, span in RANGES.items():
                columns, rows = _run(conn, _expand(target, variables, span))
                if target.target["format"] == "time_series":
                    _check_time_series(f"{target.name} {label} {selection}", columns, rows)
                else:
                    _check_table(target, columns, rows)
                if not rows:
                    empty[target.name].append(label)
    # Data exists over every range for every panel, except where noted above (and why).
    found = {name: labels for name, labels in empty.items() if labels}
    assert found == EXPECTED_EMPTY[selection], f"panels without rows: {json.dumps(found)}"



def test_quarantine_panel_counts_what_ingest_quarantined(conn: psycopg.Connection,
                                                        history: ScenarioData) -> None:
    target = next(t for t in TARGETS if t.panel["title"] == "Quarantined messages by reason")
    variables = _variables(conn, target.dashboard, "all")
    columns, rows = _run(conn, _expand(target, variables, RANGES["90d"]))
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
    plain = _PLAIN.match(text)
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
                   if t.target["format"] == "time_series" and _CALL.search(t.target["rawSql"])]
# Time-series panels built from several planner calls, compared by their own tests below.
_DERIVED = {"smartcity-living/Failed lamps per district/A"}


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_planner_panels_equal_the_api(conn: psycopg.Connection, api: TestClient, selection: str) -> None:
    sites = _device_sites(conn)
    spans = RANGES if selection == "all" else {k: RANGES[k] for k in ("6h", "30d")}
    compared = 0
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        variables = _variables(conn, board, selection)
        for target in (t for t in PLANNER_TARGETS if t.dashboard["uid"] == board["uid"]):
            call = _CALL.search(target.target["rawSql"])
            assert call is not None
            for label, span in spans.items():
                expected = _expected(target, call, api, variables, span, sites)
                if expected is None:
                    assert target.name in _DERIVED, f"{target.name}: a planner panel no test compares"
                    continue
                columns, rows = _run(conn, _expand(target, variables, span))
                _close(_panel_series(columns, rows), expected, f"{target.name} {label} {selection}")
                compared += bool(expected)
    assert compared >= len(PLANNER_TARGETS) - len(_DERIVED)  # and most with points to compare
    assert compared > 0


# --- the ISPU map gives the API's index ---------------------------------------------------------

def _ispu_map(conn: psycopg.Connection, selection: str, to: datetime) -> dict[str, dict[str, Any]]:
    target = next(t for t in TARGETS if t.panel["type"] == "geomap")
    variables = _variables(conn, target.dashboard, selection)
    text = expand(target.target["rawSql"], time_from=to - timedelta(hours=24), time_to=to,
                  variables=variables.values(), max_data_points=target.panel["maxDataPoints"])
    columns, rows = _run(conn, text)
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


# --- alert rules fire where and when the scenario says -----------------------------------------

def _rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def _evaluate(conn: psycopg.Connection, rule: dict[str, Any], at: datetime) -> dict[tuple[str, ...], float]:
    """Run a rule's query for the window ending ``at``; return each instance's labels and value."""
    query = next(d for d in rule["data"] if d["datasourceUid"] != "__expr__")
    window = timedelta(seconds=query["relativeTimeRange"]["from"] - query["relativeTimeRange"]["to"])
    model = query["model"]
    text = expand(model["rawSql"], time_from=at - window, time_to=at, max_data_points=model["maxDataPoints"],
                  min_interval=f"{model['intervalMs']}ms")
    columns, rows = _run(conn, text)
    labels = [i for i, c in enumerate(columns) if c != "value"]
    return {tuple(row[i] for i in labels): float(row[columns.index("value")]) for row in rows}


def _threshold(rule: dict[str, Any]) -> float:
    condition = next(d for d in rule["data"] if d["refId"] == rule["condition"])
    evaluator = condition["model"]["conditions"][0]["evaluator"]
    assert evaluator["type"] == "gt"
    return float(evaluator["params"][0])


RAW_WINDOW = """\
SELECT {key}, {agg}(r.value) FROM readings r JOIN devices d ON d.id = r.device
JOIN metrics m ON m.metric_id = r.metric
WHERE m.name = %s AND r.time >= %s AND r.time < %s GROUP BY 1"""


def test_the_pm25_rule_fires_for_the_haze_districts_inside_the_haze_only(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    rule = next(r for r in _rules() if r["labels"]["metric"] == "pm25")
    assert _threshold(rule) == pm25_unhealthy_edge()
    plateau = history.haze_plateau[0]
    inside, outside = plateau + timedelta(days=3), plateau - timedelta(days=10)
    for at, firing in ((inside, set(HAZE_SITES)), (outside, set())):
        values = _evaluate(conn, rule, at)
        raw = dict(conn.execute(RAW_WINDOW.format(key="d.site_id", agg="avg"),
                                ("pm25", at - timedelta(hours=24), at)).fetchall())
        assert {site for (site,), _ in values.items()} == set(raw) and len(raw) == 10
        for (site,), value in values.items():
            assert value == pytest.approx(raw[site], rel=1e-9)  # the mean of the readings themselves
        assert {site for (site,), value in values.items() if value > _threshold(rule)} == firing, at


def test_the_river_rule_fires_for_the_flooded_gauges_after_the_rain_only(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    rule = next(r for r in _rules() if r["labels"]["metric"] == "water_level")
    assert _threshold(rule) == river_warning_level()
    flooded = {(f"river-{site}-01", site) for site in FLOOD_SITES}
    rain_from, rain_to = history.flood_rain
    # Six hours after the rain the flooded rivers are high; at its start none has risen; at the
    # data's end (the last hours still pending in the rollups) the flood has not yet receded.
    for at, firing in ((rain_to + timedelta(hours=6), flooded), (rain_from, set()), (END, flooded)):
        values = _evaluate(conn, rule, at)
        raw = dict(conn.execute(RAW_WINDOW.format(key="d.device_id", agg="min"),
                                ("water_level", at - timedelta(minutes=10), at)).fetchall())
        assert {device for (device, _), _ in values.items()} == set(raw) and len(raw) == 3
        for (device, _), value in values.items():
            assert value == pytest.approx(raw[device], rel=1e-9)
        assert {labels for labels, value in values.items() if value > _threshold(rule)} == firing, at


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
    variables = _variables(conn, table.dashboard, "all")
    columns, rows = _run(conn, _expand(table, variables, RANGES[span]))
    assert [dict(zip(columns, row, strict=True)) for row in rows] == sorted(
        ({"lamp": lamp, "district": sites[lamp], "first_failed": hours[0], "last_failed": hours[-1],
          "failed_hours": len(hours)} for lamp, hours in by_lamp.items()),
        key=lambda r: (-r["last_failed"].timestamp(), r["lamp"]))
    interval = interval_for(END - RANGES[span], END, series.panel["maxDataPoints"])
    width = max(timedelta(milliseconds=interval.ms), timedelta(hours=1))
    counts: dict[tuple[str, datetime], set[str]] = defaultdict(set)
    for lamp, hour in failed:
        counts[(sites[lamp], _bucket_start(hour, width, "Asia/Makassar"))].add(lamp)
    columns, rows = _run(conn, _expand(series, variables, RANGES[span]))
    _check_time_series(series.name, columns, rows)
    assert _panel_series(columns, rows) == {k: len(v) for k, v in counts.items()}
    if span != "7d":  # the simulated lamps failed in the month before the data's end
        assert rows and by_lamp


def test_bins_needing_collection_are_those_last_reported_full(conn: psycopg.Connection) -> None:
    target = next(t for t in TARGETS if t.panel["title"] == "Bins needing collection")
    variables = _variables(conn, target.dashboard, "all")
    shown_any = 0
    for hours in range(0, 7 * 24, 1):  # hourly over the last week: bins fill up and are emptied
        to = END - timedelta(hours=hours)
        text = expand(target.target["rawSql"], time_from=to - timedelta(hours=24), time_to=to,
                      variables=variables.values(), max_data_points=target.panel["maxDataPoints"])
        columns, rows = _run(conn, text)
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
    variables = _variables(conn, target.dashboard, "two-districts")
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
    columns, rows = _run(conn, _expand(target, variables, RANGES[span]))
    expected = {k: v / (interval.ms / 1000) for k, v in totals.items()}
    assert expected
    _close(_panel_series(columns, rows), expected, f"{target.name} {span}")


def test_device_panels_count_the_chosen_districts_devices_and_the_lag_is_the_pending_hours(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    board = next(t.dashboard for t in TARGETS if t.dashboard["uid"] == "smartcity-platform")
    variables = _variables(conn, board, "two-districts")
    run = {t.panel["title"]: _run(conn, _expand(t, variables, RANGES["24h"]))
           for t in TARGETS if t.dashboard is board}
    chosen = [s for s in history.specs if s.site_id in ("tanah-grogot", "kuaro")]
    columns, rows = run["Devices by status"]
    counts = dict(zip(columns, rows[0], strict=True))
    # Backfilled devices were heard from (last seen) but never sent a status message: all unknown.
    assert counts == {**{status: 0 for status in counts}, "unknown": len(chosen)}
    columns, rows = run["Devices, longest silent first"]
    listed = [dict(zip(columns, row, strict=True)) for row in rows]
    assert sorted(r["device"] for r in listed) == sorted(s.device_id for s in chosen)
    assert all(r["last_seen"] is not None and r["last_seen"] < END for r in listed)
    assert [r["last_seen"] for r in listed] == sorted(r["last_seen"] for r in listed)
    (lag,), = run["Rollup lag"][1]
    assert conn.execute("SELECT count(*) FROM rollup_pending").fetchone()[0] > 0 and lag > 0  # type: ignore[index]
