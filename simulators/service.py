"""`smartcity simulate`: build the fleet asked for, then run it live or backfill its history."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from simulators.backfill import BackfillResult, backfill
from simulators.encode import Format
from simulators.faults import check_faults
from simulators.fleet import DeviceSpec, SimulatedDevice, build_fleet, demo_fleet
from simulators.publish import PublisherStats, run_simulator
from simulators.scenarios import get_scenario
from smartcity.broker_url import BrokerAddress

__all__ = ["SimulationPlan", "fleet_for", "run_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationPlan:
    """Everything `smartcity simulate` was asked to do."""

    seed: int
    interval_s: float
    size: int | None = None  # None: the Paser demo fleet
    mix: Mapping[str, float] | None = None
    sites: Mapping[str, float] | None = None
    scenario: str = "normal"
    qos: int = 1
    fmt: Format = "json"
    faults: Mapping[str, float] = field(default_factory=dict)  # on top of the scenario's
    duration_s: float | None = None
    backfill_s: float | None = None  # set: store this much history in bulk instead of going live

    def fault_rates(self) -> dict[str, float]:
        """Return the scenario's fault rates overridden by the ones given explicitly.

        Raises:
            ValueError: an unknown scenario or fault, or a probability outside [0, 1].
        """
        return check_faults({**get_scenario(self.scenario).faults, **self.faults})


def fleet_for(plan: SimulationPlan) -> list[DeviceSpec]:
    """Return the devices of ``plan``: the demo fleet, or a generated one of its size and mix.

    Raises:
        ValueError: an unknown kind or site, or a bad size.
    """
    if plan.size is None:
        return demo_fleet()
    return build_fleet(plan.size, plan.seed, mix=plan.mix, sites=plan.sites)


def run_plan(plan: SimulationPlan, specs: list[DeviceSpec], broker: BrokerAddress,
             database_url: str | None, stop: threading.Event) -> PublisherStats | BackfillResult:
    """Backfill history (needs ``database_url``) or publish live until ``stop`` or the duration.

    Raises:
        ValueError: the plan is inconsistent (unknown scenario or fault, backfill without database).
    """
    scenario = get_scenario(plan.scenario)
    faults = plan.fault_rates()
    if plan.backfill_s is not None:
        if database_url is None:
            raise ValueError("a backfill writes to the database: set SMARTCITY_DATABASE_URL")
        if faults:
            log.warning("faults are injected into live runs only; the backfill stores clean history")
        return backfill(database_url, specs, plan.seed, plan.backfill_s, plan.interval_s,
                        scenario=scenario)
    anchor = time.time()
    stats = run_simulator(
        specs, broker, plan.interval_s, plan.seed, duration_s=plan.duration_s,
        stop_event=stop, qos=plan.qos, fmt=plan.fmt, faults=faults,
        make_device=lambda spec, seed: SimulatedDevice.create(spec, seed, scenario, anchor),
    )
    injected = {name: count for name, count in stats.faults.items() if count}
    if injected:
        log.info("faults injected: %s", injected)
    return stats
