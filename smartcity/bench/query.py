"""`smartcity bench query`: aggregates through the HTTP API over millions of readings, against raw SQL.

The run owns its stack (``smartcity.bench.stack``): it registers the demo fleet, loads N readings of
1-minute data ending now through the bulk path (``simulators.backfill``, which marks the hours it
stores for the rollups), refreshes the rollups, serves the API from a child process and times three
questions through HTTP, and the same three as plain ``time_bucket`` SQL over the raw rows. Then it
backfills more readings into the past and times the refresher's catch-up. Last, the panel phase
(``smartcity.bench.panels``): where the data spans less than ``panel_days``, it loads a coarser
15-minute history of the same fleet before it, refreshes, and times every dashboard panel over the
last ``panel_days`` as Grafana would send it.
"""

from __future__ import annotations

import http.client
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import numpy as np
import orjson
import psycopg

from simulators.backfill import backfill
from simulators.fleet import DeviceSpec, demo_fleet
from smartcity.bench.panels import PanelBenchError, load_dashboards, panel_queries, time_panels
from smartcity.bench.query_report import PanelTiming, QueryBenchResult, QueryTiming
from smartcity.bench.stack import BenchStack, bench_read_key, bench_services, used_database_refusal
from smartcity.catalog import DEVICE_KINDS, METRICS, SITES
from smartcity.db.connect import connect
from smartcity.db.queries import bench as bench_sql
from smartcity.launcher import migrate_database, register_fleet
from smartcity.services import free_port
from smartcity.settings import Settings
from smartcity.supervisor import ChildProcess

__all__ = ["QueryBenchConfig", "QueryBenchError", "run_query_bench"]

log = logging.getLogger(__name__)

INTERVAL_S = 60  # 1-minute data
RAW_RETENTION = timedelta(days=90)  # the default raw retention: the catch-up backfill stays inside it
# The panel phase's older history: 15-minute readings cost a fifteenth of the 1-minute load and
# still give every bucket a 90-day panel asks for (its $__interval is 3 h at 500 points) data.
PANEL_HISTORY_INTERVAL_S = 900
_STARTUP_TIMEOUT_S = 60.0
_REQUEST_TIMEOUT_S = 120.0
_T = TypeVar("_T")


class QueryBenchError(RuntimeError):
    """The benchmark could not be set up or run (the API did not start, a query failed…)."""


@dataclass(frozen=True, slots=True)
class QueryBenchConfig:
    """How big a run is."""

    readings: int = 10_000_000
    backfill_readings: int = 1_000_000  # loaded into the past, then the refresher's catch-up is timed
    runs: int = 50  # timed runs of each query, after the warm-up
    warmup: int = 5
    seed: int = 20261127
    panel_days: int = 90  # the dashboards' range in the panel phase; history is loaded to span it
    panel_runs: int = 10  # timed runs of each panel, after one warm-up run
    panel_every_device: bool = False  # device variables: All, instead of the first device

    def __post_init__(self) -> None:
        if min(self.readings, self.backfill_readings, self.runs, self.panel_runs) < 1 or self.warmup < 0:
            raise ValueError("readings, backfill readings, runs and panel runs must be ≥ 1, warm-up ≥ 0")
        if not 1 <= self.panel_days <= RAW_RETENTION.days:
            raise ValueError(f"panel days must be 1 to {RAW_RETENTION.days} (the raw retention),"
                             f" not {self.panel_days}")


@dataclass(frozen=True, slots=True)
class _Question:
    """One benchmark query: its API parameters and the raw SQL that answers it without rollups."""

    name: str
    params: dict[str, str]
    raw_sql: str
    raw_params: dict[str, Any]


def run_query_bench(config: QueryBenchConfig, settings: Settings, *,
                    progress: bool = True) -> QueryBenchResult:
    """Run the query benchmark end to end and return its figures; everything started is stopped.

    Raises:
        QueryBenchError: the API did not start or answered a query with an error.
        ServiceError: an embedded service did not start.
    """
    specs = demo_fleet()
    per_minute = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in specs)
    minutes = math.ceil(config.readings / per_minute)
    end = math.floor(time.time() / INTERVAL_S) * INTERVAL_S
    loaded_from = end - minutes * INTERVAL_S
    with ExitStack() as stack:
        services = stack.enter_context(bench_services(settings))
        url = services.database_url
        migrate_database(url)
        if (refusal := used_database_refusal(url, (spec.device_id for spec in specs), "query")):
            raise QueryBenchError(refusal)
        register_fleet(url, specs)
        log.info("loading %d minutes of the demo fleet (%d devices, %d readings a minute)",
                 minutes, len(specs), per_minute)
        started = time.monotonic()
        loaded = backfill(url, specs, config.seed, minutes * INTERVAL_S, INTERVAL_S, end=end,
                          progress=progress)
        load_s = time.monotonic() - started
        conn = stack.enter_context(connect(url, purpose="bench", autocommit=True))
        refresh_s = _refresh_until_done(conn)
        log.info("loaded %d readings in %.1f s; rollups refreshed in %.1f s", loaded.stored, load_s,
                 refresh_s)
        # Statistics, as autovacuum gathers them in a running deployment: both paths' plans depend on
        # them. (The raw site query took 39 ms on fresh, unanalysed chunks and 545 ms once analysed,
        # when PostgreSQL picks a different join: time the state a deployment is in.)
        conn.execute(bench_sql.ANALYZE_TABLES)

        questions = _questions(specs, datetime.now(UTC))
        api = _start_api(stack, services)
        headers = bench_read_key(url)
        queries = {q.name: _time_question(api, headers, conn, q, config) for q in questions}

        catchup_specs, into_past = _catchup_fleet(specs, config, per_minute, loaded_from)
        if not into_past:
            register_fleet(url, catchup_specs)
        catchup_minutes = math.ceil(config.backfill_readings / per_minute)
        catchup_end = loaded_from if into_past else end
        extra = backfill(url, catchup_specs, config.seed, catchup_minutes * INTERVAL_S, INTERVAL_S,
                         end=catchup_end, progress=progress)
        catchup_s = _refresh_until_done(conn)
        log.info("backfilled %d readings; the refresher caught up in %.2f s", extra.stored, catchup_s)

        earliest = catchup_end - catchup_minutes * INTERVAL_S if into_past else loaded_from
        history = _load_panel_history(url, specs, config, end, earliest, progress)
        if history:
            _refresh_until_done(conn)
            conn.execute(bench_sql.ANALYZE_TABLES)
        panels = _time_panels(url, stack, config)
    return QueryBenchResult(
        readings=loaded.stored, load_s=load_s, refresh_s=refresh_s, queries=queries,
        catchup_after_1m_backfill_s=catchup_s, backfill_readings=extra.stored,
        backfill_into_past=into_past, metric=str(questions[0].params["metric"]),
        device=str(questions[0].params["device"]), site=str(questions[2].params["site"]),
        fleet_devices=len(specs), span_days=minutes / 1440, runs=config.runs,
        panels=panels, panel_days=config.panel_days, panel_runs=config.panel_runs,
        panel_history_readings=history,
        panel_devices="all" if config.panel_every_device else "first",
    )


def _load_panel_history(url: str, specs: Sequence[DeviceSpec], config: QueryBenchConfig, end: float,
                        earliest: float, progress: bool) -> int:
    """Load 15-minute readings of ``specs`` from ``panel_days`` before ``end`` up to ``earliest``, the
    first reading already stored; return how many were stored (0 when the data spans enough already).

    The grid stops before ``earliest``, so no reading of the dense 1-minute data is touched.
    """
    span_s = earliest - (end - config.panel_days * 86400)
    if span_s < PANEL_HISTORY_INTERVAL_S:
        return 0
    log.info("loading %.1f days of 15-minute history so the panels span %d days",
             span_s / 86400, config.panel_days)
    loaded = backfill(url, specs, config.seed, span_s, PANEL_HISTORY_INTERVAL_S, end=earliest,
                      progress=progress)
    return loaded.stored


def _time_panels(url: str, stack: ExitStack, config: QueryBenchConfig) -> dict[str, PanelTiming]:
    """Time every dashboard panel over the last ``panel_days``, as smartcity_grafana.

    Raises:
        QueryBenchError: a dashboard could not be read or expanded, or a panel's SQL failed.
    """
    grafana = stack.enter_context(connect(url, purpose="bench-panels", autocommit=True))
    time_to = datetime.now(UTC)
    time_from = time_to - timedelta(days=config.panel_days)
    try:
        queries = panel_queries(grafana, load_dashboards(), time_from, time_to,
                                every_device=config.panel_every_device)
        timings = time_panels(grafana, queries, config.panel_runs, warmup=1)
    except PanelBenchError as err:
        raise QueryBenchError(f"panel phase: {err}") from None
    for name, t in timings.items():
        log.info("%s: %d rows, p50 %.2f ms p95 %.2f ms", name, t.rows, t.p50_ms, t.p95_ms)
    return timings


def _refresh_until_done(conn: psycopg.Connection[Any]) -> float:
    """Call the refresher until no mark is pending; return the seconds it took."""
    started = time.monotonic()
    deadline = started + 3600.0
    while True:
        row = conn.execute(bench_sql.REFRESH_ROLLUPS).fetchone()
        marks = None if row is None else row[0]
        if marks == 0:
            break
        if marks is None:  # another refresher holds the lock (a shared database): wait for it
            if time.monotonic() > deadline:
                raise QueryBenchError("another rollup refresher held the lock for an hour")
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    pending = conn.execute(bench_sql.COUNT_PENDING_MARKS).fetchone()
    if pending != (0,):
        raise QueryBenchError(f"{pending} rollup marks still pending after the refresh")
    return elapsed


def _questions(specs: Sequence[DeviceSpec], now: datetime) -> list[_Question]:
    """The three questions: for the metric most demo devices report, its busiest site, a device there.

    Ties go to catalogue order (metric, then site) and device id.
    """
    reported = Counter(m for spec in specs for m in DEVICE_KINDS[spec.kind].metrics)
    metric = max(METRICS, key=lambda name: reported[name])
    with_metric = [spec for spec in specs if metric in DEVICE_KINDS[spec.kind].metrics]
    per_site = Counter(spec.site_id for spec in with_metric)
    site = max(SITES, key=lambda name: per_site[name])
    device = min(spec.device_id for spec in with_metric if spec.site_id == site)
    day_ago, quarter_ago = now - timedelta(hours=24), now - timedelta(days=90)

    def ask(name: str, start: datetime, raw_sql: str, **params: str) -> _Question:
        api = {"metric": metric, "agg": "avg", "start": start.isoformat(), "end": now.isoformat(),
               **params}
        raw = {"metric": metric, "start": start, "end": now, "device": device, "site": site}
        return _Question(name, api, raw_sql, raw)

    return [
        ask("device_24h_1m", day_ago, bench_sql.RAW_DEVICE_MINUTES, bucket="1m", device=device),
        ask("fleet_24h_1h", day_ago, bench_sql.RAW_FLEET_HOURS, bucket="1h", group_by="device"),
        ask("site_90d_1d", quarter_ago, bench_sql.RAW_SITE_DAYS, bucket="1d", site=site,
            group_by="site"),
    ]


def _catchup_fleet(specs: list[DeviceSpec], config: QueryBenchConfig, per_minute: int,
                   loaded_from: float) -> tuple[list[DeviceSpec], bool]:
    """The devices to backfill for the catch-up, and whether it goes into their past.

    Before the loaded history when that stays within raw retention (older readings would be
    dropped by it, and the refresher skips hours past its horizon); else new devices, ending now.
    """
    span_s = math.ceil(config.backfill_readings / per_minute) * INTERVAL_S
    if time.time() - (loaded_from - span_s) <= RAW_RETENTION.total_seconds() - 3600:
        return specs, True
    return [replace(spec, device_id=f"{spec.device_id}-late") for spec in specs], False


def _start_api(stack: ExitStack, services: BenchStack) -> http.client.HTTPConnection:
    """Serve the API from a child process on a free port; return a keep-alive connection to it."""
    port = free_port()
    env = services.child_env(port)
    child = ChildProcess("api", ["api"])
    stack.callback(child.stop)
    child.start(env)
    api = http.client.HTTPConnection("127.0.0.1", port, timeout=_REQUEST_TIMEOUT_S)
    stack.callback(api.close)
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while True:
        if (status := child.exited()) is not None:
            raise QueryBenchError(f"the API exited with status {status}")
        try:
            health_status, body = _get(api, "/api/v1/health")
            if orjson.loads(body).get("database") == "ok":
                return api
        except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
            api.close()  # not listening yet: the next request reconnects
        if time.monotonic() > deadline:
            raise QueryBenchError(f"the API did not answer within {_STARTUP_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def _get(api: http.client.HTTPConnection, path: str,
         headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    api.request("GET", path, headers=dict(headers or {}))
    response = api.getresponse()
    return response.status, response.read()


def _time_question(api: http.client.HTTPConnection, headers: Mapping[str, str],
                   conn: psycopg.Connection[Any],
                   question: _Question, config: QueryBenchConfig) -> QueryTiming:
    """Time ``question`` through the API and as raw SQL; check both answer with data."""
    path = "/api/v1/aggregates?" + urlencode(question.params, doseq=True)

    def through_api() -> list[tuple[Any, ...]]:
        status, body = _get(api, path, headers)
        if status != 200:
            raise QueryBenchError(f"{question.name}: the API answered {status}: {body[:500]!r}")
        return [(s["key"], datetime.fromisoformat(p["time"]), p["value"], p["count"])
                for s in orjson.loads(body)["series"] for p in s["points"]]

    def raw() -> list[tuple[Any, ...]]:
        return conn.execute(question.raw_sql, question.raw_params).fetchall()

    api_rows, api_ms = _timed(through_api, config)
    raw_rows, raw_ms = _timed(raw, config)
    _check_same(question.name, api_rows, raw_rows)
    p50, p95 = np.percentile(api_ms, [50, 95])
    log.info("%s: %d points, API p50 %.2f ms p95 %.2f ms, raw p95 %.2f ms", question.name,
             len(api_rows), p50, p95, np.percentile(raw_ms, 95))
    return QueryTiming(float(p50), float(p95), float(np.percentile(raw_ms, 95)))


def _check_same(name: str, api_rows: list[tuple[Any, ...]], raw_rows: list[tuple[Any, ...]]) -> None:
    """Fail unless the API's points are the raw SQL's buckets: same keys, times and counts, equal means.

    A fast answer that is wrong is no result: the rollups must give what the raw rows give.
    """
    if not api_rows:
        raise QueryBenchError(f"{name}: the API returned no points")
    same = len(api_rows) == len(raw_rows) and all(
        (a[0], a[1], a[3]) == (r[0], r[1], r[3])
        and math.isclose(a[2], r[2], rel_tol=1e-9, abs_tol=1e-9)
        for a, r in zip(api_rows, raw_rows, strict=False))
    if not same:
        raise QueryBenchError(f"{name}: the API's {len(api_rows)} points differ from the raw SQL's"
                              f" {len(raw_rows)} buckets, e.g. {api_rows[:1]} against {raw_rows[:1]}")


def _timed(call: Callable[[], _T], config: QueryBenchConfig) -> tuple[_T, list[float]]:
    """Run ``call`` for the warm-up, then ``runs`` times; return its last result and each time in ms."""
    result = call()  # the warm-up is at least this one run, so there is always a result
    for _ in range(config.warmup - 1):
        result = call()
    times = []
    for _ in range(config.runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000.0)
    return result, times
