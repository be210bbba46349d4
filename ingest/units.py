"""Unit symbols a device may send → each metric's catalogue unit (SenML units, RFC 8428 §12.1 and RFC 8798).

Only conversions with a standard factor are accepted; any other unit is a ``unit_mismatch``
rather than a guess. Besides the registered SenML symbols, a metric accepts its own catalogue
unit text (``"µg/m³"``, ``"°C"`` …, as ``GET /api/v1/devices/{id}/latest`` reports it) and a few
common ASCII spellings (``mg/l``, ``mg/m3``, ``uS/cm``).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Final

from smartcity.catalog import METRICS
from smartcity.contract import Reason, Rejection

__all__ = ["ACCEPTED_UNITS", "MOLAR_VOLUME_L", "to_catalogue_unit"]

# value_in_catalogue_unit = value * factor + offset
Conversion = tuple[float, float]
_SAME: Final[Conversion] = (1.0, 0.0)

# Litres per mole of an ideal gas at 25 °C and 1 atm: the reference air-quality agencies use to
# turn a mixing ratio (ppm) into a mass concentration: µg/m³ = ppm × M × 1000 / 24.45.
MOLAR_VOLUME_L: Final = 24.45
_MOLAR_MASS_G = {"co": 28.01, "no2": 46.0055, "o3": 47.9982, "so2": 64.066}

_MASS_CONCENTRATION = {"ug/m3": _SAME, "mg/m3": (1000.0, 0.0)}
_TEMPERATURE = {"Cel": _SAME, "K": (1.0, -273.15)}
_PERCENT = {"%": _SAME, "/": (100.0, 0.0), "/100": _SAME}


def _gas(metric: str) -> dict[str, Conversion]:
    per_ppm = _MOLAR_MASS_G[metric] * 1000 / MOLAR_VOLUME_L
    return {**_MASS_CONCENTRATION, "ppm": (per_ppm, 0.0), "ppb": (per_ppm / 1000, 0.0)}


# Particulates and the hydrocarbon sum have no single molar mass, so no factor from ppm exists.
_BY_METRIC: dict[str, dict[str, Conversion]] = {
    "pm25": _MASS_CONCENTRATION,
    "pm10": _MASS_CONCENTRATION,
    "hc": _MASS_CONCENTRATION,
    **{gas: _gas(gas) for gas in _MOLAR_MASS_G},
    "temperature": _TEMPERATURE,
    "water_temperature": _TEMPERATURE,
    "humidity": {"%RH": _SAME, "%": _SAME},
    "pressure": {"Pa": (0.01, 0.0), "hPa": _SAME, "kPa": (10.0, 0.0)},
    "rainfall": {"mm": _SAME, "cm": (10.0, 0.0), "m": (1000.0, 0.0)},
    "wind_speed": {"m/s": _SAME, "km/h": (1 / 3.6, 0.0)},
    "wind_direction": {"rad": (180 / math.pi, 0.0), "deg": _SAME},
    "noise_level": {"dBA": _SAME},
    "water_level": {"m": _SAME, "cm": (0.01, 0.0), "mm": (0.001, 0.0)},
    "water_ph": {"pH": _SAME},
    # 1 g/m³ = 1 mg/L; SenML has no litre-based concentration, so lower-case mg/l is accepted too.
    "dissolved_oxygen": {"g/m3": _SAME, "mg/l": _SAME, "kg/m3": (1000.0, 0.0)},
    "turbidity": {"NTU": _SAME},
    "conductivity": {"uS/cm": _SAME, "S/m": (10_000.0, 0.0)},
    "lamp_power": {"W": _SAME, "kW": (1000.0, 0.0)},
    "lamp_on": {"/": _SAME},
    "fill_level": _PERCENT,
    "water_volume": {"m3": _SAME, "l": (0.001, 0.0)},
    "water_pressure": {"bar": _SAME, "Pa": (1e-5, 0.0), "hPa": (0.001, 0.0), "kPa": (0.01, 0.0)},
    "energy": {"kWh": _SAME, "Wh": (0.001, 0.0), "J": (1 / 3.6e6, 0.0)},
}

ACCEPTED_UNITS: MappingProxyType[str, MappingProxyType[str, Conversion]] = MappingProxyType({
    name: MappingProxyType({**_BY_METRIC[name], metric.unit: _SAME})
    for name, metric in METRICS.items()
})


def to_catalogue_unit(metric: str, unit: str | None, value: float) -> float | Rejection:
    """Convert ``value`` given in ``unit`` to ``metric``'s catalogue unit, or reject the unit.

    No unit means the value is in the catalogue unit already. A metric outside the catalogue is
    passed through untouched: that is the validator's ``unknown_metric``, not a unit problem.
    """
    if unit is None:
        return value
    table = ACCEPTED_UNITS.get(metric)
    if table is None:
        return value
    conversion = table.get(unit)
    if conversion is None:
        accepted = ", ".join(sorted(table))
        return Rejection(Reason.UNIT_MISMATCH, f"{metric}: unit {unit!r:.40} cannot be converted to "
                                               f"{METRICS[metric].unit} (accepted: {accepted})")
    if conversion == _SAME:
        return value  # keeps an int an int, so the validator sees exactly what was sent
    factor, offset = conversion
    try:
        converted = float(value) * factor + offset
    except OverflowError:  # an integer literal beyond float64
        converted = math.inf
    if math.isinf(converted) and not (isinstance(value, float) and math.isinf(value)):
        # A finite reading that overflows on conversion is implausibly large, not non-finite.
        return Rejection(Reason.OUT_OF_RANGE, f"{metric}: value {value!r:.40} {unit} is too large to convert")
    return converted
