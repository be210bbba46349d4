"""Simulated fleets: which devices exist, where they stand, and each device's own random stream.

`demo_fleet` is the Paser demo fleet that ``smartcity up`` registers and runs; `build_fleet`
makes fleets of any size. Every device draws from a generator seeded from (fleet seed,
device id) by a stable hash, so a device's readings do not depend on which other devices run
beside it, on their order, or on Python's per-process hash salt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from simulators.models import MODELS, FloatArray, ModelState, TimesLike
from smartcity.catalog import DEVICE_KINDS, SITES, is_valid_device_id

__all__ = [
    "KIND_PREFIXES",
    "DeviceSpec",
    "SimulatedDevice",
    "build_fleet",
    "demo_fleet",
    "device_rng",
    "device_seed",
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
    """A device spec with its model, generator and state: call `sample` to read its sensors."""

    spec: DeviceSpec
    rng: np.random.Generator
    state: ModelState = field(default_factory=ModelState)

    @classmethod
    def create(cls, spec: DeviceSpec, seed: int) -> SimulatedDevice:
        """Return a fresh device for ``spec`` in a fleet seeded with ``seed``."""
        return cls(spec, device_rng(seed, spec.device_id))

    def sample(self, times: TimesLike) -> dict[str, FloatArray]:
        """Return the readings at ``times`` (epoch seconds, ascending), one array per metric."""
        return MODELS[self.spec.kind](self.rng, times, self.state)


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


def build_fleet(size: int, seed: int, kinds: Iterable[str] | None = None) -> list[DeviceSpec]:
    """Return ``size`` devices cycling through ``kinds`` (default: all), spread over the sites.

    Raises:
        ValueError: ``size`` is negative or a kind is not in the catalogue.
    """
    if size < 0:
        raise ValueError(f"fleet size must be at least 0, not {size}")
    chosen = list(DEVICE_KINDS) if kinds is None else list(kinds)
    unknown = [kind for kind in chosen if kind not in DEVICE_KINDS]
    if unknown or not chosen:
        raise ValueError(f"unknown device kinds: {unknown or 'none given'}")
    rng = np.random.default_rng(device_seed(seed, "fleet"))
    site_ids = list(SITES)
    site_picks = rng.integers(0, len(site_ids), size)
    offsets = rng.uniform(-_FLEET_SPREAD_DEG, _FLEET_SPREAD_DEG, (size, 2))
    width = max(4, len(str(size)))
    specs = []
    for index in range(size):
        kind = chosen[index % len(chosen)]
        site = SITES[site_ids[site_picks[index]]]
        specs.append(DeviceSpec(
            f"{KIND_PREFIXES[kind]}-{site.id}-{index + 1:0{width}d}", kind, site.id,
            round(site.latitude + float(offsets[index, 0]), 5),
            round(site.longitude + float(offsets[index, 1]), 5),
        ))
    return specs


def _placed_near(site_id: str, device_id: str) -> tuple[float, float]:
    """Return coordinates a small, fixed distance from the site centre, derived from the id."""
    site = SITES[site_id]
    digest = hashlib.blake2b(device_id.encode(), digest_size=4).digest()
    north, east = (int.from_bytes(digest[i:i + 2], "big") / 65535.0 * 2.0 - 1.0 for i in (0, 2))
    return (round(site.latitude + north * _DEMO_SPREAD_DEG, 5),
            round(site.longitude + east * _DEMO_SPREAD_DEG, 5))
