"""`smartcity bench alerts`: the alert evaluator over a large fleet — a steady-state cycle and catch-up.

The run owns its stack (``smartcity.bench.stack``): it registers ``devices`` devices of the demo
kinds, stores ``hours`` of 1-minute readings ending a few minutes after now through the bulk path
(``simulators.backfill``: COPY), refreshes the rollups, and loads 20 rules of every kind. Then:

* catch-up: each rule's ``evaluated_through`` is set ``catch_up_hours`` back (with the rule's own
  definition hash, so nothing starts over) and one cycle judges every missed minute — the time per
  hour judged is what a restart after an outage costs;
* steady state: ``cycles`` cycles, the clock one minute further each time (one new minute per rule,
  as the service does every ``interval_s``), each timed; median and p95.

No broker and no webhooks: the figure is the judging (reads, lifecycle, the transaction).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from simulators.backfill import backfill
from simulators.fleet import build_fleet
from smartcity.alerts.rules import RuleFile
from smartcity.alerts.service import AlertService
from smartcity.alerts.store import definition_hash, floor_to
from smartcity.bench.stack import bench_services, used_database_refusal
from smartcity.catalog import DEVICE_KINDS
from smartcity.db.queries.alerts import BACKDATE_DEVICES, COUNT_TRANSITIONS, UPSERT_PROGRESS
from smartcity.db.queries.bench import ANALYZE_TABLES
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from smartcity.launcher import migrate_database, register_fleet
from smartcity.settings import Settings
from smartcity.settings.alerts import AlertsSettings

__all__ = ["AlertBenchConfig", "AlertBenchError", "AlertBenchResult", "bench_rules", "run_alert_bench"]

log = logging.getLogger(__name__)


class AlertBenchError(RuntimeError):
    """The benchmark could not be set up or run (the database was used, a rule failed…)."""


@dataclass(frozen=True, slots=True)
class AlertBenchConfig:
    """How big a run is."""

    devices: int = 3000
    hours: float = 6.0  # of 1-minute readings stored
    catch_up_hours: float = 3.0
    cycles: int = 10
    seed: int = 20261130

    def __post_init__(self) -> None:
        if self.devices < 1 or self.cycles < 1 or not 0 < self.catch_up_hours <= self.hours:
            raise ValueError("devices and cycles must be ≥ 1, and 0 < catch-up hours ≤ hours")


@dataclass(frozen=True, slots=True)
class AlertBenchResult:
    """The figures of one run."""

    devices: int
    rules: int
    readings: int
    load_s: float
    catch_up_hours: float
    catch_up_s: float
    catch_up_s_per_hour: float
    cycle_median_s: float
    cycle_p95_s: float
    cycles: int
    transitions: int
    slowest_rules: dict[str, float]  # the five rules with the longest median steady-state judging, s

    def to_dict(self) -> dict[str, Any]:
        """The figures as plain JSON-ready values."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def to_text(self) -> str:
        """The figures as a few lines for a terminal."""
        return (f"{self.devices} devices, {self.rules} rules, {self.readings:,} readings stored"
                f" in {self.load_s:.1f} s\n"
                f"catch-up: {self.catch_up_hours:g} h judged in {self.catch_up_s:.2f} s"
                f" ({self.catch_up_s_per_hour:.2f} s per hour judged)\n"
                f"steady state: {self.cycles} cycles, median {self.cycle_median_s * 1000:.0f} ms,"
                f" p95 {self.cycle_p95_s * 1000:.0f} ms per cycle (every rule, one new minute)\n"
                f"transitions stored: {self.transitions}; slowest rules (median s): "
                + ", ".join(f"{rule_id} {s:.3f}" for rule_id, s in self.slowest_rules.items()))


def bench_rules() -> RuleFile:
    """Twenty rules over the demo kinds: every kind of rule, minute and hourly windows, both scopes."""
    def threshold(rule_id: str, metric: str, window: str, value: float, **extra: Any) -> dict[str, Any]:
        return {"id": rule_id, "kind": "threshold", "title": rule_id, "metric": metric, "window": window,
                "value": value, **extra}
    rules = [
        threshold("pm25-1h", "pm25", "1h", 100.0),
        threshold("pm25-24h-site", "pm25", "24h", 55.4, scope="site", min_coverage=0.75),
        threshold("pm10-24h", "pm10", "24h", 150.0, min_coverage=0.75),
        threshold("co-1h", "co", "1h", 10000.0),
        threshold("no2-1h-max", "no2", "1h", 400.0, aggregate="max"),
        threshold("o3-1h", "o3", "1h", 235.0),
        threshold("so2-1h", "so2", "1h", 350.0),
        threshold("heat-10m", "temperature", "10m", 38.0, **{"for": "10m"}),
        threshold("wind-10m-max", "wind_speed", "10m", 20.0, aggregate="max"),
        threshold("rain-1h", "rainfall", "1h", 50.0, aggregate="sum"),
        threshold("river-waspada", "water_level", "10m", 3.0, hysteresis=0.1, **{"for": "10m"},
                  clear_for="30m"),
        {"id": "river-rising", "kind": "rate_of_rise", "title": "river rising", "metric": "water_level",
         "window": "1h", "per_hour": 0.2},
        threshold("noise-15m", "noise_level", "15m", 85.0),
        threshold("bin-full", "fill_level", "30m", 90.0, aggregate="last"),
        threshold("lamp-power-10m", "lamp_power", "10m", 200.0),
        threshold("water-pressure-low", "water_pressure", "10m", 0.5, op="<"),
        threshold("oxygen-low", "dissolved_oxygen", "1h", 3.0, op="<"),
        threshold("turbidity-1h", "turbidity", "1h", 100.0),
        {"id": "device-silent", "kind": "silence", "title": "silent", "after": "30m"},
        {"id": "ispu-tidak-sehat", "kind": "ispu_category", "title": "ISPU", "category": "tidak_sehat"},
    ]
    return RuleFile.model_validate({"version": 1, "rules": rules})


class _Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _refresh(conn: psycopg.Connection[Any]) -> None:
    for _ in range(100_000):
        row = conn.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
        if row is not None and row[0] == 0:
            return
    raise AlertBenchError("the rollups were still pending after 100,000 refreshes")


def run_alert_bench(config: AlertBenchConfig, settings: Settings, *,
                    progress: bool = True) -> AlertBenchResult:
    """Run the alert benchmark end to end and return its figures; everything started is stopped.

    Raises:
        AlertBenchError: the database holds other devices, or a rule could not be judged.
        ServiceError: an embedded service did not start.
    """
    specs = build_fleet(config.devices, config.seed, kinds=list(DEVICE_KINDS))
    rules = bench_rules()
    # The catch-up judges up to `now`; the steady cycles one minute further each: store those too.
    now = datetime.fromtimestamp(math.floor(time.time() / 60) * 60, UTC)
    end = now + timedelta(minutes=config.cycles + 1)
    with bench_services(settings) as services:
        url = services.database_url
        migrate_database(url)
        if (refusal := used_database_refusal(url, (s.device_id for s in specs), "alerts")):
            raise AlertBenchError(refusal)
        register_fleet(url, specs)
        with psycopg.connect(url, autocommit=True) as conn:  # registered before their history
            conn.execute(BACKDATE_DEVICES, (now - timedelta(days=2),))
        started = time.monotonic()
        span_s = config.hours * 3600 + (end - now).total_seconds()
        stored = backfill(url, specs, config.seed, span_s, 60.0, end=end.timestamp(),
                          progress=progress).stored
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(ANALYZE_TABLES)
            _refresh(conn)
        load_s = time.monotonic() - started
        log.info("stored %d readings of %d devices in %.1f s (rollups refreshed)", stored, len(specs), load_s)
        through = floor_to(now - timedelta(hours=config.catch_up_hours), timedelta(hours=1))
        catch_up_h = (now - through).total_seconds() / 3600
        with psycopg.connect(url, autocommit=True) as conn:
            for rule in rules.rules:
                conn.execute(UPSERT_PROGRESS, (rule.id, definition_hash(rule), through))
        clock = _Clock(now)
        alerts = AlertsSettings(settle_s=0, max_catch_up_h=catch_up_h + 1, metrics_port=0)
        with AlertService(url, rules, alerts, clock=clock) as service:
            catch_up = service.cycle()
            if catch_up.failed:
                raise AlertBenchError(f"rules failed: {catch_up.failed}")
            times = []
            per_rule: dict[str, list[float]] = {}
            for i in range(1, config.cycles + 1):
                clock.now = now + timedelta(minutes=i)
                cycle = service.cycle()
                if cycle.failed:
                    raise AlertBenchError(f"rules failed: {cycle.failed}")
                times.append(cycle.seconds)
                for run in cycle.runs:
                    per_rule.setdefault(run.rule_id, []).append(run.seconds)
            with psycopg.connect(url) as conn:
                row = conn.execute(COUNT_TRANSITIONS).fetchone()
    return AlertBenchResult(
        devices=len(specs), rules=len(rules.rules), readings=stored, load_s=load_s,
        catch_up_hours=catch_up_h, catch_up_s=catch_up.seconds,
        catch_up_s_per_hour=catch_up.seconds / catch_up_h,
        cycle_median_s=float(np.median(times)), cycle_p95_s=float(np.percentile(times, 95)),
        cycles=config.cycles, transitions=int(row[0]) if row else 0,
        slowest_rules=dict(sorted(((rule_id, round(float(np.median(s)), 4))
                                   for rule_id, s in per_rule.items()), key=lambda item: -item[1])[:5]))
