"""Sound-level monitor in a town centre: quiet nights, busy days, rush hours, odd loud events.

Levels are A-weighted equivalent levels over the reporting interval: ~42 dBA at night, ~60 dBA
by day near a road, with brief events (a horn, a passing truck, a loudspeaker) on top.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions
from simulators.models.signals import clip_to_catalogue, daily_bump, local_hour
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "noise_monitor"


def _draw(rng: np.random.Generator) -> Params:
    return {
        "quiet": rng.uniform(38.0, 45.0, 1),  # dBA at 03:00
        "busy": rng.uniform(12.0, 20.0, 1),  # dB added by daytime activity
    }


def _daytime(hour: FloatArray) -> FloatArray:
    """Return ~0 at night and ~1 between 06:00 and 22:00, with soft edges."""
    waking = 1.0 / (1.0 + np.exp(-(hour - 5.5) / 0.5))
    sleeping = 1.0 / (1.0 + np.exp(-(hour - 22.0) / 0.7))
    return np.asarray(waking - sleeping, dtype=np.float64)


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return noise_level (dBA) at ``times``."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    rush = daily_bump(hour, 7.3, 1.0) + daily_bump(hour, 17.5, 1.3)
    events = np.where(rng.random(n) < 0.03, rng.uniform(5.0, 20.0, n), 0.0)
    level = p["quiet"] + p["busy"] * _daytime(hour) + 5.0 * rush + events \
        + rng.normal(0.0, 1.5, n)
    return clip_to_catalogue({"noise_level": level})
