"""Alert rules and alert annotations, expanded as Grafana expands them and run as smartcity_grafana
against ninety days of the simulated demo fleet with a haze and a flood (tests/dashboards/scenario_data.py).

The rules are read from the provisioning YAML (what Grafana would load) and judged as Grafana judges
them (panel_runs.evaluate: each query, the math, the threshold): they must fire where and when the
scenario says, for the subjects it says, and the annotation must show what the evaluator stored.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import psycopg
import pytest

from dashboards.macros import expand
from tests.api.alerts_seed import T0 as ALERTS_T0
from tests.api.alerts_seed import clear_alerts, insert_alert
from tests.dashboards.panel_runs import (
    DASHBOARDS,
    conn_fixture,  # noqa: F401  (the module's fixture `conn`)
    evaluate,
    firing,
    history_fixture,  # noqa: F401  (the module's fixture `history`)
    rule,
    run,
    variables_for,
)
from tests.dashboards.scenario_data import FLOOD_SITES, HAZE_SITES, ScenarioData

RAW_WINDOW = """\
SELECT {key}, {agg}(r.value) FROM readings r JOIN devices d ON d.id = r.device
JOIN metrics m ON m.metric_id = r.metric
WHERE m.name = %s AND r.time >= %s AND r.time < %s GROUP BY 1"""
FLOODED = {(f"river-{site}-01", site) for site in FLOOD_SITES}
# The readings of the last two days come every 10 minutes on the hour's tenths: a rule's 5-minute
# window ending a minute after one holds it.
_AFTER_A_READING = timedelta(minutes=1)


def test_the_pm25_rule_fires_for_the_haze_districts_inside_the_haze_only(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    pm25 = rule("smartcity-pm25-24h-tidak-sehat")
    plateau = history.haze_plateau[0]
    inside, outside = plateau + timedelta(days=3), plateau - timedelta(days=10)
    for at, expected in ((inside, set(HAZE_SITES)), (outside, set())):
        values = evaluate(conn, pm25, at)["A"]
        raw = dict(conn.execute(RAW_WINDOW.format(key="d.site_id", agg="avg"),
                                ("pm25", at - timedelta(hours=24), at)).fetchall())
        assert {site for (site,) in values} == set(raw) and len(raw) == 10
        for (site,), value in values.items():
            assert value == pytest.approx(raw[site], rel=1e-9)  # the mean of the readings themselves
        assert {site for (site,) in firing(conn, pm25, at)} == expected, at


def test_the_pm25_rule_judges_no_district_with_too_few_hours(conn: psycopg.Connection,
                                                              history: ScenarioData) -> None:
    """A 24-hour mean over fewer than 75 % of the hours is not judged (the ISPU's rule): a window
    ending five hours into the data holds five hours of it."""
    first = conn.execute("SELECT min(time) FROM readings").fetchone()[0]
    early = evaluate(conn, rule("smartcity-pm25-24h-tidak-sehat"), first + timedelta(hours=5))["A"]
    full = evaluate(conn, rule("smartcity-pm25-24h-tidak-sehat"), first + timedelta(hours=24))["A"]
    assert early == {} and len(full) == 10


def test_the_river_stages_fire_for_the_flooded_gauges_after_the_rain_only(
        conn: psycopg.Connection, history: ScenarioData) -> None:
    waspada = rule("smartcity-river-waspada")
    rain_from, rain_to = history.flood_rain
    last = conn.execute("SELECT max(time) FROM readings r JOIN metrics m ON m.metric_id = r.metric"
                        " WHERE m.name = 'water_level'").fetchone()[0]
    # Six hours after the rain the flooded rivers are high; at its start none has risen; at the
    # data's end (the last hours still pending in the rollups) the flood has not yet receded.
    for at, expected in ((rain_to + timedelta(hours=6), FLOODED), (rain_from, set()), (last, FLOODED)):
        at += _AFTER_A_READING
        values = evaluate(conn, waspada, at)
        raw = dict(conn.execute(RAW_WINDOW.format(key="d.device_id", agg="avg"),
                                ("water_level", at - timedelta(minutes=5), at)).fetchall())
        assert {device for device, _ in values["A"]} == set(raw) and len(raw) == 3
        for (device, _), value in values["A"].items():
            assert value == pytest.approx(raw[device], rel=1e-9)
        # Each gauge is judged against its own level from the rule file.
        assert {device: level for (device, _), level in values["L"].items()} == {
            device: 3.0 for device, _ in FLOODED | {("river-kuaro-01", "kuaro")}}
        assert firing(conn, waspada, at) == expected, at
    # The higher stages are the same query against higher levels: fewer gauges, never more.
    peak = rain_to + timedelta(hours=6) + _AFTER_A_READING
    stages = [firing(conn, rule(f"smartcity-river-{stage}"), peak) for stage in ("waspada", "siaga", "awas")]
    assert stages[0] >= stages[1] >= stages[2]


def test_the_rise_is_seen_before_the_first_stage(conn: psycopg.Connection, history: ScenarioData) -> None:
    rising, waspada = rule("smartcity-river-rising-fast"), rule("smartcity-river-waspada")
    rain_from, _ = history.flood_rain
    first: dict[str, dict[str, datetime]] = {"rise": {}, "level": {}}
    for step in range(0, 24 * 6):
        at = rain_from + timedelta(minutes=10 * step) + _AFTER_A_READING
        for name, judged in (("rise", rising), ("level", waspada)):
            for device, _ in firing(conn, judged, at):
                first[name].setdefault(device, at)
    flooded = {device for device, _ in FLOODED}
    assert set(first["rise"]) == set(first["level"]) == flooded  # the dry gauge neither rises nor floods
    for device in flooded:
        assert first["rise"][device] < first["level"][device], device
    # The slope is the rule's per hour: m/h from the one-minute means.
    rates = evaluate(conn, rising, first["rise"]["river-tanah-grogot-01"])["A"]
    assert rates[("river-tanah-grogot-01", "tanah-grogot")] > 0.2


def test_the_ispu_rules_fire_for_the_haze_districts(conn: psycopg.Connection, history: ScenarioData) -> None:
    unhealthy = rule("smartcity-ispu-tidak-sehat")
    plateau = history.haze_plateau[0]
    inside, outside = plateau + timedelta(days=3), plateau - timedelta(days=10)
    assert {site for (site,) in firing(conn, unhealthy, inside)} == set(HAZE_SITES)
    assert firing(conn, unhealthy, outside) == set()
    values = evaluate(conn, unhealthy, inside)["A"]
    assert all(values[(site,)] > 100 for site in HAZE_SITES)


def test_the_silence_rules_fire_by_kind_once_devices_stop(conn: psycopg.Connection) -> None:
    last = conn.execute("SELECT max(time) FROM latest_readings").fetchone()[0]
    silent = {uid: {device for device, _ in firing(conn, rule(uid), last + timedelta(hours=2))}
              for uid in ("smartcity-silent-river-level-sensor", "smartcity-silent-air-quality-station",
                          "smartcity-silent-street-light")}
    # Two hours after the data's end: the gauges (15 minutes) and the stations (an hour) are silent,
    # the street lights (6 hours) not yet.
    assert silent["smartcity-silent-river-level-sensor"] == {"river-tanah-grogot-01", "river-long-ikis-01",
                                                             "river-kuaro-01"}
    assert len(silent["smartcity-silent-air-quality-station"]) == 10
    assert silent["smartcity-silent-street-light"] == set()
    assert firing(conn, rule("smartcity-silent-river-level-sensor"), last + timedelta(minutes=5)) == set()


# --- the alert annotations of the Smart Environment dashboard ---------------------------------

def test_the_alert_annotations_show_each_transition_of_the_chosen_districts(conn: psycopg.Connection) -> None:
    board = json.loads(next(p for p in DASHBOARDS if p.name == "environment.json").read_text())
    (annotation,) = [a for a in board["annotations"]["list"] if a["name"] == "Alerts"]
    raw_sql = annotation["target"]["rawSql"]
    clear_alerts(conn)
    try:
        flood = insert_alert(conn, "river-waspada", "river-tanah-grogot-01", "tanah-grogot",
                             fired_minutes=0, resolved_minutes=120, severity="info")
        insert_alert(conn, "pm25-24h-tidak-sehat", "kuaro", "kuaro", fired_minutes=60, device=False)
        insert_alert(conn, "river-retired", "river-long-ikis-01", "long-ikis", fired_minutes=-3000)
        answers = {}
        for selection in ("all", "one-district"):
            variables = variables_for(conn, board, selection)
            text = expand(raw_sql, time_from=ALERTS_T0 - timedelta(hours=1),
                          time_to=ALERTS_T0 + timedelta(hours=3), variables=variables.values(),
                          max_data_points=1000)  # no interval macro in it: any number does
            answers[selection] = run(conn, text)
    finally:
        clear_alerts(conn)
    columns, rows = answers["all"]
    assert columns == ["time", "text", "tags"]
    assert [(time - ALERTS_T0, text, tags) for time, text, tags in rows] == [
        (timedelta(0), "River above the Waspada level — river-tanah-grogot-01 (tanah-grogot): firing",
         "firing,info,tanah-grogot"),
        (timedelta(hours=1), "PM2.5 24-hour mean above the ISPU Tidak Sehat level — kuaro: firing",
         "firing,warning,kuaro"),
        (timedelta(hours=2), "River above the Waspada level — river-tanah-grogot-01 (tanah-grogot): resolved",
         "resolved,info,tanah-grogot"),
    ]  # the retired rule's alert fired two days before the range: not shown
    assert flood and [text for _, text, _ in answers["one-district"][1]] == [rows[0][1], rows[2][1]]
