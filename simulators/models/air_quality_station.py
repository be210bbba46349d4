"""Air-quality station: the ISPU pollutants of Permen LHK 14/2020 in a small Kalimantan town.

Traffic (motorbikes, trucks on the Trans-Kalimantan road) peaks at 07:30 and 18:00 WITA; the
shallow night-time boundary layer holds pollution near the ground, midday mixing dilutes it;
ozone is photochemical and follows the sun. Typical values sit in ISPU "baik" to "sedang".

A haze episode (`simulators.scenarios.HazeEpisode`) adds regional smoke from peat and forest
fires: it builds over days, varies from day to day the same way at every station of a site,
is thickest in the shallow night and morning boundary layer, and brings CO (by the biomass
burning ratio), hydrocarbons and coarse particles with it.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions, draw_weather_seed, haze_envelope
from simulators.models.signals import (
    clip_to_catalogue,
    daily_bump,
    daily_wave,
    draw_slow,
    local_hour,
    lognormal_noise,
    shared_slow,
    slow_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "air_quality_station"

_SMOKE_SWING = 0.3  # log-spread of the smoke from day to day
_SMOKE_PM10_RATIO = 1.15  # smoke is almost all fine particles
_SMOKE_HC_RATIO = 0.3


def _draw(rng: np.random.Generator) -> Params:
    periods, phases = draw_slow(rng, 2, min_period_h=8, max_period_h=240)
    return {
        "background": rng.uniform(9.0, 16.0, 1),  # µg/m³ PM2.5 away from traffic
        "traffic": rng.uniform(0.6, 1.4, 1),  # how close the station sits to a busy road
        "coarse_ratio": rng.uniform(1.4, 1.9, 1),  # PM10 / PM2.5
        "industry": rng.uniform(0.5, 2.0, 1),  # SO2 from gensets, coal haulage
        "periods": periods,
        "phases": phases,
        "weather_seed": draw_weather_seed(rng),
    }


def _smoke(conditions: Conditions, seed: int, t: FloatArray, hour: FloatArray) -> FloatArray:
    """Return the haze episode's smoke PM2.5 (µg/m³) at ``t``; zeros without one."""
    haze = conditions.haze
    if haze is None:
        return np.zeros_like(t)
    periods, phases = shared_slow(seed, 2, 1, 12.0, 96.0)
    (swing,) = slow_noise(t, periods, phases)
    day_to_day = np.exp(_SMOKE_SWING * swing - 0.5 * _SMOKE_SWING**2)  # mean 1
    layer = 1.0 + 0.45 * daily_wave(hour, 5.0)  # trapped under the night inversion
    smoke: FloatArray = haze.peak_pm25 * haze_envelope(haze, conditions.anchor, t) * day_to_day * layer
    return smoke


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return pm25, pm10, co, no2, o3, so2 and hc (µg/m³) at ``times`` (epoch seconds)."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    regional, dispersion = slow_noise(t, p["periods"], p["phases"])
    rush = daily_bump(hour, 7.5, 1.2) + 0.9 * daily_bump(hour, 18.0, 1.5)
    traffic = p["traffic"] * rush * np.exp(0.15 * dispersion)
    stagnation = 1.0 + 0.25 * daily_wave(hour, 3.0)  # deepest mixing mid-afternoon
    sun = np.clip(np.sin(np.pi * (hour - 6.5) / 12.0), 0.0, None) ** 1.5
    smoke = _smoke(conditions, conditions.weather(p), t, hour)
    co_per_pm25 = 0.0 if conditions.haze is None else conditions.haze.co_per_pm25

    local_pm25 = p["background"] * stagnation * np.exp(0.25 * regional) + 14.0 * traffic
    noise = lognormal_noise(rng, 0.12, n)
    pm25 = (local_pm25 + smoke) * noise
    coarse = local_pm25 * (p["coarse_ratio"] - 1.0) + 4.0 + 6.0 * traffic \
        + (_SMOKE_PM10_RATIO - 1.0) * smoke
    pm10 = pm25 + coarse * noise * lognormal_noise(rng, 0.08, n)  # PM10 includes PM2.5
    co = (450.0 * stagnation + 1600.0 * traffic + co_per_pm25 * smoke) * lognormal_noise(rng, 0.15, n)
    no2 = (7.0 * stagnation + 28.0 * traffic) * lognormal_noise(rng, 0.15, n)
    o3 = (14.0 + 75.0 * sun * np.exp(0.15 * regional) - 6.0 * traffic) \
        * lognormal_noise(rng, 0.1, n)
    so2 = (4.0 + 5.0 * p["industry"] * np.exp(0.3 * regional)) * lognormal_noise(rng, 0.2, n)
    hc = (18.0 * stagnation + 30.0 * traffic + _SMOKE_HC_RATIO * smoke) * lognormal_noise(rng, 0.15, n)
    return clip_to_catalogue({
        "pm25": pm25, "pm10": pm10, "co": co, "no2": no2, "o3": o3, "so2": so2, "hc": hc,
    })
