"""Shapes the models are built from: local time of day, daily bumps, slow weather, clipping.

All functions take epoch seconds (float arrays) and are vectorised. Local time is WITA
(Asia/Makassar, UTC+8 all year: no daylight saving, so a fixed offset is exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from simulators.models.state import FloatArray, as_times
from smartcity.catalog import LOCAL_TIMEZONE, METRICS

__all__ = [
    "DAY_S",
    "UTC_OFFSET_S",
    "as_times",
    "clip_to_catalogue",
    "daily_bump",
    "daily_wave",
    "day_of_year",
    "draw_slow",
    "hashed_uniform",
    "local_day",
    "local_hour",
    "lognormal_noise",
    "shared_slow",
    "slow_noise",
    "wet_season",
]

DAY_S = 86_400.0
_offset = ZoneInfo(LOCAL_TIMEZONE).utcoffset(datetime(2026, 1, 1))
UTC_OFFSET_S = _offset.total_seconds() if _offset is not None else 0.0
_YEAR_DAYS = 365.2425


def local_hour(times: FloatArray) -> FloatArray:
    """Return the local (WITA) hour of day in [0, 24) as a fraction."""
    return np.asarray(((times + UTC_OFFSET_S) % DAY_S) / 3600.0, dtype=np.float64)


def local_day(times: FloatArray) -> FloatArray:
    """Return the local (WITA) day number since 1970-01-01, as whole floats."""
    return np.floor((times + UTC_OFFSET_S) / DAY_S)


def day_of_year(times: FloatArray) -> FloatArray:
    """Return the approximate day of the year in [0, 365.24), good enough for seasons."""
    return np.asarray(((times + UTC_OFFSET_S) / DAY_S) % _YEAR_DAYS, dtype=np.float64)


def wet_season(times: FloatArray) -> FloatArray:
    """Return the seasonal swing of rain in Paser: +1 in late February, -1 in late August."""
    return np.asarray(np.cos(2.0 * np.pi * (day_of_year(times) - 53.0) / _YEAR_DAYS), dtype=np.float64)


def daily_wave(hours: FloatArray, peak_hour: float, period_h: float = 24.0) -> FloatArray:
    """Return a cosine of the local hour that is 1 at ``peak_hour`` (and every ``period_h``)."""
    return np.cos(2.0 * np.pi * (hours - peak_hour) / period_h)


def daily_bump(hours: FloatArray, centre_hour: float, width_h: float) -> FloatArray:
    """Return a bell around ``centre_hour`` (1 at the centre) that wraps round midnight."""
    distance = (hours - centre_hour + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (distance / width_h) ** 2)


def draw_slow(rng: np.random.Generator, series: int, *, min_period_h: float,
              max_period_h: float, terms: int = 6) -> tuple[FloatArray, FloatArray]:
    """Draw periods (s) and phases for ``series`` independent slow signals (see `slow_noise`)."""
    periods = np.exp(rng.uniform(np.log(min_period_h), np.log(max_period_h), (series, terms)))
    phases = rng.uniform(0.0, 2.0 * np.pi, (series, terms))
    return periods * 3600.0, phases


@lru_cache(maxsize=256)
def shared_slow(seed: int, stream: int, series: int, min_period_h: float,
                max_period_h: float) -> tuple[FloatArray, FloatArray]:
    """Return `draw_slow` periods and phases fixed by ``(seed, stream)``: weather a site shares.

    Cached and shared between callers: treat the arrays as read-only.
    """
    rng = np.random.default_rng([seed, stream])
    return draw_slow(rng, series, min_period_h=min_period_h, max_period_h=max_period_h)


def slow_noise(times: FloatArray, periods: FloatArray, phases: FloatArray) -> FloatArray:
    """Return smooth random signals of unit variance, one row per series: shape (series, n).

    A sum of sinusoids with random periods and phases. It is a function of absolute time, so a
    device's weather is the same whether its history is drawn in one call or in many.
    """
    terms = periods.shape[-1]
    angles = 2.0 * np.pi * times[None, None, :] / periods[:, :, None] + phases[:, :, None]
    return np.asarray(np.cos(angles).sum(axis=1) * np.sqrt(2.0 / terms), dtype=np.float64)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def hashed_uniform(seed: int, keys: npt.ArrayLike, stream: int = 0) -> FloatArray:
    """Return one uniform number in [0, 1) per integer key, fixed by ``(seed, stream, key)``.

    Random numbers addressed by key (a day, a storm slot) rather than drawn in sequence, so
    any stretch of time can be evaluated alone and agree with every other evaluation of it.
    The splitmix64 finaliser, in wrapping uint64 array arithmetic.
    """
    x = np.atleast_1d(np.asarray(keys, dtype=np.int64)).astype(np.uint64)
    salt = np.uint64((seed * 0xD1B54A32D192ED03 + stream * 0x8CB92BA72F3D8DD7) % 2**64)
    x = x * _GOLDEN + salt
    x ^= x >> np.uint64(30)
    x *= _MIX_1
    x ^= x >> np.uint64(27)
    x *= _MIX_2
    x ^= x >> np.uint64(31)
    return np.asarray((x >> np.uint64(11)).astype(np.float64) * 2.0**-53, dtype=np.float64)


def lognormal_noise(rng: np.random.Generator, sigma: float, n: int) -> FloatArray:
    """Return multiplicative noise with median 1 (a log-normal factor)."""
    return np.exp(rng.normal(0.0, sigma, n))


def clip_to_catalogue(values: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    """Return ``values`` with each metric clipped into its catalogue range."""
    clipped: dict[str, FloatArray] = {}
    for name, array in values.items():
        metric = METRICS[name]
        clipped[name] = np.clip(np.asarray(array, dtype=np.float64),
                                metric.min_value, metric.max_value)
    return clipped
