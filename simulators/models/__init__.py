"""Numpy models of each device kind: ``sample(rng, times, state, conditions) -> {metric: values}``.

A model is a vectorised function of epoch-second times. It returns every metric its kind
declares in the catalogue, each value inside the catalogue range. ``state`` (one per device)
keeps the device's constants and its counters between calls; without it, each call starts a
fresh device. ``conditions`` name the scenario, its anchor time and the site's shared weather;
without them the device lives through normal days with weather of its own. Same generator
state, same state, same conditions, same times: same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

import numpy as np

from simulators.models import (
    air_quality_station,
    noise_monitor,
    river_level_sensor,
    street_light,
    waste_bin,
    water_meter,
    water_quality_sonde,
    weather_station,
)
from simulators.models.conditions import NORMAL, Conditions
from simulators.models.state import FloatArray, ModelState, TimesLike

__all__ = ["MODELS", "NORMAL", "Conditions", "FloatArray", "Model", "ModelState", "TimesLike"]


class Model(Protocol):
    """A device kind's model: times (epoch seconds) in, one array per metric out."""

    def __call__(self, rng: np.random.Generator, times: TimesLike, state: ModelState | None = None,
                 conditions: Conditions = NORMAL) -> dict[str, FloatArray]: ...


MODELS: Mapping[str, Model] = MappingProxyType({
    module.KIND: module.sample
    for module in (
        air_quality_station,
        weather_station,
        river_level_sensor,
        water_quality_sonde,
        noise_monitor,
        street_light,
        waste_bin,
        water_meter,
    )
})
