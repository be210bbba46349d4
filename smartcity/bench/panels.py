"""The dashboards' panel queries, expanded as Grafana sends them and timed: `bench query`'s panel phase.

Every target of every panel in the committed dashboard JSON (dashboards/json/) is expanded with
``dashboards.macros.expand`` for one time range and the panel's ``maxDataPoints``, with every district
selected (All) and the first device for device variables, whose options come from running each
variable's own query, as Grafana does. The queries run with the rights of the read-only role Grafana
logs in as (``SET ROLE smartcity_grafana``: the role itself is NOLOGIN, see README "Grafana").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg

import dashboards
from dashboards.macros import ALL, MacroError, Variable, expand
from smartcity.bench.query_report import PanelTiming
from smartcity.db.queries import bench as bench_sql

__all__ = [
    "DASHBOARD_DIR",
    "DATASOURCE_MIN_INTERVAL",
    "PanelBenchError",
    "PanelQuery",
    "load_dashboards",
    "panel_queries",
    "time_panels",
]

DASHBOARD_DIR = Path(dashboards.__file__).resolve().parent / "json"
DATASOURCE_MIN_INTERVAL = "1m"  # the provisioned data source's timeInterval (dashboards/provision.py)
_VARIABLE_MAX_DATA_POINTS = 100  # a variable query has no panel; expand() needs a value all the same


class PanelBenchError(RuntimeError):
    """A dashboard could not be read, expanded or run as Grafana would run it."""


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One panel, named ``<dashboard file stem>/<panel title>``, and its targets' SQL as Grafana sends it."""

    name: str
    sql: tuple[str, ...]


def load_dashboards(directory: Path = DASHBOARD_DIR) -> dict[str, dict[str, Any]]:
    """Return every ``*.json`` dashboard in ``directory`` by file stem, in name order.

    Raises:
        PanelBenchError: there is none, or one is not a JSON object with panels.
    """
    boards: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            board = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as err:
            raise PanelBenchError(f"{path}: not JSON ({err})") from None
        if not isinstance(board, dict) or not isinstance(board.get("panels"), list):
            raise PanelBenchError(f"{path}: not a dashboard (no panels list)")
        boards[path.stem] = board
    if not boards:
        raise PanelBenchError(f"no dashboard JSON in {directory}")
    return boards


def panel_queries(conn: psycopg.Connection[Any], boards: Mapping[str, Mapping[str, Any]],
                  time_from: datetime, time_to: datetime, *,
                  every_device: bool = False) -> list[PanelQuery]:
    """Expand every visible target of every panel of ``boards`` for the range ``time_from``–``time_to``.

    Every district is selected (All); device variables get their first option, or All with
    ``every_device`` (as the dashboards open). ``conn`` answers the variables' queries, as
    Grafana's role so the options are what Grafana would see.

    Raises:
        PanelBenchError: a panel without SQL targets or ``maxDataPoints``, a duplicate panel title,
            a variable with no options, or SQL that does not expand (the ``MacroError`` named).
    """
    queries: list[PanelQuery] = []
    for stem, board in boards.items():
        variables = _variables(conn, stem, board, time_from, time_to, every_device)
        seen: set[str] = set()
        for panel in _panels(board.get("panels", [])):
            name = f"{stem}/{panel.get('title', '')}"
            if name in seen:
                raise PanelBenchError(f"{name}: two panels have this title; the report names panels by it")
            seen.add(name)
            points = panel.get("maxDataPoints")
            if isinstance(points, bool) or not isinstance(points, int) or points < 1:
                raise PanelBenchError(f"{name}: no positive maxDataPoints, so $__interval is undefined")
            targets = [t for t in panel.get("targets", []) if not t.get("hide")]
            if not targets or not all(isinstance(t.get("rawSql"), str) for t in targets):
                raise PanelBenchError(f"{name}: every visible target must carry rawSql")
            try:
                sql = tuple(expand(t["rawSql"], time_from=time_from, time_to=time_to,
                                   variables=variables, max_data_points=points,
                                   min_interval=panel.get("interval") or DATASOURCE_MIN_INTERVAL)
                            for t in targets)
            except MacroError as err:
                raise PanelBenchError(f"{name}: {err}") from None
            queries.append(PanelQuery(name, sql))
    return queries


def time_panels(conn: psycopg.Connection[Any], queries: Sequence[PanelQuery], runs: int,
                warmup: int) -> dict[str, PanelTiming]:
    """Run each panel ``warmup`` times untimed (at least once), then ``runs`` times timed.

    Raises:
        PanelBenchError: a panel's SQL failed in the database (the panel and error named).
    """
    timings: dict[str, PanelTiming] = {}
    for query in queries:
        rows = _run(conn, query)
        for _ in range(warmup - 1):
            _run(conn, query)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            rows = _run(conn, query)
            times.append((time.perf_counter() - started) * 1000.0)
        p50, p95 = np.percentile(times, [50, 95])
        timings[query.name] = PanelTiming(float(p50), float(p95), rows)
    return timings


def _run(conn: psycopg.Connection[Any], query: PanelQuery) -> int:
    """Run a panel's targets one after the other as Grafana's role; return the rows they returned."""
    rows = 0
    try:
        conn.execute(bench_sql.SET_GRAFANA_ROLE)
        for sql in query.sql:
            rows += len(conn.execute(sql).fetchall())
    except psycopg.Error as err:
        raise PanelBenchError(f"{query.name}: the database refused its SQL: {err}") from None
    finally:
        if not conn.closed and not conn.broken:
            conn.execute(bench_sql.RESET_ROLE)
    return rows


def _panels(nodes: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The dashboard's panels with queries, rows opened (a collapsed row keeps its panels inside)."""
    found: list[Mapping[str, Any]] = []
    for node in nodes:
        if node.get("type") == "row":
            found += _panels(node.get("panels", []))
        else:
            found.append(node)
    return found


def _variables(conn: psycopg.Connection[Any], stem: str, board: Mapping[str, Any],
               time_from: datetime, time_to: datetime, every_device: bool) -> list[Variable]:
    """The board's template variables with the options their queries give, in order (a later query
    may use an earlier variable, as the device list uses the district); All where a variable has
    it, except the first device unless ``every_device``."""
    variables: list[Variable] = []
    for spec in board.get("templating", {}).get("list", []):
        name = spec.get("name", "")
        if spec.get("type") != "query" or not isinstance(spec.get("query"), str):
            raise PanelBenchError(f"{stem}: variable {name!r} is not a SQL query variable; the bench"
                                  " knows only those")
        try:
            sql = expand(spec["query"], time_from=time_from, time_to=time_to, variables=variables,
                         max_data_points=_VARIABLE_MAX_DATA_POINTS)
            conn.execute(bench_sql.SET_GRAFANA_ROLE)
            try:
                cursor = conn.execute(sql)
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall()
            finally:
                conn.execute(bench_sql.RESET_ROLE)
            # Grafana takes __value (else the first column) as the value, as in the district list.
            at = columns.index("__value") if "__value" in columns else 0
            values = tuple(dict.fromkeys(str(row[at]) for row in rows if row[at] is not None))
            if not values:
                raise PanelBenchError(f"{stem}: variable {name!r} has no options in the database")
            variable = Variable(name, values, multi=bool(spec.get("multi")),
                                include_all=bool(spec.get("includeAll")),
                                all_value=spec.get("allValue") or None)
            first_only = name == "device" and not every_device
            chosen = variable.select(ALL) if variable.include_all and not first_only else variable
            variables.append(chosen)
        except MacroError as err:
            raise PanelBenchError(f"{stem}: variable {name!r}: {err}") from None
        except psycopg.Error as err:
            raise PanelBenchError(f"{stem}: variable {name!r}: the database refused its query: {err}") \
                from None
    return variables
