"""Multi-parameter sonde in a turbid, slightly acidic lowland river (Kandilo at Tanah Grogot).

Photosynthesis lifts dissolved oxygen and pH in the afternoon; water temperature lags the air
by a few hours, and warm water holds less oxygen. The river's flow is the gauge's at the same
site (`river_level_sensor.river_flow`): high flow carries sediment (turbidity rises roughly
with flow to the power 0.9, a sediment rating curve), brings acidic peat water and organic load
(pH and oxygen sag) and dilutes the salts; the tide pushes a little brackish water up the
estuary twice a day.
"""

from __future__ import annotations

import numpy as np

from simulators.models.conditions import NORMAL, Conditions, draw_weather_seed
from simulators.models.river_level_sensor import TYPICAL_FLOW_MM_H, river_flow
from simulators.models.signals import (
    clip_to_catalogue,
    daily_wave,
    draw_slow,
    local_hour,
    lognormal_noise,
    slow_noise,
)
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "water_quality_sonde"

_M2_S = 12.4206 * 3600


def _draw(rng: np.random.Generator) -> Params:
    periods, phases = draw_slow(rng, 1, min_period_h=24, max_period_h=400)
    return {
        "ph": rng.uniform(6.75, 7.1, 1),
        "turbidity": rng.uniform(25.0, 60.0, 1),  # NTU on a dry day
        "conductivity": rng.uniform(90.0, 180.0, 1),  # µS/cm
        "tide_phase": rng.uniform(0.0, 2.0 * np.pi, 1),
        "periods": periods,
        "phases": phases,
        "weather_seed": draw_weather_seed(rng),
    }


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return pH, dissolved oxygen, turbidity, water temperature and conductivity at ``times``."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    n = t.size
    hour = local_hour(t)
    (warmth,) = slow_noise(t, p["periods"], p["phases"])
    runoff = np.log(river_flow(conditions, conditions.weather(p), t) / TYPICAL_FLOW_MM_H)
    photosynthesis = daily_wave(hour, 15.0)

    water_temperature = 28.6 + 0.9 * daily_wave(hour, 16.5) + 0.4 * warmth \
        + rng.normal(0.0, 0.05, n)
    dissolved_oxygen = (6.2 + 0.8 * photosynthesis - 0.15 * (water_temperature - 28.6)
                        - 0.3 * np.clip(runoff, 0.0, None) + rng.normal(0.0, 0.08, n))
    water_ph = p["ph"] + 0.15 * photosynthesis - 0.08 * runoff + rng.normal(0.0, 0.02, n)
    turbidity = p["turbidity"] * np.exp(0.9 * runoff) * lognormal_noise(rng, 0.08, n)
    salt = 1.0 + 0.12 * np.cos(2.0 * np.pi * t / _M2_S + p["tide_phase"])
    conductivity = p["conductivity"] * salt * np.exp(-0.2 * runoff) * lognormal_noise(rng, 0.02, n)
    return clip_to_catalogue({
        "water_ph": water_ph,
        "dissolved_oxygen": dissolved_oxygen,
        "turbidity": turbidity,
        "water_temperature": water_temperature,
        "conductivity": conductivity,
    })
