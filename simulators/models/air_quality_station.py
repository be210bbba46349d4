"""Air-quality station: the ISPU pollutants of Permen LHK 14/2020 in a small Kalimantan town.

Traffic (motorbikes, trucks on the Trans-Kalimantan road) peaks at 07:30 and 18:00 WITA; the
shallow night-time boundary layer holds pollution near the ground, midday mixing dilutes it;
ozone is photochemical and follows the sun. Typical values sit in ISPU "baik" to "sedang".
"""

from __future__ import annotations

import numpy as np

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

__all__ = ["KIND", "sample"]

KIND = "air_quality_station"


def _draw(rng: np.random.Generator) -> Params:
    periods, phases = draw_slow(rng, 2, min_period_h=8, max_period_h=240)
    return {
        "background": rng.uniform(9.0, 16.0, 1),  # µg/m³ PM2.5 away from traffic
        "traffic": rng.uniform(0.6, 1.4, 1),  # how close the station sits to a busy road
        "coarse_ratio": rng.uniform(1.4, 1.9, 1),  # PM10 / PM2.5
        "industry": rng.uniform(0.5, 2.0, 1),  # SO2 from gensets, coal haulage
        "periods": periods,
        "phases": phases,
    }


def sample(rng: np.random.Generator, times: TimesLike,
           state: ModelState | None = None) -> dict[str, FloatArray]:
    """Return pm25, pm10, co, no2, o3, so2 and hc (µg/m³) at ``times`` (epoch seconds)."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    regional, dispersion = slow_noise(t, p["periods"], p["phases"])
    rush = daily_bump(hour, 7.5, 1.2) + 0.9 * daily_bump(hour, 18.0, 1.5)
    traffic = p["traffic"] * rush * np.exp(0.15 * dispersion)
    stagnation = 1.0 + 0.25 * daily_wave(hour, 3.0)  # deepest mixing mid-afternoon
    sun = np.clip(np.sin(np.pi * (hour - 6.5) / 12.0), 0.0, None) ** 1.5

    pm25 = (p["background"] * stagnation * np.exp(0.25 * regional) + 14.0 * traffic) \
        * lognormal_noise(rng, 0.12, n)
    pm10 = (pm25 * p["coarse_ratio"] + 4.0 + 6.0 * traffic) * lognormal_noise(rng, 0.08, n)
    co = (450.0 * stagnation + 1600.0 * traffic) * lognormal_noise(rng, 0.15, n)
    no2 = (7.0 * stagnation + 28.0 * traffic) * lognormal_noise(rng, 0.15, n)
    o3 = (14.0 + 75.0 * sun * np.exp(0.15 * regional) - 6.0 * traffic) \
        * lognormal_noise(rng, 0.1, n)
    so2 = (4.0 + 5.0 * p["industry"] * np.exp(0.3 * regional)) * lognormal_noise(rng, 0.2, n)
    hc = (18.0 * stagnation + 30.0 * traffic) * lognormal_noise(rng, 0.15, n)
    return clip_to_catalogue({
        "pm25": pm25, "pm10": pm10, "co": co, "no2": no2, "o3": o3, "so2": so2, "hc": hc,
    })
