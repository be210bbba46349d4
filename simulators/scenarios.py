"""Named scenarios the simulators play: ordinary days, a haze episode, a flood, faulty sensors.

A scenario's episodes are timed as offsets from an *anchor*: the epoch second the run counts
from, given to ``SimulatedDevice.create(..., anchor=...)`` (by default the moment the device is
made). One scenario then serves both a live run (anchor = now: the haze builds over the coming
days, the flood crests the same day) and a backfill (anchor = the first backfilled time: the
episode lies inside the history), and no absolute date goes stale.

Fault probabilities are per report; `simulators.faults` injects them. The models never break
a reading themselves: without faults every value stays inside its catalogue range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "FAULT_NAMES",
    "SCENARIOS",
    "FloodEvent",
    "HazeEpisode",
    "Scenario",
    "get_scenario",
]

_HOUR_S = 3600.0
_DAY_S = 86_400.0

FAULT_NAMES = ("dropout", "stuck", "spike", "clock_skew", "duplicate", "malformed", "unknown_metric")


@dataclass(frozen=True, slots=True)
class HazeEpisode:
    """Smoke from peat and forest fires (karhutla): PM2.5 builds over days, holds, then clears.

    ``peak_pm25`` is the smoke added to the daily mean PM2.5 on the plateau; the night-time
    boundary layer concentrates it, midday mixing thins it. CO rises with the smoke by the
    biomass-burning ratio ``co_per_pm25``. Storms grow rare while the smoke lasts.
    """

    start_s: float = _DAY_S  # after the anchor
    ramp_days: float = 4.0
    plateau_days: float = 6.0
    clear_days: float = 2.0
    peak_pm25: float = 200.0  # µg/m³
    co_per_pm25: float = 12.0  # µg/m³ CO per µg/m³ of smoke PM2.5

    def __post_init__(self) -> None:
        for name in ("ramp_days", "plateau_days", "clear_days", "peak_pm25"):
            if getattr(self, name) <= 0:
                raise ValueError(f"haze {name} must be positive, not {getattr(self, name)}")
        if self.co_per_pm25 < 0:
            raise ValueError(f"haze co_per_pm25 must be at least 0, not {self.co_per_pm25}")

    def plateau(self, anchor: float) -> tuple[float, float]:
        """Return the epoch seconds the smoke is at its thickest, from and to."""
        begin = anchor + self.start_s + self.ramp_days * _DAY_S
        return begin, begin + self.plateau_days * _DAY_S

    def window(self, anchor: float) -> tuple[float, float]:
        """Return the epoch seconds the first smoke arrives and the last has cleared."""
        _, plateau_end = self.plateau(anchor)
        return anchor + self.start_s, plateau_end + self.clear_days * _DAY_S


@dataclass(frozen=True, slots=True)
class FloodEvent:
    """Extreme rain over the catchments: ``rain_mm`` falls evenly over ``duration_h`` hours.

    Every site gets the storm (the weather stations measure it); each river crests about its
    gauge's travel time after the rain stops, above the warning levels, and recedes over days.
    """

    start_s: float = 3 * _HOUR_S  # after the anchor
    duration_h: float = 10.0
    rain_mm: float = 240.0

    def __post_init__(self) -> None:
        if self.duration_h <= 0 or self.rain_mm <= 0:
            raise ValueError(f"flood duration_h and rain_mm must be positive, not "
                             f"{self.duration_h} and {self.rain_mm}")

    @property
    def intensity_mm_h(self) -> float:
        """Return the rain rate while the flood's storm lasts, mm/h."""
        return self.rain_mm / self.duration_h

    def rain_window(self, anchor: float) -> tuple[float, float]:
        """Return the epoch seconds the flood's rain starts and stops."""
        start = anchor + self.start_s
        return start, start + self.duration_h * _HOUR_S


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named set of conditions: an optional haze episode, an optional flood, sensor faults."""

    name: str
    description: str  # one or two sentences, for the README and ``--help``
    haze: HazeEpisode | None = None
    flood: FloodEvent | None = None
    faults: Mapping[str, float] = field(default_factory=dict)  # fault name → probability per report

    def __post_init__(self) -> None:
        unknown = sorted(set(self.faults) - set(FAULT_NAMES))
        if unknown:
            raise ValueError(f"scenario {self.name}: unknown faults {unknown}; "
                             f"known: {', '.join(FAULT_NAMES)}")
        for fault, probability in self.faults.items():
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"scenario {self.name}: probability of {fault} must lie in "
                                 f"[0, 1], not {probability}")
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))


SCENARIOS: Mapping[str, Scenario] = MappingProxyType({scenario.name: scenario for scenario in (
    Scenario(
        "normal",
        "Ordinary days in Paser: traffic-driven air quality in the ISPU Baik to Sedang bands, "
        "afternoon thunderstorms, rivers rising modestly some hours after rain, healthy devices.",
    ),
    Scenario(
        "haze",
        "A dry-season smoke episode: from a day after the start, PM2.5 climbs over four days to "
        "daily means near 200 µg/m³ (ISPU Sangat Tidak Sehat), with CO and PM10 rising too, "
        "holds for six days and clears in two; thunderstorms all but stop.",
        haze=HazeEpisode(),
    ),
    Scenario(
        "flood",
        "Extreme rain, 240 mm in ten hours from three hours after the start, over every site: "
        "rivers crest above the Awas warning level a travel time after the rain stops, "
        "turbidity soars, and the water recedes over the following days.",
        flood=FloodEvent(),
    ),
    Scenario(
        "sensor-faults",
        "Normal weather, misbehaving devices: a few percent of reports are dropped, stuck, "
        "spiked, clock-skewed, duplicated, malformed or carry a metric the catalogue lacks.",
        faults={"dropout": 0.03, "stuck": 0.02, "spike": 0.02, "clock_skew": 0.02,
                "duplicate": 0.02, "malformed": 0.01, "unknown_metric": 0.01},
    ),
)})


def get_scenario(name: str) -> Scenario:
    """Return the scenario called ``name``.

    Raises:
        ValueError: no scenario has that name; the message lists those that do.
    """
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}: choose one of {', '.join(SCENARIOS)}") from None
