"""Automatic weather station in tropical lowland East Kalimantan (Af climate, ~2,500 mm a year).

Air temperature runs from ~23.5 °C at dawn to ~32 °C at 14:00 WITA, relative humidity moves the
other way, pressure carries the semi-diurnal atmospheric tide (highs ~10:00 and 22:00). Rain
comes from the site's storms (`simulators.models.storms`): bursts, mostly mid-afternoon to
evening, that cool and moisten the air while they last and for an hour or so after.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions, draw_weather_seed
from simulators.models.signals import (
    clip_to_catalogue,
    daily_bump,
    daily_wave,
    draw_slow,
    local_hour,
    lognormal_noise,
    slow_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample
from simulators.models.storms import rain_depth, reservoir_outflow, site_storms

__all__ = ["KIND", "sample"]

KIND = "weather_station"

_DAWN_H, _PEAK_H = 6.0, 14.0
_COOLING_TAU_H = 7.0
_WET_RECESSION_S = 3600.0  # how fast air and ground dry after rain
_SOAKING_MM_H = 3.0  # recent rain at which the air is as cool and humid as rain makes it


def _draw(rng: np.random.Generator) -> Params:
    weather_periods, weather_phases = draw_slow(rng, 3, min_period_h=12, max_period_h=240)
    return {
        "temperature_offset": rng.uniform(-0.8, 0.8, 1),  # siting, elevation
        "pressure_offset": rng.uniform(-0.5, 0.5, 1),
        "wind_base": rng.uniform(1.2, 2.6, 1),  # m/s
        "wind_from": rng.uniform(0.0, 360.0, 1),  # prevailing direction, degrees
        "weather_periods": weather_periods,
        "weather_phases": weather_phases,
        "gauge_catch": rng.uniform(0.9, 1.1, 1),  # this rain gauge's catch against the storm's
        "weather_seed": draw_weather_seed(rng),
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


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return temperature, humidity, pressure, rainfall, wind speed and direction at ``times``."""
    t, p, steps, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    warmth, gloom, gust = slow_noise(t, p["weather_periods"], p["weather_phases"])

    # Rain since the last report; gusts inside a storm make it burstier than the storm's mean.
    start = min(float(steps.previous.min()), float(t.min()) - 10.0 * _WET_RECESSION_S) if n else 0.0
    storms = site_storms(conditions, conditions.weather(p), start, float(t.max()) if n else 0.0)
    rainfall = rain_depth(storms, steps.previous, t) * p["gauge_catch"] * lognormal_noise(rng, 0.3, n)
    recent = reservoir_outflow(storms, t, 0.0, _WET_RECESSION_S)  # mm/h, decaying after rain
    wet = np.clip(recent / _SOAKING_MM_H, 0.0, 1.0)

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
