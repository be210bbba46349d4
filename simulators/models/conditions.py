"""The world a device samples in: the scenario in play, its anchor time, the site's shared weather.

Devices at one site share a weather seed, so the weather station, the river gauge and the sonde
in Tanah Grogot see the same storms. A model called without conditions plays the normal
scenario with weather of its own, drawn from the device's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.models.signals import DAY_S
from simulators.models.state import FloatArray, Params
from simulators.scenarios import FloodEvent, HazeEpisode, Scenario

__all__ = ["NORMAL", "Conditions", "draw_weather_seed", "haze_envelope"]


@dataclass(frozen=True, slots=True)
class Conditions:
    """A device's surroundings: scenario (None: normal), anchor (epoch s), site and weather seed."""

    scenario: Scenario | None = None
    anchor: float = 0.0  # episodes are timed from here
    site_id: str | None = None
    weather_seed: int | None = None  # None: the device draws weather of its own

    @property
    def haze(self) -> HazeEpisode | None:
        """Return the scenario's haze episode, if it has one."""
        return None if self.scenario is None else self.scenario.haze

    @property
    def flood(self) -> FloodEvent | None:
        """Return the scenario's flood, if it has one."""
        return None if self.scenario is None else self.scenario.flood

    def weather(self, params: Params) -> int:
        """Return the seed of the weather this device sees: the site's, else its own."""
        if self.weather_seed is not None:
            return self.weather_seed
        return int(params["weather_seed"][0])


NORMAL = Conditions()


def draw_weather_seed(rng: np.random.Generator) -> FloatArray:
    """Draw a device's own weather seed (used when its conditions name no site weather)."""
    return rng.integers(0, 2**53, 1).astype(np.float64)  # exact in a float64


def haze_envelope(haze: HazeEpisode | None, anchor: float, times: FloatArray) -> FloatArray:
    """Return how thick the smoke of ``haze`` is at ``times``: 0 (none) to 1 (the plateau)."""
    if haze is None:
        return np.zeros_like(times)
    start, _ = haze.window(anchor)
    _, plateau_end = haze.plateau(anchor)
    rising = _smoothstep((times - start) / (haze.ramp_days * DAY_S))
    clearing = _smoothstep((times - plateau_end) / (haze.clear_days * DAY_S))
    return rising * (1.0 - clearing)


def _smoothstep(x: FloatArray) -> FloatArray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)
