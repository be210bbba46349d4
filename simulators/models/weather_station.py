"""Automatic weather station in tropical lowland East Kalimantan (Af climate, ~2,500 mm a year).

Air temperature runs from ~23.5 °C at dawn to ~32 °C at 14:00 WITA, relative humidity moves the
other way, pressure carries the semi-diurnal atmospheric tide (highs ~10:00 and 22:00). Showers
are convective, mostly mid-afternoon to evening, and cool and moisten the air while they last.
"""

from __future__ import annotations

import numpy as np

from simulators.models.signals import (
    clip_to_catalogue,
    daily_bump,
    daily_wave,
    day_of_year,
    draw_slow,
    local_hour,
    slow_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "weather_station"

_DAWN_H, _PEAK_H = 6.0, 14.0
_COOLING_TAU_H = 7.0
_RAIN_THRESHOLD = 2.1  # of the wetness signal: above it, it rains


def _draw(rng: np.random.Generator) -> Params:
    weather_periods, weather_phases = draw_slow(rng, 3, min_period_h=12, max_period_h=240)
    shower_periods, shower_phases = draw_slow(rng, 1, min_period_h=1.5, max_period_h=12)
    return {
        "temperature_offset": rng.uniform(-0.8, 0.8, 1),  # siting, elevation
        "pressure_offset": rng.uniform(-0.5, 0.5, 1),
        "wind_base": rng.uniform(1.2, 2.6, 1),  # m/s
        "wind_from": rng.uniform(0.0, 360.0, 1),  # prevailing direction, degrees
        "weather_periods": weather_periods,
        "weather_phases": weather_phases,
        "shower_periods": shower_periods,
        "shower_phases": shower_phases,
    }


def _temperature_shape(hour: FloatArray) -> FloatArray:
    """Return -1 at dawn, +1 at the afternoon peak: a fast sine rise, an exponential night fall."""
    rising = (hour >= _DAWN_H) & (hour < _PEAK_H)
    rise = -np.cos(np.pi * (hour - _DAWN_H) / (_PEAK_H - _DAWN_H))
    since_peak = (hour - _PEAK_H) % 24.0
    night = 24.0 - (_PEAK_H - _DAWN_H)
    floor = np.exp(-night / _COOLING_TAU_H)
    fall = -1.0 + 2.0 * (np.exp(-since_peak / _COOLING_TAU_H) - floor) / (1.0 - floor)
    return np.where(rising, rise, fall)


def sample(rng: np.random.Generator, times: TimesLike,
           state: ModelState | None = None) -> dict[str, FloatArray]:
    """Return temperature, humidity, pressure, rainfall, wind speed and direction at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    warmth, gloom, gust = slow_noise(t, p["weather_periods"], p["weather_phases"])
    (shower,) = slow_noise(t, p["shower_periods"], p["shower_phases"])

    # Wet season peaks around January; showers favour the afternoon, with a second night maximum.
    season = 0.3 * np.cos(2.0 * np.pi * (day_of_year(t) - 15.0) / 365.24)
    wetness = (shower + 0.5 * gloom + season + 1.0 * daily_bump(hour, 16.0, 2.5)
               + 0.4 * daily_bump(hour, 2.0, 3.0))
    excess = np.clip(wetness - _RAIN_THRESHOLD, 0.0, None)
    wet = np.clip(excess / 0.5, 0.0, 1.0)
    rain_rate = 8.0 * excess * rng.exponential(1.0, n)  # mm/h
    rainfall = rain_rate * steps.seconds / 3600.0

    dry_temperature = (28.0 + p["temperature_offset"] + 4.2 * _temperature_shape(hour)
                       + 0.6 * warmth - 0.4 * gloom)
    temperature = dry_temperature - 2.5 * wet + rng.normal(0.0, 0.15, n)
    humidity = 94.0 - 3.3 * (dry_temperature - 23.5) + 12.0 * wet + rng.normal(0.0, 1.0, n)
    pressure = (1010.0 + p["pressure_offset"] + 1.1 * daily_wave(hour, 10.0, 12.0)
                + 0.4 * daily_wave(hour, 7.0) - 0.35 * warmth + rng.normal(0.0, 0.05, n))
    wind_speed = (p["wind_base"] * (0.5 + 0.8 * daily_bump(hour, 14.0, 3.5))
                  * np.exp(0.3 * gust) + 2.5 * wet) * rng.weibull(3.0, n)
    wind_direction = (p["wind_from"] + 45.0 * gust + rng.normal(0.0, 15.0, n)) % 360.0
    return clip_to_catalogue({
        "temperature": temperature,
        "humidity": np.clip(humidity, 40.0, 100.0),
        "pressure": pressure,
        "rainfall": rainfall,
        "wind_speed": wind_speed,
        "wind_direction": wind_direction,
    })
