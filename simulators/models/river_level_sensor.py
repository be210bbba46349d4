"""River-level gauge on the Kandilo and its tributaries: tide plus slow rain-driven swell.

Tanah Grogot sits on the tidal reach of the Kandilo, so the level carries the mixed tide of
the Makassar Strait (M2, S2 and K1); upstream gauges see little tide. Rain over the catchment
raises the level over days. Metres above gauge zero, typically 1–3 m.
"""

from __future__ import annotations

import numpy as np

from simulators.models.signals import clip_to_catalogue, draw_slow, slow_noise
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample

__all__ = ["KIND", "sample"]

KIND = "river_level_sensor"

# Tidal constituents: period (s) and amplitude relative to M2.
_TIDES = ((12.4206 * 3600, 1.0), (12.0 * 3600, 0.45), (23.9345 * 3600, 0.35))


def _draw(rng: np.random.Generator) -> Params:
    periods, phases = draw_slow(rng, 1, min_period_h=24, max_period_h=400)
    return {
        "base": rng.uniform(1.5, 2.1, 1),
        "tide": rng.uniform(0.05, 0.4, 1),  # M2 amplitude, m: large near the estuary
        "tide_phases": rng.uniform(0.0, 2.0 * np.pi, len(_TIDES)),
        "swell": rng.uniform(0.15, 0.3, 1),  # m per unit of catchment wetness
        "periods": periods,
        "phases": phases,
    }


def sample(rng: np.random.Generator, times: TimesLike,
           state: ModelState | None = None) -> dict[str, FloatArray]:
    """Return water_level (m) at ``times``."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    tide = np.zeros_like(t)
    for (period, amplitude), phase in zip(_TIDES, p["tide_phases"], strict=True):
        tide += amplitude * np.cos(2.0 * np.pi * t / period + phase)
    (catchment,) = slow_noise(t, p["periods"], p["phases"])
    level = p["base"] + p["tide"] * tide + p["swell"] * catchment + rng.normal(0.0, 0.005, t.size)
    return clip_to_catalogue({"water_level": level})
