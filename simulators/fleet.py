"""Simulated fleets: which devices exist, where they stand, and each device's own random stream.

`demo_fleet` is the Paser demo fleet that ``smartcity up`` registers and runs; `build_fleet`
makes fleets of any size. Every device draws from a generator seeded from (fleet seed,
device id) by a stable hash, so a device's readings do not depend on which other devices run
beside it, on their order, or on Python's per-process hash salt.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from simulators.models import MODELS, NORMAL, Conditions, FloatArray, ModelState, TimesLike
from simulators.scenarios import Scenario
from smartcity.catalog import DEVICE_KINDS, SITES, is_valid_device_id
from smartcity.credentials import derive_password

__all__ = [
    "KIND_PREFIXES",
    "DeviceSpec",
    "SimulatedDevice",
    "build_fleet",
    "demo_fleet",
    "device_rng",
    "device_seed",
    "with_credentials",
]

# Short id prefixes, one per contract device kind: ``aq-tanah-grogot-01``.
KIND_PREFIXES = {
    "air_quality_station": "aq",
    "weather_station": "wx",
    "river_level_sensor": "river",
    "water_quality_sonde": "wq",
    "noise_monitor": "noise",
    "street_light": "light",
    "waste_bin": "bin",
    "water_meter": "meter",
}

# Where the demo devices stand, beyond one air-quality and one weather station per district:
# river gauges on the Kandilo (Tanah Grogot) and at Long Ikis and Kuaro, the town's sonde,
# noise monitors in the two largest towns, and a street of smart-living devices in the capital.
_DEMO_EXTRAS: tuple[tuple[str, str, int], ...] = (
    ("river_level_sensor", "tanah-grogot", 1),
    ("river_level_sensor", "long-ikis", 1),
    ("river_level_sensor", "kuaro", 1),
    ("water_quality_sonde", "tanah-grogot", 1),
    ("noise_monitor", "tanah-grogot", 1),
    ("noise_monitor", "long-ikis", 1),
    ("street_light", "tanah-grogot", 4),
    ("waste_bin", "tanah-grogot", 3),
    ("water_meter", "tanah-grogot", 3),
)
_DEMO_SPREAD_DEG = 0.015  # ~1.7 km around the district centre
_FLEET_SPREAD_DEG = 0.05


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """A simulated device: its id, kind and place; MQTT credentials once the broker wants them."""

    device_id: str
    kind: str
    site_id: str
    latitude: float
    longitude: float
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not is_valid_device_id(self.device_id):
            raise ValueError(f"device id {self.device_id!r} does not match the contract pattern")
        if self.kind not in DEVICE_KINDS:
            raise ValueError(f"device {self.device_id}: unknown kind {self.kind!r}")
        if self.site_id not in SITES:
            raise ValueError(f"device {self.device_id}: unknown site {self.site_id!r}")


def device_seed(seed: int, device_id: str) -> int:
    """Return a 64-bit seed for ``device_id`` in a fleet seeded with ``seed``, stable anywhere."""
    digest = hashlib.blake2b(f"{seed}/{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def device_rng(seed: int, device_id: str) -> np.random.Generator:
    """Return the random generator of ``device_id`` in a fleet seeded with ``seed``."""
    return np.random.default_rng(device_seed(seed, device_id))


@dataclass(slots=True)
class SimulatedDevice:
    """A device spec with its model, generator, state and conditions: call `sample` to read it."""

    spec: DeviceSpec
    rng: np.random.Generator
    state: ModelState = field(default_factory=ModelState)
    conditions: Conditions = NORMAL

    @classmethod
    def create(cls, spec: DeviceSpec, seed: int, scenario: Scenario | None = None,
               anchor: float | None = None) -> SimulatedDevice:
        """Return a fresh device for ``spec`` in a fleet seeded with ``seed``, playing ``scenario``.

        The scenario's episodes are timed from ``anchor`` (epoch seconds; default: now): pass the
        run's first sample time, live or backfill, to place them in that run. Devices of one
        fleet seed at one site share their weather: the same storms fall on its weather station,
        river gauge and sonde.
        """
        conditions = Conditions(scenario, time.time() if anchor is None else float(anchor),
                                spec.site_id, device_seed(seed, f"weather/{spec.site_id}"))
        return cls(spec, device_rng(seed, spec.device_id), conditions=conditions)

    def sample(self, times: TimesLike) -> dict[str, FloatArray]:
        """Return the readings at ``times`` (epoch seconds, ascending), one array per metric."""
        return MODELS[self.spec.kind](self.rng, times, self.state, self.conditions)


def demo_fleet() -> list[DeviceSpec]:
    """Return the Paser demo fleet: stations in every district, water and living ones in towns."""
    layout = [(kind, site, 1) for kind in ("air_quality_station", "weather_station")
              for site in SITES]
    layout.extend(_DEMO_EXTRAS)
    specs = []
    for kind, site_id, count in layout:
        for number in range(1, count + 1):
            device_id = f"{KIND_PREFIXES[kind]}-{site_id}-{number:02d}"
            latitude, longitude = _placed_near(site_id, device_id)
            specs.append(DeviceSpec(device_id, kind, site_id, latitude, longitude))
    return specs


def with_credentials(specs: Sequence[DeviceSpec], secret: bytes) -> list[DeviceSpec]:
    """Return ``specs`` logging in as themselves, with passwords derived from the fleet ``secret``."""
    return [replace(spec, mqtt_username=spec.device_id,
                    mqtt_password=derive_password(secret, spec.device_id)) for spec in specs]


def build_fleet(size: int, seed: int, kinds: Iterable[str] | None = None,
                sites: Iterable[str] | Mapping[str, float] | None = None,
                mix: Mapping[str, float] | None = None) -> list[DeviceSpec]:
    """Return ``size`` devices of ``kinds`` (default: all, in turn), spread over ``sites``.

    ``mix`` weights the kinds instead (``{"air_quality_station": 3, "river_level_sensor": 1}``:
    three stations per river gauge, interleaved); ``sites`` restricts the districts (a list) or
    weights them (a mapping). The same arguments always give the same fleet.

    Raises:
        ValueError: ``size`` is negative, a kind or site is not in the catalogue, a weight is
            negative or all are zero, or both ``kinds`` and ``mix`` are given.
    """
    if size < 0:
        raise ValueError(f"fleet size must be at least 0, not {size}")
    if kinds is not None and mix is not None:
        raise ValueError("give the kinds either as a list (kinds) or as weights (mix), not both")
    kind_weights = _weights(mix if mix is not None else dict.fromkeys(
        DEVICE_KINDS if kinds is None else kinds, 1.0), DEVICE_KINDS, "device kind")
    rng = np.random.default_rng(device_seed(seed, "fleet"))
    if sites is None:
        site_ids = list(SITES)
        site_picks = rng.integers(0, len(site_ids), size)  # the original draw: old fleets stay
    else:
        site_weights = _weights(sites if isinstance(sites, Mapping) else dict.fromkeys(sites, 1.0),
                                SITES, "site")
        site_ids = list(site_weights)
        total = sum(site_weights.values())
        site_picks = rng.choice(len(site_ids), size, p=[w / total for w in site_weights.values()])
    offsets = rng.uniform(-_FLEET_SPREAD_DEG, _FLEET_SPREAD_DEG, (size, 2))
    width = max(4, len(str(size)))
    specs = []
    for index, kind in enumerate(_interleave(kind_weights, size)):
        site = SITES[site_ids[site_picks[index]]]
        specs.append(DeviceSpec(
            f"{KIND_PREFIXES[kind]}-{site.id}-{index + 1:0{width}d}", kind, site.id,
            round(site.latitude + float(offsets[index, 0]), 5),
            round(site.longitude + float(offsets[index, 1]), 5),
        ))
    return specs


def _weights(weights: Mapping[str, float], known: Mapping[str, object], what: str) -> dict[str, float]:
    """Return the positive weights of ``weights``, checked against the catalogue's ``known`` names."""
    unknown = [name for name in weights if name not in known]
    if unknown:
        raise ValueError(f"unknown {what}s: {', '.join(map(repr, unknown))}")
    negative = [name for name, weight in weights.items() if not weight >= 0]
    if negative:
        raise ValueError(f"{what} weights must be at least 0: {', '.join(negative)}")
    positive = {name: float(weight) for name, weight in weights.items() if weight > 0}
    if not positive:
        raise ValueError(f"no {what} to choose from: none given, or all weights are 0")
    return positive


def _interleave(weights: Mapping[str, float], size: int) -> list[str]:
    """Return ``size`` names in proportion to ``weights``, spread evenly (equal weights: in turn).

    Each place goes to the name furthest behind its share (smooth weighted round robin), so
    every prefix of the fleet keeps the mix, and counts are exact to within one per name.
    """
    total = sum(weights.values())
    names = list(weights)
    given = dict.fromkeys(names, 0)
    order = []
    for index in range(1, size + 1):
        name = max(names, key=lambda n: weights[n] * index / total - given[n])  # first wins ties
        given[name] += 1
        order.append(name)
    return order


def _placed_near(site_id: str, device_id: str) -> tuple[float, float]:
    """Return coordinates a small, fixed distance from the site centre, derived from the id."""
    site = SITES[site_id]
    digest = hashlib.blake2b(device_id.encode(), digest_size=4).digest()
    north, east = (int.from_bytes(digest[i:i + 2], "big") / 65535.0 * 2.0 - 1.0 for i in (0, 2))
    return (round(site.latitude + north * _DEMO_SPREAD_DEG, 5),
            round(site.longitude + east * _DEMO_SPREAD_DEG, 5))
