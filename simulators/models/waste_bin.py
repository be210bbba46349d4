"""Waste bin with an ultrasonic fill sensor: fills through the day, emptied on collection rounds.

Each bin has its own fill rate and a collection round every one to three days at a fixed
morning hour. A full bin stays at 100 % (it overflows) until the truck comes.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions
from simulators.models.signals import (
    DAY_S,
    clip_to_catalogue,
    daily_bump,
    local_day,
    local_hour,
    lognormal_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "waste_bin"


def _raw_use(hour: FloatArray) -> FloatArray:
    return np.asarray(0.15 + daily_bump(hour, 7.0, 1.5) + daily_bump(hour, 12.5, 1.5)
                      + daily_bump(hour, 19.0, 2.0), dtype=np.float64)


# Rubbish goes in mostly around breakfast, lunch and dinner; normalised to a daily mean of 1.
_USE_MEAN = float(np.mean(_raw_use(np.arange(0.0, 24.0, 0.05))))


def _draw(rng: np.random.Generator) -> Params:
    every = rng.choice([1.0, 2.0, 3.0], 1, p=[0.2, 0.5, 0.3])
    return {
        "rate": rng.uniform(12.0, 35.0, 1),  # % of the bin per day
        "collection_h": rng.uniform(6.5, 9.5, 1),
        "every_days": every,
        "round_offset": rng.integers(0, 3, 1).astype(np.float64) % every,
        "fill": rng.uniform(0.0, 40.0, 1),  # % when the simulation starts
    }


def _rounds(times: FloatArray, p: Params) -> FloatArray:
    """Return how many collection rounds have happened since the epoch, at ``times``."""
    day = local_day(times - p["collection_h"] * 3600.0)
    return np.floor((day - p["round_offset"]) / p["every_days"])


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return fill_level (%) at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    use = _raw_use(local_hour(t)) / _USE_MEAN
    added = p["rate"] * use * steps.seconds / DAY_S * lognormal_noise(rng, 0.3, n)
    emptied = _rounds(t, p) > _rounds(steps.previous, p)

    # A running sum that restarts at each collection: rubbish left after a round is a few %.
    total = np.cumsum(added)
    segment = np.cumsum(emptied)
    restarts = np.flatnonzero(emptied)
    start_level = np.concatenate(([state.levels.get("fill_level", float(p["fill"][0]))],
                                  rng.uniform(0.0, 3.0, restarts.size)))
    start_total = np.concatenate(([0.0], total[restarts]))
    fill = np.minimum(start_level[segment] + total - start_total[segment], 100.0)
    if n:
        state.levels["fill_level"] = float(fill[-1])
    return clip_to_catalogue({"fill_level": fill})
