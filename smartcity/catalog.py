"""The metric catalogue, device kinds and sites of the public contract: one source of truth.

Ingest validates against it, simulators draw within it, the API reports its units and the
dashboards label panels from it. The database holds a seeded copy (``smartcity.db.seed``) so
SQL can join on it; this module is what the copy is made from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "DEVICE_ID_PATTERN",
    "DEVICE_KINDS",
    "LOCAL_TIMEZONE",
    "METRICS",
    "METRICS_BY_ID",
    "RIVER_WARNING_LEVELS_M",
    "SITES",
    "DeviceKind",
    "Metric",
    "Site",
    "is_valid_device_id",
]

LOCAL_TIMEZONE = "Asia/Makassar"  # WITA, UTC+8, no daylight saving
DEVICE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}$")

Domain = Literal["environment", "living"]


@dataclass(frozen=True, slots=True)
class Metric:
    """A measured quantity: canonical unit and the range a plausible reading falls in."""

    id: int  # stable compact key stored in every reading row; never renumber
    name: str
    unit: str
    min_value: float
    max_value: float
    domain: Domain
    description: str
    cumulative: bool = False  # a counter (meter reading), aggregated by difference, not by mean

    def in_range(self, value: float) -> bool:
        """Tell whether ``value`` lies inside the accepted range, bounds included."""
        return self.min_value <= value <= self.max_value


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A kind of device and the metrics it reports."""

    name: str
    description: str
    metrics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Site:
    """A district (kecamatan) of Kabupaten Paser; coordinates are approximate district centres."""

    id: str
    name: str
    latitude: float
    longitude: float
    timezone: str = LOCAL_TIMEZONE


_METRICS = (
    Metric(1, "pm25", "µg/m³", 0, 1000, "environment", "Fine particulate matter PM2.5"),
    Metric(2, "pm10", "µg/m³", 0, 2000, "environment", "Particulate matter PM10"),
    Metric(3, "co", "µg/m³", 0, 100000, "environment", "Carbon monoxide"),
    Metric(4, "no2", "µg/m³", 0, 5000, "environment", "Nitrogen dioxide"),
    Metric(5, "o3", "µg/m³", 0, 2000, "environment", "Ozone"),
    Metric(6, "so2", "µg/m³", 0, 5000, "environment", "Sulphur dioxide"),
    Metric(7, "hc", "µg/m³", 0, 5000, "environment", "Hydrocarbons"),
    Metric(8, "temperature", "°C", -10, 60, "environment", "Air temperature"),
    Metric(9, "humidity", "%", 0, 100, "environment", "Relative humidity"),
    Metric(10, "pressure", "hPa", 800, 1100, "environment", "Air pressure"),
    Metric(11, "rainfall", "mm", 0, 500, "environment", "Rainfall since the previous report"),
    Metric(12, "wind_speed", "m/s", 0, 80, "environment", "Wind speed"),
    Metric(13, "wind_direction", "°", 0, 360, "environment", "Wind direction, from north"),
    Metric(14, "noise_level", "dBA", 20, 140, "environment", "A-weighted sound level"),
    Metric(15, "water_level", "m", -5, 30, "environment", "River or water level above gauge zero"),
    Metric(16, "water_ph", "pH", 0, 14, "environment", "Water pH"),
    Metric(17, "dissolved_oxygen", "mg/L", 0, 20, "environment", "Dissolved oxygen"),
    Metric(18, "turbidity", "NTU", 0, 4000, "environment", "Turbidity"),
    Metric(19, "water_temperature", "°C", 0, 45, "environment", "Water temperature"),
    Metric(20, "conductivity", "µS/cm", 0, 100000, "environment", "Electrical conductivity"),
    Metric(21, "lamp_power", "W", 0, 1000, "living", "Street-light power draw"),
    Metric(22, "lamp_on", "0/1", 0, 1, "living", "Street light switched on"),
    Metric(23, "fill_level", "%", 0, 100, "living", "Waste-bin fill level"),
    Metric(24, "water_volume", "m³", 0, 1e9, "living", "Water-meter volume", cumulative=True),
    Metric(25, "water_pressure", "bar", 0, 20, "living", "Water-supply pressure"),
    Metric(26, "energy", "kWh", 0, 1e12, "living", "Energy meter reading", cumulative=True),
)

_DEVICE_KINDS = (
    DeviceKind("air_quality_station", "Air-quality monitoring station (ISPU pollutants)",
               ("pm25", "pm10", "co", "no2", "o3", "so2", "hc")),
    DeviceKind("weather_station", "Automatic weather station",
               ("temperature", "humidity", "pressure", "rainfall", "wind_speed", "wind_direction")),
    DeviceKind("river_level_sensor", "River-level gauge (radar or pressure)", ("water_level",)),
    DeviceKind("water_quality_sonde", "Multi-parameter water-quality sonde",
               ("water_ph", "dissolved_oxygen", "turbidity", "water_temperature", "conductivity")),
    DeviceKind("noise_monitor", "Sound-level monitor", ("noise_level",)),
    DeviceKind("street_light", "Connected street light", ("lamp_on", "lamp_power", "energy")),
    DeviceKind("waste_bin", "Waste bin with fill-level sensor", ("fill_level",)),
    DeviceKind("water_meter", "Household or district water meter",
               ("water_volume", "water_pressure")),
)

_SITES = (
    Site("tanah-grogot", "Tanah Grogot", -1.9110, 116.1970),
    Site("kuaro", "Kuaro", -1.8420, 116.0280),
    Site("long-ikis", "Long Ikis", -1.6530, 116.1800),
    Site("long-kali", "Long Kali", -1.5800, 116.3900),
    Site("batu-sopang", "Batu Sopang", -1.8290, 115.8620),
    Site("muara-komam", "Muara Komam", -1.7470, 115.6740),
    Site("muara-samu", "Muara Samu", -2.0930, 115.9470),
    Site("batu-engau", "Batu Engau", -2.2240, 116.0790),
    Site("tanjung-harapan", "Tanjung Harapan", -2.1500, 116.3200),
    Site("pasir-belengkong", "Pasir Belengkong", -1.9740, 116.0700),
)

# Flood alert stages (waspada → siaga → awas) for the Kandilo at Tanah Grogot, metres above
# gauge zero. Illustrative, not BPBD Paser's official thresholds; every gauge uses them: the
# simulated rivers crest above them in the flood scenario and the dashboards draw them.
RIVER_WARNING_LEVELS_M: MappingProxyType[str, float] = MappingProxyType(
    {"waspada": 3.0, "siaga": 3.5, "awas": 4.0}
)

METRICS: MappingProxyType[str, Metric] = MappingProxyType({m.name: m for m in _METRICS})
METRICS_BY_ID: MappingProxyType[int, Metric] = MappingProxyType({m.id: m for m in _METRICS})
DEVICE_KINDS: MappingProxyType[str, DeviceKind] = MappingProxyType(
    {k.name: k for k in _DEVICE_KINDS}
)
SITES: MappingProxyType[str, Site] = MappingProxyType({s.id: s for s in _SITES})


def is_valid_device_id(device_id: str) -> bool:
    """Tell whether ``device_id`` has the contract's shape."""
    return DEVICE_ID_PATTERN.fullmatch(device_id) is not None
