"""The ISPU's data (Permen LHK P.14/MENLHK/SETJEN/KUM.1/7/2020): breakpoints, index points, categories.

One definition for every reader: ``api.indices`` computes with it in Python, and ``seed_catalog``
copies it into the tables the SQL functions of migration 010 compute with (Grafana, alert rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "ISPU_CATEGORIES",
    "ISPU_INDEX_POINTS",
    "ISPU_POLLUTANTS",
    "ISPU_TABLE",
    "PARTICULATES",
    "TABLE_UNIT",
    "Category",
]

TABLE_UNIT = "µg/m³"


@dataclass(frozen=True, slots=True)
class Category:
    """An ISPU category: its id, Indonesian name, English gloss and colour."""

    id: str
    name: str
    name_en: str
    color: str


# One category per band of the table, lowest first.
ISPU_CATEGORIES: tuple[Category, ...] = (
    Category("baik", "Baik", "Good", "green"),
    Category("sedang", "Sedang", "Moderate", "blue"),
    Category("tidak_sehat", "Tidak Sehat", "Unhealthy", "yellow"),
    Category("sangat_tidak_sehat", "Sangat Tidak Sehat", "Very unhealthy", "red"),
    Category("berbahaya", "Berbahaya", "Hazardous", "black"),
)

# The index at each column of the regulation's table, with 0 before the first column.
ISPU_INDEX_POINTS: tuple[int, ...] = (0, 50, 100, 200, 300, 500)

# Concentration (µg/m³) at each index point, per pollutant: the regulation's columns with 0 first.
# The order is the table's; it also breaks ties of the dominant pollutant.
ISPU_TABLE: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "pm10": (0, 50, 150, 350, 420, 500),
    "pm25": (0, 15.5, 55.4, 150.4, 250.4, 500),
    "so2": (0, 52, 180, 400, 800, 1200),
    "co": (0, 4000, 8000, 15000, 30000, 45000),
    "o3": (0, 120, 235, 400, 800, 1000),
    "no2": (0, 80, 200, 1130, 2260, 3000),
    "hc": (0, 45, 100, 215, 432, 648),
})
ISPU_POLLUTANTS: tuple[str, ...] = tuple(ISPU_TABLE)

# What a haze raises. An index of the gases alone reads "Baik" through a haze whose particulate
# sensor is silent or just started, so a site needs one of these with enough data for a number.
PARTICULATES = ("pm10", "pm25")
