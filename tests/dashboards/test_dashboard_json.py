"""The generated dashboard JSON: ids, data source, variables, shape of every panel and query."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from grafana_foundation_sdk.models import dashboard

from api.indices import ISPU_TABLE
from dashboards.build import JSON_DIR, build_dashboards, render
from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.query import PostgresQuery, register
from dashboards.scales import grafana_unit
from smartcity.catalog import METRICS, RIVER_WARNING_LEVELS_M, SITES

BUILT = {name: json.loads(text) for name, text in build_dashboards().items()}
# Grafana's own variables: $__interval, $__timeFrom() … and the macro functions.
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::[\w]+)?\}|(?P<plain>\w+))")


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # inside a collapsed row
    return panels


def _queries(board: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in _panels(board):
        for target in panel.get("targets", []):
            yield panel, target


def _walk(node: Any, key: str) -> Iterator[Any]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


def _by_title(name: str, title: str) -> dict[str, Any]:
    (panel,) = [p for p in _panels(BUILT[name]) if p.get("title") == title]
    return panel


def _steps(panel: dict[str, Any]) -> list[float | None]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_panel_ids_unique_and_ref_ids_unique_per_panel(name: str) -> None:
    ids = [p["id"] for p in _panels(BUILT[name])]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    for panel in _panels(BUILT[name]):
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)) and all(refs), panel["title"]


def test_dashboard_uids_and_titles_unique() -> None:
    uids = [b["uid"] for b in BUILT.values()]
    titles = [b["title"] for b in BUILT.values()]
    assert len(set(uids)) == len(uids) == 3 and len(set(titles)) == 3
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_data_source_is_the_provisioned_one(name: str) -> None:
    refs = list(_walk(BUILT[name], "datasource"))
    # Every query panel, each of its targets and each query variable names it.
    assert len(refs) >= 2 * sum(1 for _ in _queries(BUILT[name]))
    assert all(ref == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID} for ref in refs), refs


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_variable_used_is_defined(name: str) -> None:
    board = BUILT[name]
    defined = [v["name"] for v in board["templating"]["list"]]
    sqls = [t["rawSql"] for _, t in _queries(board)] + [v["query"] for v in board["templating"]["list"]]
    used = {m["braced"] or m["plain"] for sql in sqls for m in _VARIABLE.finditer(sql)}
    used = {u for u in used if not u.startswith("__")}
    assert used, "no panel filters by a variable"
    assert used <= set(defined), f"undefined: {used - set(defined)}"
    # A variable may only use the ones defined before it (Grafana resolves them in order).
    for i, variable in enumerate(board["templating"]["list"]):
        inner = {m["braced"] or m["plain"] for m in _VARIABLE.finditer(variable["query"])}
        assert inner <= set(defined[:i]), variable["name"]


def test_undefined_variable_detection_catches_one() -> None:
    assert {m["braced"] or m["plain"] for m in _VARIABLE.finditer(
        "IN (${site:sqlstring}) AND x = $kind AND $__timeFilter(t) AND '$__interval'")} == {
        "site", "kind", "__timeFilter", "__interval"}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_district_and_device_variables(name: str) -> None:
    variables = {v["name"]: v for v in BUILT[name]["templating"]["list"]}
    district = variables["district"]
    assert district["multi"] and district["includeAll"] and "FROM sites" in district["query"]
    if name != "platform.json":
        device = variables["device"]
        assert device["multi"] and device["includeAll"]
        assert "${district:sqlstring}" in device["query"] and "m.domain" in device["query"]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_every_panel_has_title_description_and_max_data_points(name: str) -> None:
    for panel in _panels(BUILT[name]):
        assert panel.get("title"), panel["id"]
        if panel["type"] == "row":
            continue
        assert panel.get("description"), panel["title"]
        assert isinstance(panel.get("maxDataPoints"), int) and panel["maxDataPoints"] > 0, panel["title"]
        assert panel.get("targets"), panel["title"]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_queries_are_raw_sql_of_the_right_format(name: str) -> None:
    for panel, target in _queries(BUILT[name]):
        sql = target["rawSql"]
        assert target["rawQuery"] is True and target["editorMode"] == "code"
        if target["format"] == "time_series":
            # A time column, ascending: what Grafana's time-series format needs.
            assert re.search(r'AS "time"|\$__timeGroupAlias\(', sql), panel["title"]
            assert re.search(r"ORDER BY 1\b", sql), panel["title"]
        else:
            assert target["format"] == "table", panel["title"]
        # Over the dashboard's range, never a fixed one (the device and status tables are "now").
        # The bucket is the panel's interval, or a fixed one where a judgement needs it (failed
        # lamps: on throughout an hour), never a range.
        calls = list(re.finditer(r"smartcity_aggregate\([^,]+, '([^']+)', '\w+',\s*([^,]+), ([^,]+),", sql))
        assert len(calls) == sql.count("smartcity_aggregate("), panel["title"]
        for call in calls:
            assert (call[2], call[3]) == ("$__timeFrom()", "$__timeTo()"), panel["title"]
            assert call[1] == "$__interval" or re.fullmatch(r"\d+[hm]", call[1]), panel["title"]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_nothing_is_hard_coded_to_one_district_or_device(name: str) -> None:
    for panel, target in _queries(BUILT[name]):
        for site in SITES:
            assert site not in target["rawSql"], (panel["title"], site)
        # Filtered by the district variable, except the quarantine (an unknown device has no
        # district) and the rollup lag (one number for the whole database).
        sql = target["rawSql"]
        filtered = "${district:sqlstring}" in sql
        assert filtered or "FROM quarantine" in sql or "rollup_lag()" in sql, panel["title"]


def test_every_environment_and_living_series_reads_through_the_planner() -> None:
    for name in ("environment.json", "living.json"):
        for panel, target in _queries(BUILT[name]):
            if panel["type"] != "geomap":
                assert "smartcity_aggregate(" in target["rawSql"], panel["title"]
    assert "smartcity_site_ispu($__timeTo())" in _by_title("environment.json", "ISPU by district")[
        "targets"][0]["rawSql"]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_json_round_trips_through_the_sdk_models(name: str) -> None:
    register()
    model = dashboard.Dashboard.from_json(json.loads(json.dumps(BUILT[name])))
    assert json.loads(render(model)) == BUILT[name]
    for panel in model.panels or []:
        for target in getattr(panel, "targets", None) or []:
            assert isinstance(target, PostgresQuery)


def test_a_query_keeps_keys_it_does_not_know_and_refuses_a_bad_format() -> None:
    saved = {"refId": "B", "rawSql": "SELECT 1", "format": "table", "hide": True, "sql": {"columns": []},
             "editorMode": "builder", "rawQuery": True,
             "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}}
    assert PostgresQuery.from_json(saved).to_json() == saved
    with pytest.raises(ValueError, match="format must be time_series or table, not 'logs'"):
        PostgresQuery.from_json({**saved, "format": "logs"})


def test_committed_files_are_the_built_ones() -> None:
    for name, board in BUILT.items():
        assert json.loads((JSON_DIR / name).read_text(encoding="utf-8")) == board


def test_pm_panels_carry_the_ispu_bands_from_the_ispu_table() -> None:
    for pollutant, title in (("pm25", "PM2.5 per district"), ("pm10", "PM10 per district")):
        panel = _by_title("environment.json", title)
        assert _steps(panel) == [None, *ISPU_TABLE[pollutant][1:-1]]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
        assert f"smartcity_aggregate('{pollutant}'" in panel["targets"][0]["rawSql"]


def test_ispu_map_is_coloured_by_index_band() -> None:
    panel = _by_title("environment.json", "ISPU by district")
    # Integer ISPU, bands 0–50, 51–100, 101–200, 201–300, 301+.
    assert _steps(panel) == [None, 51, 101, 201, 301]
    (layer,) = panel["options"]["layers"]
    assert layer["config"]["style"]["color"]["field"] == "ispu"
    assert layer["location"] == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}


def test_river_panels_draw_the_catalogue_alert_stages() -> None:
    stages = sorted(RIVER_WARNING_LEVELS_M.values())
    for title in ("River level per gauge", "River level now"):
        assert _steps(_by_title("environment.json", title)) == [None, *stages]
    rise = _by_title("environment.json", "River rate of rise")["targets"][0]["rawSql"]
    assert "'last'" in rise and "lag(value) OVER w" in rise


def test_units_and_ranges_come_from_the_catalogue() -> None:
    checked = 0
    for name in BUILT:
        for panel, target in _queries(BUILT[name]):
            found = re.match(r"smartcity_aggregate\('(\w+)'", target["rawSql"].split("FROM ", 1)[-1].strip())
            defaults = panel["fieldConfig"]["defaults"]
            if not found or "unit" not in defaults or panel["type"] == "table":
                continue
            m = METRICS[found[1]]
            if m.unit in ("µg/m³", "pH", "dBA", "NTU", "mg/L", "µS/cm"):
                assert defaults["unit"] == f"suffix: {m.unit}", panel["title"]
                checked += 1
            if panel["type"] == "stat":
                assert (defaults["min"], defaults["max"]) == (m.min_value, m.max_value)
            floor = defaults.get("custom", {}).get("axisSoftMin")
            # Panels of the metric itself (not a count or share derived from it).
            if panel["type"] == "timeseries" and defaults["unit"] == grafana_unit(m.unit):
                assert floor == (m.min_value if m.min_value >= 0 else None), panel["title"]
    assert checked >= 5
