"""Connected LED street light on a photocell: on from dusk (~18:15 WITA) to dawn (~06:00 WITA).

Near the equator the sun sets and rises at almost the same local time all year, so a fixed
window per light (its photocell's threshold shifts it by a few minutes) is close to the truth.
The energy meter integrates the rated power over the exact time the lamp was on between reports.
"""

from __future__ import annotations

import numpy as np

from simulators.models.signals import DAY_S, UTC_OFFSET_S, clip_to_catalogue, local_hour
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "street_light"

_DUSK_H, _DAWN_H = 18.25, 6.0


def _draw(rng: np.random.Generator) -> Params:
    return {
        "rated_w": rng.uniform(60.0, 120.0, 1),
        "dusk_h": _DUSK_H + rng.uniform(-0.1, 0.1, 1),
        "dawn_h": _DAWN_H + rng.uniform(-0.1, 0.1, 1),
        "energy_kwh": rng.uniform(50.0, 3000.0, 1),  # meter reading when the simulation starts
    }


def _on_seconds(times: FloatArray, dusk_h: float, dawn_h: float) -> FloatArray:
    """Return the seconds a dusk-to-dawn lamp has burned since the epoch, at ``times``."""
    local = times + UTC_OFFSET_S
    days = np.floor(local / DAY_S)
    into_day = local - days * DAY_S
    dusk_s, dawn_s = dusk_h * 3600.0, dawn_h * 3600.0
    per_day = dawn_s + (DAY_S - dusk_s)
    return days * per_day + np.minimum(into_day, dawn_s) + np.maximum(into_day - dusk_s, 0.0)


def sample(rng: np.random.Generator, times: TimesLike,
           state: ModelState | None = None) -> dict[str, FloatArray]:
    """Return lamp_on (0/1), lamp_power (W) and energy (kWh, cumulative) at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    dusk_h, dawn_h, rated_w = float(p["dusk_h"][0]), float(p["dawn_h"][0]), float(p["rated_w"][0])
    hour = local_hour(t)
    lamp_on = ((hour >= dusk_h) | (hour < dawn_h)).astype(np.float64)
    lamp_power = lamp_on * rated_w * (1.0 + rng.normal(0.0, 0.015, n))

    burned_s = np.maximum(_on_seconds(t, dusk_h, dawn_h)
                          - _on_seconds(steps.previous, dusk_h, dawn_h), 0.0)
    used_kwh = rated_w * burned_s / 3.6e6 * np.abs(1.0 + rng.normal(0.0, 0.01, n))
    start = state.levels.get("energy", float(p["energy_kwh"][0]))
    energy = start + np.cumsum(used_kwh)
    if n:
        state.levels["energy"] = float(energy[-1])
    return clip_to_catalogue({"lamp_on": lamp_on, "lamp_power": lamp_power, "energy": energy})
