"""Connected LED street light on a photocell: on from dusk (~18:15 WITA) to dawn (~06:00 WITA).

Near the equator the sun sets and rises at almost the same local time all year, so a fixed
window per light (its photocell's threshold shifts it by a few minutes) is close to the truth.
The energy meter integrates the rated power over the exact time the lamp was on between reports.

Now and then a lamp fails: it dies as it is switched on at dusk, the controller still reports
it on (lamp_on 1) but it draws only its driver's standby power, until a crew replaces it at
midday one to four days later. Failures are a function of the device and the day, so the same
light fails on the same nights however its history is sampled.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions
from simulators.models.control import LampControl
from simulators.models.signals import (
    DAY_S,
    UTC_OFFSET_S,
    clip_to_catalogue,
    hashed_uniform,
    local_day,
    local_hour,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "street_light"

_DUSK_H, _DAWN_H = 18.25, 6.0
FAILURES_PER_NIGHT = 1.0 / 200.0  # chance a working lamp dies when switched on
_REPAIR_DAYS = (1, 4)  # a crew replaces it at noon this many days later (range, inclusive)
_REPAIR_H = 12.0
_STANDBY_W = 0.6  # what a dead lamp's driver still draws


def _draw(rng: np.random.Generator) -> Params:
    return {
        "rated_w": rng.uniform(60.0, 120.0, 1),
        "dusk_h": _DUSK_H + rng.uniform(-0.1, 0.1, 1),
        "dawn_h": _DAWN_H + rng.uniform(-0.1, 0.1, 1),
        "energy_kwh": rng.uniform(50.0, 3000.0, 1),  # meter reading when the simulation starts
        "failure_seed": rng.integers(0, 2**53, 1).astype(np.float64),
    }


def _failed(times: FloatArray, seed: int, dusk_h: float) -> FloatArray:
    """Return whether the lamp is dead at ``times``: it failed at a recent dusk, not yet repaired."""
    low, high = _REPAIR_DAYS
    days = local_day(times)[:, None] - np.arange(high + 1.0)[None, :]
    keys = days.astype(np.int64).ravel()
    fails = (hashed_uniform(seed, keys, 0) < FAILURES_PER_NIGHT).reshape(days.shape)
    repair_days = low + np.floor((high - low + 1) * hashed_uniform(seed, keys, 1)).reshape(days.shape)
    midnight = days * DAY_S - UTC_OFFSET_S
    since = midnight + dusk_h * 3600.0
    until = midnight + repair_days * DAY_S + _REPAIR_H * 3600.0
    t = times[:, None]
    return np.asarray((fails & (t >= since) & (t < until)).any(axis=1), dtype=np.bool_)


def _on_seconds(times: FloatArray, dusk_h: float, dawn_h: float) -> FloatArray:
    """Return the seconds a dusk-to-dawn lamp has burned since the epoch, at ``times``."""
    local = times + UTC_OFFSET_S
    days = np.floor(local / DAY_S)
    into_day = local - days * DAY_S
    dusk_s, dawn_s = dusk_h * 3600.0, dawn_h * 3600.0
    per_day = dawn_s + (DAY_S - dusk_s)
    return days * per_day + np.minimum(into_day, dawn_s) + np.maximum(into_day - dusk_s, 0.0)


def _obey(control: LampControl, t: FloatArray, seconds: FloatArray, drawn_w: FloatArray,
          rated_w: float, lamp_on: FloatArray, lamp_power: FloatArray, used_kwh: FloatArray,
          ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return lamp_on, lamp_power and the energy used, as commanded from ``control.since`` on.

    The photocell's values stand before it. A working lamp draws its rated power times the
    level; a dead one its standby power whenever switched on. A step is metered at the power
    drawn at its end, as the photocell's steps are across a failure.
    """
    level = control.levels(t)
    commanded = ~np.isnan(level)
    fraction = np.where(commanded, level, 0.0) / 100.0
    on = fraction > 0.0
    # The same noise as the photocell's values, recovered from them, so obeying draws nothing
    # more from the device's generator.
    noise = np.divide(lamp_power, lamp_on * drawn_w, out=np.ones_like(lamp_power),
                      where=lamp_on * drawn_w > 0)
    dead = drawn_w < rated_w
    power = np.where(dead, drawn_w * on, rated_w * fraction) * noise
    return (np.where(commanded, on.astype(np.float64), lamp_on),
            np.where(commanded, power, lamp_power),
            np.where(commanded, power * seconds / 3.6e6, used_kwh))


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return lamp_on (0/1), lamp_power (W) and energy (kWh, cumulative) at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    dusk_h, dawn_h, rated_w = float(p["dusk_h"][0]), float(p["dawn_h"][0]), float(p["rated_w"][0])
    hour = local_hour(t)
    lamp_on = ((hour >= dusk_h) | (hour < dawn_h)).astype(np.float64)
    drawn_w = np.where(_failed(t, int(p["failure_seed"][0]), dusk_h), _STANDBY_W, rated_w)
    lamp_power = lamp_on * drawn_w * (1.0 + rng.normal(0.0, 0.015, n))

    # A step that spans a failure or a repair is metered at the power drawn at its end.
    burned_s = np.maximum(_on_seconds(t, dusk_h, dawn_h)
                          - _on_seconds(steps.previous, dusk_h, dawn_h), 0.0)
    used_kwh = drawn_w * burned_s / 3.6e6 * np.abs(1.0 + rng.normal(0.0, 0.01, n))
    if state.control is not None:
        lamp_on, lamp_power, used_kwh = _obey(state.control, t, steps.seconds, drawn_w, rated_w,
                                              lamp_on, lamp_power, used_kwh)
    start = state.levels.get("energy", float(p["energy_kwh"][0]))
    energy = start + np.cumsum(used_kwh)
    if n:
        state.levels["energy"] = float(energy[-1])
    return clip_to_catalogue({"lamp_on": lamp_on, "lamp_power": lamp_power, "energy": energy})
