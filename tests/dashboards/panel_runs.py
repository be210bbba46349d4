"""What the panel-run tests share: the committed dashboards' targets and the provisioned rules, variables
filled as Grafana fills them, queries run with smartcity_grafana's rights, and the shapes panels need.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from dashboards.macros import ALL, Variable, expand
from smartcity.services import EmbeddedPostgres
from tests.dashboards import scenario_data
from tests.dashboards.scenario_data import END, ScenarioData
from tests.roles import as_role
from tests.services import DATA_TABLES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards" / "json").glob("*.json"))
RULE_FILES = sorted((ROOT / "dashboards" / "provisioning" / "alerting").glob("*.yaml"))
ROLE = "smartcity_grafana"
RANGES = {"15m": timedelta(minutes=15), "6h": timedelta(hours=6), "24h": timedelta(hours=24),
          "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
# A planner call as the panel builders write it (smartcity/db/queries/panels.py).
CALL = re.compile(
    r"smartcity_aggregate\('(?P<metric>\w+)', '\$__interval', '(?P<agg>\w+)',"
    r" \$__timeFrom\(\), \$__timeTo\(\),\s+(?P<devices>NULL|ARRAY\[\$\{device:sqlstring\}\]::text\[\]),"
    r" ARRAY\[\$\{district:sqlstring\}\]::text\[\],"
    r" '(?P<group_by>\w+)', '(?P<tz>[\w/]+)'\)")
# The panel shapes whose numbers are the planner's rows as they are (value × factor for a percentage).
PLAIN = re.compile(r'SELECT time AS "time", value(?: \* (?P<factor>[\d.]+) AS value)?, key AS metric\nFROM ')


@dataclass(frozen=True)
class Target:
    """One query of one panel, as the committed dashboard JSON holds it."""

    dashboard: dict[str, Any]
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.dashboard['uid']}/{self.panel['title']}/{self.target['refId']}"


def targets() -> list[Target]:
    found = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append(Target(board, panel, target))
    return found


TARGETS = targets()


def as_grafana(conn: psycopg.Connection) -> AbstractContextManager[psycopg.Connection]:
    """Run the block's statements with smartcity_grafana's rights (SET ROLE: privileges, not login)."""
    return as_role(conn, ROLE)


def run(conn: psycopg.Connection, text: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run expanded SQL with smartcity_grafana's rights; return column names and rows."""
    with as_grafana(conn):
        cursor = conn.execute(text.encode())  # bytes: psycopg must not read Grafana's text as a template
        return [c.name for c in cursor.description or []], cursor.fetchall()



# --- variables, as Grafana fills them ------------------------------------------------------------

def variable_for(conn: psycopg.Connection, definition: dict[str, Any], chosen: dict[str, Variable],
              selection: tuple[str, ...]) -> Variable:
    """Run a query variable's SQL (expanded with the variables before it) and select ``selection``."""
    text = expand(definition["query"], time_from=END - timedelta(hours=6), time_to=END,
                  variables=chosen.values(), max_data_points=100)
    columns, rows = run(conn, text)
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


def variables_for(conn: psycopg.Connection, board: dict[str, Any], selection: str) -> dict[str, Variable]:
    districts, devices = SELECTIONS[selection]
    chosen: dict[str, Variable] = {}
    for definition in board["templating"]["list"]:
        picked = {"district": districts, "device": devices}[definition["name"]]
        chosen[definition["name"]] = variable_for(conn, definition, chosen, picked)
    return chosen


def expand_target(target: Target, variables: dict[str, Variable], span: timedelta) -> str:
    return expand(target.target["rawSql"], time_from=END - span, time_to=END, variables=variables.values(),
                  max_data_points=target.panel["maxDataPoints"])



# --- the data, once per module (test modules import these fixtures by their function names) ----

@pytest.fixture(scope="module", name="history")
def history_fixture(postgres: EmbeddedPostgres) -> ScenarioData:
    """The demo fleet's ninety days, stored once for each module that uses it."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
    return scenario_data.load(postgres.url)


@pytest.fixture(scope="module", name="conn")
def conn_fixture(postgres: EmbeddedPostgres, history: ScenarioData) -> Iterator[psycopg.Connection]:
    """An autocommit connection for the module's queries."""
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        yield connection



# --- shapes -------------------------------------------------------------------------------------

def check_time_series(name: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
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


def fields_named(panel: dict[str, Any]) -> set[str]:
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


def check_table(target: Target, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    assert columns and len(columns) == len(set(columns)), f"{target.name}: columns {columns}"
    missing = fields_named(target.panel) - set(columns)
    assert not missing, f"{target.name}: the panel names fields the query lacks: {missing}"
    if target.panel["type"] == "stat" and rows:  # a stat shows numbers: every column must be one
        assert all(isinstance(v, int | float | type(None)) or hasattr(v, "is_finite")
                   for v in rows[0]), f"{target.name}: non-numeric stat {rows[0]}"



def rules() -> list[dict[str, Any]]:
    return [rule for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"]]


def rule(uid: str) -> dict[str, Any]:
    """The provisioned rule with this uid."""
    return next(r for r in rules() if r["uid"] == uid)


Labels = tuple[Any, ...]


def _query_values(conn: psycopg.Connection, query: dict[str, Any], at: datetime) -> dict[Labels, float]:
    window = timedelta(seconds=query["relativeTimeRange"]["from"] - query["relativeTimeRange"]["to"])
    model = query["model"]
    text = expand(model["rawSql"], time_from=at - window, time_to=at, max_data_points=model["maxDataPoints"],
                  min_interval=f"{model['intervalMs']}ms")
    columns, rows = run(conn, text)
    labels = [i for i, c in enumerate(columns) if c != "value"]
    value = columns.index("value")
    return {tuple(row[i] for i in labels): float(row[value]) for row in rows if row[value] is not None}


def evaluate(conn: psycopg.Connection, rule: dict[str, Any], at: datetime) -> dict[str, dict[Labels, float]]:
    """Evaluate a rule for the range ending ``at`` as Grafana does: each query's rows (labels → value),
    the math joined on equal labels, each threshold 1.0 (firing) or 0.0; by refId."""
    results: dict[str, dict[Labels, float]] = {}
    for part in rule["data"]:
        model = part["model"]
        if part["datasourceUid"] != "__expr__":
            results[part["refId"]] = _query_values(conn, part, at)
        elif model["type"] == "math":
            match = re.fullmatch(r"\$(\w+) - \$(\w+)", model["expression"])
            assert match is not None, model["expression"]
            left, right = results[match[1]], results[match[2]]
            results[part["refId"]] = {labels: left[labels] - right[labels]
                                      for labels in left if labels in right}
        else:
            assert model["type"] == "threshold"
            evaluator = model["conditions"][0]["evaluator"]
            above, level = evaluator["type"] == "gt", float(evaluator["params"][0])
            assert evaluator["type"] in ("gt", "lt")
            results[part["refId"]] = {
                labels: float(value > level if above else value < level)
                for labels, value in results[model["expression"]].items()}
    return results


def firing(conn: psycopg.Connection, rule: dict[str, Any], at: datetime) -> set[Labels]:
    """The labels of the rule's instances whose condition holds at ``at`` (before any pending period)."""
    return {labels for labels, value in evaluate(conn, rule, at)[rule["condition"]].items() if value}


def threshold(rule: dict[str, Any]) -> dict[str, Any]:
    """The condition's evaluator and recovery evaluator (None without hysteresis)."""
    condition = next(d for d in rule["data"] if d["refId"] == rule["condition"])
    (judged,) = condition["model"]["conditions"]
    return {"type": judged["evaluator"]["type"], "level": float(judged["evaluator"]["params"][0]),
            "recovery": None if "unloadEvaluator" not in judged
            else (judged["unloadEvaluator"]["type"], float(judged["unloadEvaluator"]["params"][0]))}
