"""`smartcity bench ingest`: push N weather-station messages through MQTT into ingest workers, measure.

The run owns its stack: a private PostgreSQL and Mosquitto in a temporary directory (unless
``SMARTCITY_DATABASE_URL`` / ``SMARTCITY_MQTT_URL`` name external ones), W `smartcity ingest`
children sharing a subscription group of this run only, and P publisher processes. Progress and
completion come from the workers' Prometheus counters; the stored count from the database itself.
With ``auth`` (the default, as the platform runs) the broker takes logins only: each worker logs in
with its own ``ingest`` account and each publisher connection with its own ``gateway`` account.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from simulators.fleet import DeviceSpec
from smartcity.bench.cpu import process_tree_cpu_seconds
from smartcity.bench.logins import BenchLogins, create_bench_logins, revoke_bench_logins
from smartcity.bench.prometheus import MetricsSnapshot, merge_snapshots, scrape
from smartcity.bench.publisher import Client, PublisherJob, PublisherReport, publish_once, run_publisher
from smartcity.bench.report import IngestBenchResult
from smartcity.bench.stack import BenchStack, bench_services
from smartcity.broker_url import BrokerAddress, parse_broker_url
from smartcity.catalog import DEVICE_KINDS, SITES
from smartcity.contract import status_topic
from smartcity.db.connect import connect
from smartcity.db.queries import bench as bench_sql
from smartcity.launcher import migrate_database, register_fleet
from smartcity.services import free_port
from smartcity.settings import Settings
from smartcity.supervisor import ChildProcess

__all__ = ["BenchError", "IngestBenchConfig", "bench_devices", "run_ingest_bench"]

log = logging.getLogger(__name__)

KIND = "weather_station"
READINGS_PER_MESSAGE = len(DEVICE_KINDS[KIND].metrics)
_STORED = "smartcity_ingest_readings_stored_total"
_DUPLICATE = "smartcity_ingest_readings_duplicate_total"
_QUARANTINED = "smartcity_ingest_quarantined_total"
_STATUS_MESSAGES = "smartcity_ingest_messages_total"
_DELAY = "smartcity_ingest_reading_delay_seconds"
_STARTUP_TIMEOUT_S = 60.0
_SETTLE_S = 2.0  # duplicates can stand in for missing readings only if nothing moves for this long


class BenchError(RuntimeError):
    """The benchmark could not be set up or run (a worker died, a service did not start…)."""


@dataclass(frozen=True, slots=True)
class IngestBenchConfig:
    """How big a run is and how it is shaped."""

    messages: int = 300_000
    rate: float = 0.0  # total messages per second over all publishers; 0: as fast as possible
    publishers: int = 2
    workers: int = 1
    devices: int = 200
    qos: int = 1
    timeout: float = 600.0  # seconds from the first publish
    max_inflight: int = 1000  # per publisher; the embedded Mosquitto allows 1000
    client: Client = "raw"  # the lean publisher of smartcity.bench.wire; "paho" costs ~10x the CPU
    auth: bool = True  # the broker takes the registry's logins and ACLs, as the platform runs it

    def __post_init__(self) -> None:
        if min(self.messages, self.publishers, self.workers, self.devices, self.max_inflight) < 1:
            raise ValueError("messages, publishers, workers, devices and max_inflight must be ≥ 1")
        if self.devices < self.publishers:
            raise ValueError(f"need at least one device per publisher ({self.publishers}), "
                             f"got {self.devices}")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, not {self.qos}")
        if self.client not in ("paho", "raw"):
            raise ValueError(f"client must be paho or raw, not {self.client!r}")
        if self.rate < 0 or self.timeout <= 0:
            raise ValueError("rate must be ≥ 0 and timeout > 0")


def bench_devices(count: int) -> list[DeviceSpec]:
    """Return ``count`` weather stations ``bench-0001``… spread over the sites."""
    sites = list(SITES.values())
    width = max(4, len(str(count)))
    return [DeviceSpec(f"bench-{n:0{width}d}", KIND, site.id, site.latitude, site.longitude)
            for n, site in ((n, sites[(n - 1) % len(sites)]) for n in range(1, count + 1))]


@dataclass(frozen=True)
class _Worker:
    child: ChildProcess
    metrics_port: int

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def _broker(services: BenchStack) -> BrokerAddress:
    return parse_broker_url(services.mqtt_url, services.mqtt_ca_file)


def _start_workers(stack: ExitStack, services: BenchStack, count: int, run_id: str,
                   logins: BenchLogins | None) -> list[_Worker]:
    """Start ``count`` ingest workers in one share group of this run; return them with metrics ports."""
    workers: list[_Worker] = []
    ports: set[int] = set()
    for n in range(1, count + 1):
        while (port := free_port()) in ports:
            pass
        ports.add(port)
        env = {
            **{k: v for k, v in os.environ.items() if k != "SMARTCITY_MQTT_CA_FILE"},
            "SMARTCITY_DATABASE_URL": services.database_url,
            "SMARTCITY_MQTT_URL": services.mqtt_url,
            "SMARTCITY_INGEST__CLIENT_ID": f"bench-{run_id}-ingest-{n}",
            "SMARTCITY_INGEST__SHARE_GROUP": f"bench-{run_id}",
            "SMARTCITY_INGEST__METRICS_HOST": "127.0.0.1",
            "SMARTCITY_INGEST__METRICS_PORT": str(port),
            # The run's sessions must not outlive it: on a shared broker they would queue real telemetry.
            "SMARTCITY_INGEST__SESSION_EXPIRY_S": "0",
            "SMARTCITY_LOG_LEVEL": os.environ.get("SMARTCITY_LOG_LEVEL", "WARNING"),
        }
        if services.mqtt_ca_file is not None:
            env["SMARTCITY_MQTT_CA_FILE"] = str(services.mqtt_ca_file)
        if logins is not None:
            env["SMARTCITY_INGEST__MQTT_URL"] = logins.workers[n - 1].url(_broker(services))
        child = ChildProcess(f"ingest-{n}", ["ingest"])
        stack.callback(child.stop)
        child.start(env)
        workers.append(_Worker(child, port))
    return workers


def _scrape_workers(workers: list[_Worker]) -> MetricsSnapshot | None:
    try:
        return merge_snapshots(scrape(w.metrics_url) for w in workers)
    except OSError:
        return None


def _check_alive(workers: list[_Worker]) -> None:
    for worker in workers:
        if (status := worker.child.exited()) is not None:
            raise BenchError(f"{worker.child.name} exited with status {status}")


def _wait_subscribed(workers: list[_Worker], probe: BrokerAddress, probe_device: str) -> None:
    """Wait until every worker is connected and its subscriptions are live.

    Status topics are not shared, and each worker subscribes to them right after the (shared)
    device topics on the same connection, which the broker handles in order, so once every worker
    has stored an ``online`` status, none of the run's telemetry can reach the broker before the
    share group exists (it would be dropped unseen).
    """
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    next_probe = 0.0
    while time.monotonic() < deadline:
        _check_alive(workers)
        snaps = [_scrape_workers([w]) for w in workers]
        if all(s is not None and s.value("smartcity_ingest_broker_connected") == 1.0 for s in snaps):
            if all(s is not None and s.value(_STATUS_MESSAGES, channel="status") >= 1 for s in snaps):
                return
            if time.monotonic() >= next_probe:
                publish_once(probe, status_topic(probe_device), b"online")
                next_probe = time.monotonic() + 1.0
        time.sleep(0.1)
    raise BenchError(f"ingest workers not subscribed within {_STARTUP_TIMEOUT_S:.0f} s")


def _count_stored(url: str, device_ids: list[str], since: datetime) -> int:
    with connect(url, purpose="bench") as conn:
        row = conn.execute(bench_sql.COUNT_STORED_READINGS, (device_ids, since)).fetchone()
    return int(row[0]) if row else 0


def run_ingest_bench(config: IngestBenchConfig, settings: Settings, *,
                     progress: bool = True) -> IngestBenchResult:
    """Run the ingest benchmark end to end and return its figures; everything started is stopped.

    Raises:
        BenchError: setup failed, a worker died, or a publisher could not connect.
        ServiceError: an embedded service did not start.
    """
    run_id = secrets.token_hex(4)
    devices = bench_devices(config.devices)
    device_ids = [d.device_id for d in devices]
    made: list[BenchLogins] = []

    def prepare(url: str) -> None:
        log.info("bench %s: database ready; migrating", run_id)
        migrate_database(url)
        register_fleet(url, devices)
        if config.auth:
            # A database of the run's own has no accounts yet: the platform's names. Elsewhere the
            # run's names keep it off real accounts, and they are revoked when it ends.
            own = settings.uses_embedded_database
            with connect(url, purpose="bench", autocommit=True) as conn:
                made.append(create_bench_logins(conn, config.workers, config.publishers,
                                                "smartcity-" if own else f"smartcity-bench-{run_id}-"))
            if not own:
                stack.callback(_revoke, url, made[0])

    with ExitStack() as stack:
        try:
            services = stack.enter_context(bench_services(settings, prepare, broker_auth=config.auth))
        except ValueError as err:
            raise BenchError(str(err)) from None
        logins = made[0] if made else None
        broker = _broker(services)
        log.info("bench %s: broker at %s ready (logins %s)", run_id, broker, "on" if logins else "off")
        workers = _start_workers(stack, services, config.workers, run_id, logins)
        _wait_subscribed(workers, logins.probe.at(broker) if logins else broker, device_ids[0])
        ctx = multiprocessing.get_context("spawn")
        go, halt, reports = ctx.Event(), ctx.Event(), ctx.Queue()
        processes = []
        for n in range(config.publishers):
            share = config.messages // config.publishers + (n < config.messages % config.publishers)
            job = PublisherJob(n, logins.publishers[n].at(broker) if logins else broker,
                               f"bench-{run_id}-pub-{n + 1}",
                               tuple(device_ids[n::config.publishers]), share,
                               config.rate / config.publishers, config.qos, config.max_inflight,
                               config.client)
            process = ctx.Process(target=run_publisher, args=(job, go, halt, reports),
                                  name=f"publisher-{n + 1}")
            process.start()
            processes.append(process)
        stack.callback(_stop_publishers, processes)
        _wait_ready(reports, config.publishers)
        log.info("bench %s: %d worker(s) subscribed, %d publisher(s) connected; publishing %d messages",
                 run_id, config.workers, config.publishers, config.messages)
        since = datetime.now(UTC).replace(microsecond=0)
        cpu_before = _cpu_sample(services, workers)
        go.set()
        go_at = time.time()
        done, final, timed_out, completed_at = _watch(config, workers, processes, reports, progress)
        if timed_out:
            halt.set()
            done += _collect_reports(reports, config.publishers - len(done))
        cpu_after = _cpu_sample(services, workers)
        stored = _count_stored(services.database_url, device_ids, since)
    published = sum(r.published for r in done)
    first = min((r.first_publish for r in done if r.published), default=go_at)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    cpu["publishers"] = sum(r.cpu_seconds for r in done)
    delay = final.histogram(_DELAY)
    quantiles = {q: delay.quantile(q) for q in (0.5, 0.95, 0.99)}
    return IngestBenchResult(
        config=asdict(config),
        embedded_database=settings.uses_embedded_database,
        embedded_broker=settings.uses_embedded_broker,
        messages_published=published,
        readings_published=published * READINGS_PER_MESSAGE,
        readings_stored=stored,
        duplicates_counted=int(final.value(_DUPLICATE)),
        quarantined=int(final.value(_QUARANTINED)),
        wall_seconds=max(completed_at - first, 1e-9),
        publish_seconds=max((max((r.last_publish for r in done), default=first) - first), 1e-9),
        latency_observations=int(delay.count),
        latency_p50=None if math.isnan(quantiles[0.5]) else quantiles[0.5],
        latency_p95=None if math.isnan(quantiles[0.95]) else quantiles[0.95],
        latency_p99=None if math.isnan(quantiles[0.99]) else quantiles[0.99],
        publish_window=min((r.window for r in done), default=0),
        cpu_seconds=cpu,
        timed_out=timed_out,
        errors=[r.error for r in done if r.error]
        + ([f"{config.publishers - len(done)} publisher(s) never reported"] if len(done) < config.publishers
           else []),
    )


def _revoke(url: str, logins: BenchLogins) -> None:
    with connect(url, purpose="bench", autocommit=True) as conn:
        revoke_bench_logins(conn, logins)


def _collect_reports(reports: Any, count: int) -> list[PublisherReport]:
    """Collect up to ``count`` final reports from publishers told to halt."""
    collected: list[PublisherReport] = []
    deadline = time.monotonic() + 10.0
    while len(collected) < count and (left := deadline - time.monotonic()) > 0:
        try:
            kind, payload = reports.get(timeout=left)
        except queue.Empty:
            break
        if kind == "done":
            collected.append(payload)
    return collected


def _wait_ready(reports: Any, count: int) -> None:
    """Wait until every publisher is connected and waiting for the start."""
    ready = 0
    while ready < count:
        try:
            kind, payload = reports.get(timeout=_STARTUP_TIMEOUT_S)
        except queue.Empty:
            raise BenchError(f"publishers not connected within {_STARTUP_TIMEOUT_S:.0f} s") from None
        if kind == "done":
            raise BenchError(payload.error or "a publisher stopped before publishing")
        ready += 1


def _watch(config: IngestBenchConfig, workers: list[_Worker], processes: list[Any],
           reports: Any, progress: bool) -> tuple[list[PublisherReport], MetricsSnapshot, bool, float]:
    """Follow the run until every published reading is accounted for or the timeout passes."""
    expected = config.messages * READINGS_PER_MESSAGE
    done: list[PublisherReport] = []
    unreported_since: float | None = None
    deadline = time.monotonic() + config.timeout
    last = MetricsSnapshot(())
    last_change, last_stored = time.monotonic(), -1.0
    previous, previous_at, target, fast = 0.0, time.monotonic(), float(expected), False
    bar = tqdm(total=expected, unit="readings", unit_scale=True, desc="stored", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        while True:
            while True:
                try:
                    kind, payload = reports.get_nowait()
                except queue.Empty:
                    break
                if kind == "done":
                    done.append(payload)
            _check_alive(workers)
            if (snap := _scrape_workers(workers)) is not None:
                last = snap
            stored, duplicate = last.value(_STORED), last.value(_DUPLICATE)
            bar.update(int(stored) - bar.n)
            now = time.monotonic()
            if stored != last_stored:
                last_change, last_stored = now, stored
            finished = len(done) == config.publishers
            if finished:
                target = sum(r.published for r in done) * READINGS_PER_MESSAGE
                if stored >= target or (stored + duplicate >= target and now - last_change > _SETTLE_S):
                    return done, last, False, time.time()
            elif len(done) < sum(p.exitcode is not None for p in processes):
                # A report may still be in the pipe when its process has just exited.
                unreported_since = unreported_since or now
                if now - unreported_since > _SETTLE_S:
                    raise BenchError("a publisher process died without reporting")
            if now > deadline:
                log.error("timed out after %.0f s with %d readings stored", config.timeout, stored)
                return done, last, True, time.time()
            # Scrape ~4×/s for the bar; 20×/s in the last half second of work, as the last
            # commit's time is taken from the scrape that first sees everything stored.
            rate = (stored - previous) / max(now - previous_at, 1e-3)
            previous, previous_at = stored, now
            fast = fast or (finished and target - stored - duplicate <= rate * 0.5)
            time.sleep(0.05 if fast else 0.25)
    finally:
        bar.close()


def _cpu_sample(services: BenchStack, workers: list[_Worker]) -> dict[str, float]:
    sample = {name: process_tree_cpu_seconds(pid) for name, pid in services.cpu_pids.items()}
    sample["ingest workers"] = sum(process_tree_cpu_seconds(w.child.process.pid)
                                   for w in workers if w.child.process)
    sample["bench"] = time.process_time()
    return sample


def _stop_publishers(processes: list[Any]) -> None:
    """Join publishers that are finishing; terminate any still sending (a timeout, Ctrl-C)."""
    deadline = time.monotonic() + 2.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.terminate()
            process.join(5)
