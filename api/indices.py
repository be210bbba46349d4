"""Air-quality indices as pure functions: ISPU (Permen LHK P.14/MENLHK/SETJEN/KUM.1/7/2020) and the
US EPA AQI for PM2.5 (2024 breakpoints).

The ISPU's table is data in ``smartcity.airquality`` (re-exported here), which also seeds the SQL
copy of it; the functions take concentrations in the tables' unit (µg/m³)
and never read a clock, a setting or a database. ``to_table_unit`` converts a catalogue
concentration explicitly before a lookup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from smartcity.airquality import (
    ISPU_CATEGORIES,
    ISPU_INDEX_POINTS,
    ISPU_POLLUTANTS,
    ISPU_TABLE,
    PARTICULATES,
    TABLE_UNIT,
    Category,
)

__all__ = [
    "ISPU_CATEGORIES",
    "ISPU_INDEX_POINTS",
    "ISPU_POLLUTANTS",
    "ISPU_TABLE",
    "PARTICULATES",
    "TABLE_UNIT",
    "US_AQI_PM25_BANDS",
    "AirIndexError",
    "AqiBand",
    "Category",
    "InvalidConcentration",
    "SiteIndex",
    "SubIndex",
    "UnitError",
    "UsAqi",
    "compute_site_index",
    "compute_sub_index",
    "compute_us_aqi_pm25",
    "ispu_category",
    "to_table_unit",
]

# Grams per mole, for ppb/ppm of the gases (25 °C, 1 atm: 24.45 L/mol). Particulates and the HC
# mixture have no molar mass, so they are only convertible between mass concentrations.
_MOLAR_MASS = {"co": 28.01, "no2": 46.01, "o3": 48.00, "so2": 64.07}
_MOLAR_VOLUME_L = 24.45
_MASS_FACTORS = {"µg/m³": 1.0, "ug/m3": 1.0, "mg/m³": 1000.0, "mg/m3": 1000.0}
_MIXING_FACTORS = {"ppb": 1.0, "ppm": 1000.0}


class AirIndexError(ValueError):
    """A value an index cannot be computed from."""


class InvalidConcentration(AirIndexError):
    """A concentration that is negative, NaN or infinite, or of an unknown pollutant."""


class UnitError(AirIndexError):
    """A unit that cannot be converted to the table's µg/m³ for this pollutant."""


@dataclass(frozen=True, slots=True)
class SubIndex:
    """One pollutant's ISPU sub-index from a concentration in µg/m³."""

    pollutant: str
    concentration: float
    value: float  # the interpolated index, capped at 500
    category: Category  # of the table band the concentration falls in
    beyond_scale: bool  # above the table's last column: value is capped at 500


@dataclass(frozen=True, slots=True)
class SiteIndex:
    """A site's ISPU: the highest sub-index, its pollutant and category."""

    ispu: int  # the highest sub-index, rounded up: 0–50 Baik, 51–100 Sedang, … as the categories
    value: float
    dominant: str
    category: Category
    beyond_scale: bool


@dataclass(frozen=True, slots=True)
class AqiBand:
    """A band of the US AQI for PM2.5: concentration and index ranges and its category."""

    c_low: Decimal
    c_high: Decimal
    i_low: int
    i_high: int
    category: str


US_AQI_PM25_BANDS: tuple[AqiBand, ...] = tuple(
    AqiBand(Decimal(lo), Decimal(hi), ilo, ihi, name) for lo, hi, ilo, ihi, name in (
        ("0.0", "9.0", 0, 50, "Good"),
        ("9.1", "35.4", 51, 100, "Moderate"),
        ("35.5", "55.4", 101, 150, "Unhealthy for Sensitive Groups"),
        ("55.5", "125.4", 151, 200, "Unhealthy"),
        ("125.5", "225.4", 201, 300, "Very Unhealthy"),
        ("225.5", "325.4", 301, 500, "Hazardous"),
    ))


@dataclass(frozen=True, slots=True)
class UsAqi:
    """The US AQI of a PM2.5 24-hour mean."""

    aqi: int  # capped at 500
    concentration: float  # truncated to one decimal, as looked up
    category: str
    beyond_scale: bool


def _check_concentration(pollutant: str, concentration: float) -> None:
    if not math.isfinite(concentration):
        raise InvalidConcentration(f"{pollutant}: concentration {concentration!r} is not a finite number")
    if concentration < 0:
        raise InvalidConcentration(f"{pollutant}: concentration {concentration!r} is negative")


def to_table_unit(pollutant: str, value: float, unit: str) -> float:
    """Convert a concentration of ``pollutant`` in ``unit`` to the table's µg/m³.

    Raises:
        UnitError: the unit is unknown, or a mixing ratio of a pollutant without a molar mass.
    """
    if unit in _MASS_FACTORS:
        return value * _MASS_FACTORS[unit]
    if unit in _MIXING_FACTORS:
        if pollutant not in _MOLAR_MASS:
            raise UnitError(f"{pollutant}: {unit} cannot be converted to {TABLE_UNIT} "
                            f"(no molar mass; gases with one: {', '.join(_MOLAR_MASS)})")
        return value * _MIXING_FACTORS[unit] * _MOLAR_MASS[pollutant] / _MOLAR_VOLUME_L
    raise UnitError(f"{pollutant}: unknown unit {unit!r}; known: "
                    f"{', '.join([*_MASS_FACTORS, *_MIXING_FACTORS])}")


def ispu_category(index: float) -> Category:
    """Return the category of an ISPU value (0–50 Baik, up to 100 Sedang, … above 300 Berbahaya).

    Raises:
        InvalidConcentration: the index is negative or not finite.
    """
    _check_concentration("ispu", index)
    for category, upper in zip(ISPU_CATEGORIES, ISPU_INDEX_POINTS[1:], strict=True):
        if index <= upper:
            return category
    return ISPU_CATEGORIES[-1]


def compute_sub_index(pollutant: str, concentration: float) -> SubIndex:
    """Return the ISPU sub-index of a concentration (µg/m³) by linear interpolation in the table.

    A concentration on a column is the upper edge of its band (50 µg/m³ of PM10 is 50, Baik);
    above the last column the sub-index is 500 and marked beyond the scale.

    Raises:
        InvalidConcentration: unknown pollutant, or a negative, NaN or infinite concentration.
    """
    points = ISPU_TABLE.get(pollutant)
    if points is None:
        raise InvalidConcentration(f"unknown pollutant {pollutant!r}; known: {', '.join(ISPU_POLLUTANTS)}")
    _check_concentration(pollutant, concentration)
    if concentration > points[-1]:
        return SubIndex(pollutant, concentration, float(ISPU_INDEX_POINTS[-1]), ISPU_CATEGORIES[-1],
                        True)
    band = 0
    while concentration > points[band + 1]:
        band += 1
    x_b, x_a = points[band], points[band + 1]
    i_b, i_a = ISPU_INDEX_POINTS[band], ISPU_INDEX_POINTS[band + 1]
    # On a column the index is the column's exactly, not a float's near miss that rounds up.
    value = float(i_a) if concentration == x_a else (i_a - i_b) / (x_a - x_b) * (concentration - x_b) + i_b
    return SubIndex(pollutant, concentration, value, ISPU_CATEGORIES[band], False)


def compute_site_index(sub_indices: Mapping[str, SubIndex]) -> SiteIndex | None:
    """Return the site's ISPU: the highest sub-index and its pollutant; None without a particulate.

    The sub-indices are those of the pollutants with enough data. Without PM10 or PM2.5 among
    them there is no index (``PARTICULATES``): the gases alone would understate a haze.

    Ties go to the pollutant that comes first in the regulation's table (PM10, PM2.5, SO2, CO,
    O3, NO2, HC), so the answer never depends on the mapping's order.
    """
    if not any(name in sub_indices for name in PARTICULATES):
        return None
    order = {name: n for n, name in enumerate(ISPU_POLLUTANTS)}
    top = min(sub_indices.values(), key=lambda s: (-s.value, order.get(s.pollutant, len(order))))
    # Rounded up, after dropping float noise, so the number falls in its category's range
    # (a sub-index of 50.2 is in band Sedang and reads 51, never 50).
    ispu = math.ceil(round(top.value, 6))
    return SiteIndex(ispu, top.value, top.pollutant, top.category, top.beyond_scale)


def compute_us_aqi_pm25(concentration: float) -> UsAqi:
    """Return the US AQI (2024) of a PM2.5 24-hour mean in µg/m³.

    The concentration is truncated to one decimal before the lookup and the AQI rounded half up;
    above 325.4 µg/m³ the AQI is 500 and marked beyond the scale.

    Raises:
        InvalidConcentration: a negative, NaN or infinite concentration.
    """
    _check_concentration("pm25", concentration)
    # Through the shortest decimal text of the float: 2.3 stays 2.3 (2.3 * 10 is 22.999…).
    truncated = Decimal(repr(concentration)).quantize(Decimal("0.1"), rounding=ROUND_DOWN)
    for band in US_AQI_PM25_BANDS:
        if truncated <= band.c_high:
            exact = (Decimal(band.i_high - band.i_low) / (band.c_high - band.c_low)
                     * (truncated - band.c_low) + band.i_low)
            aqi = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            return UsAqi(aqi, float(truncated), band.category, False)
    return UsAqi(500, float(truncated), US_AQI_PM25_BANDS[-1].category, True)
