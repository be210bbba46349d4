"""Shapes the models are built from: local time of day, daily bumps, slow weather, clipping.

All functions take epoch seconds (float arrays) and are vectorised. Local time is WITA
(Asia/Makassar, UTC+8 all year: no daylight saving, so a fixed offset is exact).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np

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
    "local_day",
    "local_hour",
    "lognormal_noise",
    "slow_noise",
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


def slow_noise(times: FloatArray, periods: FloatArray, phases: FloatArray) -> FloatArray:
    """Return smooth random signals of unit variance, one row per series: shape (series, n).

    A sum of sinusoids with random periods and phases. It is a function of absolute time, so a
    device's weather is the same whether its history is drawn in one call or in many.
    """
    terms = periods.shape[-1]
    angles = 2.0 * np.pi * times[None, None, :] / periods[:, :, None] + phases[:, :, None]
    return np.asarray(np.cos(angles).sum(axis=1) * np.sqrt(2.0 / terms), dtype=np.float64)


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
