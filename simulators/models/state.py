"""What a simulated device carries from one call of its model to the next."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from simulators.models.control import LampControl

__all__ = [
    "FloatArray", "ModelState", "Params", "Start", "Steps", "TimesLike", "as_times", "start_sample",
]

FloatArray = npt.NDArray[np.float64]
Params = dict[str, FloatArray]
TimesLike = npt.ArrayLike  # epoch seconds: a float, a sequence or an array


class Steps(NamedTuple):
    """For each sample time: the time of the sample before it, and the seconds in between (≥ 0)."""

    previous: FloatArray
    seconds: FloatArray


@dataclass(slots=True)
class ModelState:
    """Per-device memory of a model: last sample time, constants drawn once, running levels.

    ``params`` hold the device's own character (baseline, lamp wattage, phases of its weather),
    drawn on the first call so the same device stays the same device. ``levels`` hold what must
    continue across calls: meter readings, a bin's fill. A model sees times in ascending order;
    a time earlier than ``last_time`` adds nothing to a counter. ``control`` is what an actuator
    was last commanded (None: never; a backfill has none), which its model obeys.
    """

    last_time: float | None = None
    params: Params = field(default_factory=dict)
    levels: dict[str, float] = field(default_factory=dict)
    control: LampControl | None = None

    def constants(self, rng: np.random.Generator,
                  draw: Callable[[np.random.Generator], Params]) -> Params:
        """Return the device's constants, drawing them with ``draw`` on first use."""
        if not self.params:
            self.params = draw(rng)
        return self.params

    def advance(self, times: FloatArray) -> Steps:
        """Return each sample's predecessor time and the gap to it; remember the last time.

        The first sample a device ever takes has no predecessor and gets a gap of 0: nothing has
        accumulated yet (no rain fallen, no energy used) since the meter was first read.
        """
        if times.size == 0:
            return Steps(np.zeros(0), np.zeros(0))
        first = times[0] if self.last_time is None else self.last_time
        previous = np.concatenate(([first], times[:-1]))
        self.last_time = float(times[-1])
        return Steps(previous, np.maximum(times - previous, 0.0))


def as_times(times: TimesLike) -> FloatArray:
    """Return ``times`` as a 1-d float64 array of epoch seconds."""
    return np.atleast_1d(np.asarray(times, dtype=np.float64))


class Start(NamedTuple):
    """What every model call begins with: the times, the device's constants, the steps between,
    and the state to keep running levels in (a fresh one when the caller passed none)."""

    times: FloatArray
    params: Params
    steps: Steps
    state: ModelState


def start_sample(rng: np.random.Generator, times: TimesLike, state: ModelState | None,
                 draw: Callable[[np.random.Generator], Params]) -> Start:
    """Turn ``times`` into an array, fetch (or draw) the device's constants and advance its state."""
    t = as_times(times)
    state = ModelState() if state is None else state
    params = state.constants(rng, draw)
    return Start(t, params, state.advance(t), state)
