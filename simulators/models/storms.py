"""Storms a site shares, and the linear reservoir that turns them into runoff.

Rain in lowland Kalimantan is convective: on many days a thunderstorm breaks in the afternoon
or evening, short and heavy; some nights bring a longer, gentler rain. Each local day's storms
are a deterministic function of the site's weather seed and the day number (`hashed_uniform`),
so every device at a site, and every call however the times are split, sees the same storms.
The wet season (November to May) has more of them; a haze episode all but stops them; a flood
adds its own long storm. Storms are rectangular pulses: rain depth between two times and the
outflow of a linear reservoir then have closed forms, evaluated for all storms at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from simulators.models.conditions import Conditions, haze_envelope
from simulators.models.signals import DAY_S, UTC_OFFSET_S, hashed_uniform, wet_season
from simulators.models.state import FloatArray
from simulators.scenarios import HazeEpisode

__all__ = ["Storms", "rain_depth", "reservoir_outflow", "site_storms"]

_HOUR_S = 3600.0
_BLOCK_DAYS = 16  # storms are generated and cached a block of days at a time
_CELLS = 1 << 18  # times × storms evaluated per chunk: bounds memory on long backfills
_HAZE_DRYING = 0.95  # share of storms the thickest smoke suppresses


class Storms(NamedTuple):
    """Rectangular rain pulses: start (epoch s), duration (s), intensity (mm/h)."""

    start: FloatArray
    duration: FloatArray
    intensity: FloatArray


class _Slot(NamedTuple):
    """One chance of a storm each day: how likely, when it starts, how long, how hard."""

    probability: float
    first_h: float  # earliest local start hour
    spread_h: float  # starts fall uniformly over this many hours
    min_duration_h: float
    duration_spread_h: float  # skewed towards short storms
    mean_mm_h: float  # intensities are exponential with this mean
    max_mm: float  # the most one storm drops: the heaviest are short


_SLOTS = (
    _Slot(0.42, 13.0, 6.0, 0.5, 3.0, 9.0, 40.0),  # afternoon and evening thunderstorm
    _Slot(0.15, 0.0, 5.0, 1.0, 4.0, 3.0, 30.0),  # night and early-morning rain
)


@lru_cache(maxsize=1024)
def _block_storms(seed: int, block: int, haze: HazeEpisode | None, anchor: float) -> Storms:
    days = np.arange(block * _BLOCK_DAYS, (block + 1) * _BLOCK_DAYS, dtype=np.int64)
    midnight = days.astype(np.float64) * DAY_S - UTC_OFFSET_S
    noon = midnight + 12.0 * _HOUR_S
    season = 1.0 + 0.3 * wet_season(noon)
    dryness = haze_envelope(haze, anchor, noon)
    starts, durations, intensities = [], [], []
    for index, slot in enumerate(_SLOTS):
        occurs, when, length, strength = (hashed_uniform(seed, days, 4 * index + k) for k in range(4))
        happens = occurs < slot.probability * season * (1.0 - _HAZE_DRYING * dryness)
        starts.append((midnight + (slot.first_h + slot.spread_h * when) * _HOUR_S)[happens])
        hours = slot.min_duration_h + slot.duration_spread_h * length**2
        rate = np.minimum(-slot.mean_mm_h * np.log1p(-strength), slot.max_mm / hours)
        durations.append((hours * _HOUR_S)[happens])
        intensities.append(rate[happens])
    return Storms(np.concatenate(starts), np.concatenate(durations), np.concatenate(intensities))


def site_storms(conditions: Conditions, seed: int, start: float, end: float) -> Storms:
    """Return the storms of weather ``seed`` that begin between ``start`` and ``end`` (epoch s)."""
    haze = conditions.haze
    anchor = conditions.anchor if haze is not None else 0.0
    first = int(np.floor((start + UTC_OFFSET_S) / DAY_S / _BLOCK_DAYS))
    last = int(np.floor((end + UTC_OFFSET_S) / DAY_S / _BLOCK_DAYS))
    blocks = [_block_storms(seed, block, haze, anchor) for block in range(first, last + 1)]
    flood = conditions.flood
    if flood is not None:
        rain_start, rain_end = flood.rain_window(conditions.anchor)
        blocks.append(Storms(np.array([rain_start]), np.array([rain_end - rain_start]),
                             np.array([flood.intensity_mm_h])))
    start_s = np.concatenate([b.start for b in blocks])
    keep = (start_s >= start) & (start_s <= end)
    return Storms(start_s[keep], np.concatenate([b.duration for b in blocks])[keep],
                  np.concatenate([b.intensity for b in blocks])[keep])


def _sum_over_storms(times: FloatArray, storms: Storms,
                     each: Callable[[FloatArray], FloatArray]) -> FloatArray:
    """Return ``each(times[:, None])`` summed over the storm axis, a chunk of times at a time."""
    out = np.zeros_like(times)
    if storms.start.size == 0:
        return out
    step = max(1, _CELLS // storms.start.size)
    for i in range(0, times.size, step):
        out[i:i + step] = each(times[i:i + step, None]).sum(axis=1)
    return out


def rain_depth(storms: Storms, t0: FloatArray, t1: FloatArray) -> FloatArray:
    """Return the rain (mm) that fell between ``t0`` and ``t1``, elementwise."""
    def fallen(t: FloatArray) -> FloatArray:
        return np.clip(t - storms.start, 0.0, storms.duration) * storms.intensity / _HOUR_S

    return _sum_over_storms(t1, storms, fallen) - _sum_over_storms(t0, storms, fallen)


def reservoir_outflow(storms: Storms, times: FloatArray, lag_s: float,
                      recession_s: float) -> FloatArray:
    """Return the outflow (mm/h) at ``times`` of a linear reservoir fed by the storms ``lag_s`` late.

    A linear reservoir (outflow = storage / ``recession_s``) fills while a pulse lasts and
    empties exponentially after it, so its outflow peaks the moment the lagged rain stops.
    """
    def outflow(t: FloatArray) -> FloatArray:
        since = t - storms.start - lag_s
        filling = np.clip(since, 0.0, storms.duration)
        emptying = np.maximum(since - storms.duration, 0.0)
        return storms.intensity * -np.expm1(-filling / recession_s) * np.exp(-emptying / recession_s)

    return _sum_over_storms(times, storms, outflow)
