"""`smartcity bench api`: requests/s and p50/p99 of the HTTP API under concurrent load, fleet running.

The run owns its stack (``smartcity.bench.stack``): it registers the demo fleet, stores 24 hours of its
history through the bulk path (``simulators.backfill``), then starts what `smartcity up` starts — an
ingest worker, the rollup refresher, the API and the simulated fleet publishing through MQTT — as
child processes. Once the API is healthy and live readings arrive, a lean load generator in this
process (``smartcity.bench.http_load``) drives N keep-alive clients first at ``latest`` (device ids
rotating over the fleet), then at a 24-hour hourly ``aggregates`` query grouped by device, and the
CPU time of every process is read from ``/proc`` around each load.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import orjson

from simulators.backfill import backfill
from simulators.fleet import DeviceSpec, demo_fleet
from smartcity.bench.api_report import ApiBenchResult, EndpointLoad
from smartcity.bench.cpu import machine_busy_seconds, process_tree_cpu_seconds
from smartcity.bench.http_load import LoadResult, run_load
from smartcity.bench.stack import BenchStack, bench_read_key, bench_services, used_database_refusal
from smartcity.db.connect import connect
from smartcity.db.queries import bench as bench_sql
from smartcity.launcher import migrate_database, register_fleet
from smartcity.services import free_port
from smartcity.settings import Settings
from smartcity.supervisor import ChildProcess

__all__ = ["AGGREGATE_METRIC", "ApiBenchConfig", "ApiBenchError", "run_api_bench"]

log = logging.getLogger(__name__)

AGGREGATE_METRIC = "pm25"
HISTORY = timedelta(hours=24)
API_WORKERS = 1  # `smartcity api` serves from one process: it meets the latest target (README)
HISTORY_INTERVAL_S = 300  # 5-minute history: a dozen readings per device and hour
_STARTUP_TIMEOUT_S = 60.0
_STDERR_FD = 2


class ApiBenchError(RuntimeError):
    """The benchmark could not be set up (a child exited, the API did not start, no live data…)."""


@dataclass(frozen=True, slots=True)
class ApiBenchConfig:
    """How long and how hard a run loads each endpoint."""

    seconds: float = 10.0  # of load per endpoint, after the warm-up
    concurrency: int = 50
    warmup_s: float = 1.0
    seed: int = 20261127

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.concurrency < 1 or self.warmup_s < 0:
            raise ValueError("seconds must be > 0, concurrency ≥ 1 and the warm-up ≥ 0")


def run_api_bench(config: ApiBenchConfig, settings: Settings) -> ApiBenchResult:
    """Run the API benchmark end to end and return its figures; everything started is stopped.

    Raises:
        ApiBenchError: a child process exited, the API did not start, or no live data arrived.
        ServiceError: an embedded service did not start.
    """
    specs = demo_fleet()
    with ExitStack() as stack:
        services = stack.enter_context(bench_services(settings))
        url = services.database_url
        migrate_database(url)
        if (refusal := used_database_refusal(url, (spec.device_id for spec in specs), "api")):
            raise ApiBenchError(refusal)
        register_fleet(url, specs)
        now = time.time()
        history = backfill(url, specs, config.seed, HISTORY.total_seconds(), HISTORY_INTERVAL_S,
                           end=now, progress=False)
        log.info("stored %d readings of history for %d devices", history.stored, len(specs))
        port = free_port()
        children = _start_platform(stack, services, port)
        _wait_until_ready(url, port, specs, children, since=datetime.fromtimestamp(now, UTC))

        latest_paths = [f"/api/v1/devices/{spec.device_id}/latest" for spec in specs]
        end = datetime.now(UTC)
        aggregate_path = "/api/v1/aggregates?" + urlencode({
            "metric": AGGREGATE_METRIC, "bucket": "1h", "agg": "avg", "group_by": "device",
            "start": (end - HISTORY).isoformat(), "end": end.isoformat()})
        headers = bench_read_key(url)
        _check_aggregate_has_points(port, aggregate_path, headers)
        pids = {name: child.pid for name, child in children.items()} | services.cpu_pids
        latest = _load(port, latest_paths, config, pids, headers)
        aggregates = _load(port, [aggregate_path], config, pids, headers)
        for name, child in children.items():
            if (status := child.exited()) is not None:
                raise ApiBenchError(f"{name} exited with status {status} during the run")
    return ApiBenchResult(latest=latest, aggregates_24h=aggregates, concurrency=config.concurrency,
                          api_workers=API_WORKERS, seconds=config.seconds,
                          devices=len(specs), history_readings=history.stored)


def _start_platform(stack: ExitStack, services: BenchStack, port: int) -> dict[str, ChildProcess]:
    """Start ingest, the refresher, the API and the fleet as `smartcity up` does; stop them at exit."""
    env = services.child_env(port)
    # The children's stdout goes to our stderr: the simulator prints its totals when it stops,
    # and our stdout carries only the result (--json).
    children = {
        "ingest": ChildProcess("ingest", ["ingest"], stdout=_STDERR_FD),
        "rollup": ChildProcess("rollup", ["rollup"], stdout=_STDERR_FD),
        "api": ChildProcess("api", ["api"], stdout=_STDERR_FD),
        "simulator": ChildProcess("simulator", ["simulate", "--demo"], stdout=_STDERR_FD),
    }
    for child in children.values():
        stack.callback(child.stop)  # unwound in reverse: the fleet stops first, as in `smartcity up`
        child.start(env)
    return children


def _wait_until_ready(url: str, port: int, specs: Sequence[DeviceSpec],
                      children: dict[str, ChildProcess], since: datetime) -> None:
    """Wait until the API reports a healthy database and the live fleet's readings are stored."""
    ids = [spec.device_id for spec in specs]

    def ready() -> bool:
        try:
            status, body = _get(port, "/api/v1/health")
        except (OSError, http.client.HTTPException):
            return False  # not listening yet
        if status != 200 or orjson.loads(body).get("database") != "ok":
            return False
        with connect(url, purpose="bench") as conn:
            row = conn.execute(bench_sql.COUNT_STORED_READINGS, (ids, since)).fetchone()
        return row is not None and row[0] > 0

    _wait_for(ready, children, "the API to be healthy and live readings of the fleet to be stored")


def _wait_for(condition: Callable[[], bool], children: dict[str, ChildProcess], what: str) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not condition():
        for name, child in children.items():
            if (status := child.exited()) is not None:
                raise ApiBenchError(f"{name} exited with status {status} while waiting for {what}")
        if time.monotonic() > deadline:
            raise ApiBenchError(f"timed out after {_STARTUP_TIMEOUT_S:.0f} s waiting for {what}")
        time.sleep(0.2)


def _get(port: int, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _check_aggregate_has_points(port: int, path: str, headers: Mapping[str, str]) -> None:
    """Fail unless the aggregate answers 200 with points: timing an empty answer proves nothing."""
    status, body = _get(port, path, headers)
    if status != 200:
        raise ApiBenchError(f"the aggregate query answered {status}: {body[:500]!r}")
    if not any(series["points"] for series in orjson.loads(body)["series"]):
        raise ApiBenchError("the 24-hour aggregate query returned no points")


def _load(port: int, paths: Sequence[str], config: ApiBenchConfig,
          pids: dict[str, int], headers: Mapping[str, str]) -> EndpointLoad:
    """Warm up, then load ``paths`` for the configured time; return its figures and CPU split."""
    if config.warmup_s > 0:
        run_load("127.0.0.1", port, paths, concurrency=config.concurrency, seconds=config.warmup_s,
                 headers=headers)
    before = {name: process_tree_cpu_seconds(pid) for name, pid in pids.items()}
    machine_before = machine_busy_seconds()
    result: LoadResult = run_load("127.0.0.1", port, paths, concurrency=config.concurrency,
                                  seconds=config.seconds, headers=headers)
    machine = machine_busy_seconds() - machine_before
    cores = {name: (process_tree_cpu_seconds(pid) - before[name]) / result.seconds
             for name, pid in pids.items()}
    cores["load_generator"] = result.generator_cpu_s / result.seconds
    # Every core's busy time, this run's or not: the other processes on the machine show here.
    cores["machine"] = machine / result.seconds
    log.info("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors", paths[0],
             result.requests_per_s, result.percentile_ms(50), result.percentile_ms(99), result.errors)
    return EndpointLoad(requests_per_s=result.requests_per_s, p50_ms=result.percentile_ms(50),
                        p99_ms=result.percentile_ms(99), errors=result.errors,
                        requests=len(result.latencies_ms), cpu_cores=cores,
                        error_samples=tuple(result.error_samples))
