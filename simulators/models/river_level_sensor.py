"""River-level gauge on the Kandilo and its neighbours: tide, baseflow, and rain arriving late.

Rain over the catchment reaches the gauge after a travel time (``lag_h``) and drains through a
linear reservoir (``recession_h``): the flow peaks when the lagged rain stops and recedes over
days. A rating curve turns flow into stage. Tanah Grogot sits on the tidal reach of the Kandilo,
so its level also carries the mixed tide of the Makassar Strait (M2, S2, K1), which high river
flow pushes back; upstream gauges see little tide. Metres above gauge zero, typically 1.5–2.5 m.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from simulators.models.conditions import NORMAL, Conditions, draw_weather_seed
from simulators.models.signals import clip_to_catalogue, shared_slow, slow_noise, wet_season
from simulators.models.state import FloatArray, ModelState, Params, TimesLike, start_sample
from simulators.models.storms import reservoir_outflow, site_storms
from smartcity.catalog import RIVER_WARNING_LEVELS_M

__all__ = [
    "DEFAULT_GAUGE",
    "GAUGES",
    "KIND",
    "TYPICAL_FLOW_MM_H",
    "WARNING_LEVELS_M",
    "Gauge",
    "gauge_at",
    "river_flow",
    "sample",
]

KIND = "river_level_sensor"


@dataclass(frozen=True, slots=True)
class Gauge:
    """A gauge's hydrology: rain's travel time to it, the catchment's recession, its tidal range."""

    lag_h: float
    recession_h: float
    tide_m: tuple[float, float]  # range the M2 amplitude of a gauge here is drawn from


# Illustrative values, not survey data: larger catchments answer later and drain slower.
GAUGES: Mapping[str, Gauge] = MappingProxyType({
    "tanah-grogot": Gauge(lag_h=8.0, recession_h=30.0, tide_m=(0.15, 0.35)),
    "kuaro": Gauge(lag_h=4.0, recession_h=20.0, tide_m=(0.0, 0.03)),
    "long-ikis": Gauge(lag_h=5.0, recession_h=24.0, tide_m=(0.0, 0.08)),
})
DEFAULT_GAUGE = Gauge(lag_h=6.0, recession_h=24.0, tide_m=(0.05, 0.4))

# Flood alert stages, defined in the catalogue: the dashboards draw the same lines.
WARNING_LEVELS_M: Mapping[str, float] = RIVER_WARNING_LEVELS_M

# Tidal constituents: period (s) and amplitude relative to M2.
_TIDES = ((12.4206 * 3600, 1.0), (12.0 * 3600, 0.45), (23.9345 * 3600, 0.35))
_RUNOFF = 0.6  # share of the rain that reaches the river
TYPICAL_FLOW_MM_H = 0.3  # runoff on an ordinary day
_RATING_EXPONENT = 0.6  # stage grows with flow to this power
_RATING_M = 1.55  # metres of stage per unit of flow ** exponent
_TIDE_DAMPING_FLOW = 1.5  # mm/h of flow that halves the tide


def gauge_at(site_id: str | None) -> Gauge:
    """Return the hydrology of the gauge at ``site_id`` (a typical one for other sites)."""
    return GAUGES.get(site_id or "", DEFAULT_GAUGE)


def river_flow(conditions: Conditions, seed: int, times: FloatArray) -> FloatArray:
    """Return the river's flow at the site's gauge (mm/h of runoff over its catchment) at ``times``.

    A function of the site's weather ``seed`` and the times alone: the gauge and the sonde at one
    site see the same river.
    """
    gauge = gauge_at(conditions.site_id)
    lag_s, recession_s = gauge.lag_h * 3600.0, gauge.recession_h * 3600.0
    if times.size == 0:
        return np.zeros(0)
    # Rain more than ~10 recession times old has drained away.
    storms = site_storms(conditions, seed, float(times.min()) - lag_s - 10.0 * recession_s,
                         float(times.max()))
    quick = _RUNOFF * reservoir_outflow(storms, times, lag_s, recession_s)
    periods, phases = shared_slow(seed, 1, 1, 72.0, 720.0)
    (wetness,) = slow_noise(times, periods, phases)
    base = 0.12 * np.exp(0.25 * wetness + 0.3 * wet_season(times))
    flow: FloatArray = quick + base
    return flow


def _draw(rng: np.random.Generator) -> Params:
    return {
        "datum": rng.uniform(-0.15, 0.15, 1),  # this gauge's zero against the others'
        "tide": rng.uniform(0.0, 1.0, 1),  # where in its site's tidal range it sits
        "tide_phases": rng.uniform(0.0, 2.0 * np.pi, len(_TIDES)),
        "weather_seed": draw_weather_seed(rng),
    }


def sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
           conditions: Conditions = NORMAL) -> dict[str, FloatArray]:
    """Return water_level (m) at ``times``."""
    t, p, _, state = start_sample(rng, times, state, _draw)
    gauge = gauge_at(conditions.site_id)
    flow = river_flow(conditions, conditions.weather(p), t)
    low, high = gauge.tide_m
    tide = np.zeros_like(t)
    for (period, amplitude), phase in zip(_TIDES, p["tide_phases"], strict=True):
        tide += amplitude * np.cos(2.0 * np.pi * t / period + phase)
    tide *= (low + (high - low) * p["tide"]) / (1.0 + flow / _TIDE_DAMPING_FLOW)
    stage = _RATING_M * (flow**_RATING_EXPONENT - TYPICAL_FLOW_MM_H**_RATING_EXPONENT)
    level = 1.8 + p["datum"] + stage + tide + rng.normal(0.0, 0.005, t.size)
    return clip_to_catalogue({"water_level": level})

