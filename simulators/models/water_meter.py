"""Household or small-district water meter on the PDAM network.

Demand peaks before work and school (~06:00), at midday and in the evening (~18:30 WITA, bathing
and cooking) and nearly stops at night; supply pressure sags when demand is high. The volume
register counts up and never goes back.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions
from simulators.models.signals import (
    clip_to_catalogue,
    daily_bump,
    local_hour,
    lognormal_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "water_meter"


def _raw_demand(hour: FloatArray) -> FloatArray:
    return np.asarray(0.12 + 1.4 * daily_bump(hour, 6.0, 1.2) + 0.7 * daily_bump(hour, 12.0, 1.5)
                      + 1.2 * daily_bump(hour, 18.5, 1.5), dtype=np.float64)


_DEMAND_MEAN = float(np.mean(_raw_demand(np.arange(0.0, 24.0, 0.05))))


def _draw(rng: np.random.Generator) -> Params:
    return {
        "flow": rng.uniform(0.02, 0.12, 1),  # mean m³/h: a household uses 0.5–3 m³ a day
        "pressure": rng.uniform(1.6, 2.6, 1),  # bar with no demand
        "volume": rng.uniform(10.0, 5000.0, 1),  # register reading when the simulation starts
    }


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return water_volume (m³, cumulative) and water_pressure (bar) at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    demand = _raw_demand(local_hour(t)) / _DEMAND_MEAN
    flow = p["flow"] * demand * lognormal_noise(rng, 0.25, n)  # m³/h
    start = state.levels.get("water_volume", float(p["volume"][0]))
    volume = start + np.cumsum(flow * steps.seconds / 3600.0)
    if n:
        state.levels["water_volume"] = float(volume[-1])
    pressure = p["pressure"] * (1.0 - 0.12 * (demand - 1.0)) + rng.normal(0.0, 0.03, n)
    return clip_to_catalogue({"water_volume": volume, "water_pressure": pressure})
