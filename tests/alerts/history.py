"""Histories for the alert tests: simulated devices' readings stored as `smartcity simulate
--backfill` stores them, with a flood or a haze placed at a fixed time, and the rollups refreshed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import psycopg

from simulators.backfill import backfill
from simulators.fleet import DeviceSpec, demo_fleet
from simulators.scenarios import SCENARIOS, FloodEvent, HazeEpisode, Scenario
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from smartcity.launcher import register_fleet

SEED = 10


def demo_devices(kind: str, sites: Sequence[str] | None = None) -> list[DeviceSpec]:
    """The demo fleet's devices of ``kind`` (at ``sites``, when given)."""
    return [s for s in demo_fleet() if s.kind == kind and (sites is None or s.site_id in sites)]


def flood_at(rain_start: datetime, first: float) -> Scenario:
    """The flood scenario, its rain starting at ``rain_start``, for a run whose grid starts at ``first``."""
    flood = SCENARIOS["flood"].flood
    assert isinstance(flood, FloodEvent)
    return Scenario("flood-at", "the flood at a fixed time",
                    flood=replace(flood, start_s=rain_start.timestamp() - first))


def haze_at(start: datetime, first: float, ramp_days: float, plateau_days: float,
            clear_days: float) -> Scenario:
    """A shortened haze episode starting at ``start``."""
    haze = SCENARIOS["haze"].haze
    assert isinstance(haze, HazeEpisode)
    return Scenario("haze-at", "a haze at a fixed time", haze=replace(
        haze, start_s=start.timestamp() - first, ramp_days=ramp_days, plateau_days=plateau_days,
        clear_days=clear_days))


def grid_start(start: datetime, interval_s: float) -> float:
    """Where backfill's grid of ``interval_s`` begins for a history starting at ``start``."""
    return math.ceil(start.timestamp() / interval_s) * interval_s


def store(url: str, specs: Sequence[DeviceSpec], start: datetime, end: datetime, interval_s: float,
          scenario: Scenario | None = None) -> int:
    """Store readings of registered ``specs`` every ``interval_s`` in ``[start, end)``."""
    return backfill(url, specs, SEED, (end - start).total_seconds(), interval_s, scenario=scenario,
                    end=end.timestamp(), progress=False).stored


def register(url: str, specs: Sequence[DeviceSpec], at: datetime) -> None:
    """Register ``specs``, as if they were registered at ``at`` (before their history)."""
    register_fleet(url, specs)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE devices SET created_at = %s WHERE device_id = ANY (%s)",
                     (at, [s.device_id for s in specs]))


def refresh_rollups(url: str) -> None:
    """Refresh the rollups until nothing is pending."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE readings")
        for _ in range(1000):
            row = conn.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
            if row is not None and row[0] == 0:
                return
    raise AssertionError("rollups still pending after 1000 refreshes")


def since(moment: datetime, **delta: float) -> datetime:
    """``moment`` plus a timedelta."""
    return moment + timedelta(**delta)
