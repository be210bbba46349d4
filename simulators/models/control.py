"""What a street light was told to do: a fixed level, or a daily schedule, from a given time on.

A command (smartcity.contract.Command) overrides the photocell from the moment it is obeyed:
``on``, ``off`` and ``dim`` hold one level (100, 0 or the dim's %), a ``schedule`` switches at its
local times every day. The lamp model reads this from its `ModelState`; a device that was never
commanded has none, and samples exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.models.signals import DAY_S
from simulators.models.state import FloatArray

__all__ = ["LampControl"]


@dataclass(frozen=True, slots=True)
class LampControl:
    """A lamp level (0–100 %) in force from ``since`` (epoch seconds).

    ``level`` holds for a fixed command; otherwise ``schedule`` holds (local second of the day,
    level) pairs in ascending order, read in a zone ``utc_offset_s`` seconds ahead of UTC.
    """

    since: float
    level: float | None = None
    schedule: tuple[tuple[float, float], ...] = ()
    utc_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if (self.level is None) == (not self.schedule):
            raise ValueError("a lamp control has a level or a schedule, not both or neither")

    def levels(self, times: FloatArray) -> FloatArray:
        """Return the commanded level at ``times``; NaN before ``since`` (the photocell rules)."""
        if self.level is not None:
            level = np.full(times.shape, self.level)
        else:
            at = np.array([second for second, _ in self.schedule])
            values = np.array([value for _, value in self.schedule])
            into_day = np.mod(times + self.utc_offset_s, DAY_S)
            # The entry in force: the latest at or before this time of day, else the day's last
            # one (switched yesterday and still in force).
            index = np.searchsorted(at, into_day, side="right") - 1
            level = values[index]  # index -1 is the last entry: the wrap from yesterday
        return np.where(times >= self.since, level, np.nan)
