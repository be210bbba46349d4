"""Unit conversion to the catalogue unit: the contract's factors, identities and refusals."""

from __future__ import annotations

import math

import pytest

from ingest.units import ACCEPTED_UNITS, MOLAR_VOLUME_L, to_catalogue_unit
from smartcity.catalog import METRICS
from smartcity.contract import Reason, Rejection


def test_every_catalogue_metric_accepts_its_own_unit_unchanged() -> None:
    assert set(ACCEPTED_UNITS) == set(METRICS)
    for name, metric in METRICS.items():
        assert to_catalogue_unit(name, metric.unit, 7) == 7


@pytest.mark.parametrize(("metric", "unit", "value", "expected"), [
    ("temperature", "K", 273.15, 0.0),
    ("temperature", "K", 303.15, 30.0),
    ("water_temperature", "K", 298.15, 25.0),
    ("temperature", "Cel", 21.5, 21.5),
    ("pressure", "Pa", 101325, 1013.25),
    ("pressure", "kPa", 101.325, 1013.25),
    # µg/m³ = ppm × M × 1000 / 24.45 (25 °C, 1 atm)
    ("co", "ppm", 1, 28.01 * 1000 / 24.45),
    ("no2", "ppm", 1, 46.0055 * 1000 / 24.45),
    ("o3", "ppm", 1, 47.9982 * 1000 / 24.45),
    ("so2", "ppm", 1, 64.066 * 1000 / 24.45),
    ("so2", "ppb", 1000, 64.066 * 1000 / 24.45),
    ("no2", "ppb", 21.3, 40.08),  # WHO's 40 µg/m³ annual guideline is ≈ 21 ppb
    ("co", "mg/m3", 4, 4000),
    ("humidity", "%RH", 80, 80),
    ("wind_speed", "km/h", 36, 10),
    ("wind_direction", "rad", math.pi, 180),
    ("wind_direction", "deg", 270, 270),
    ("water_level", "cm", 150, 1.5),
    ("water_level", "mm", 1500, 1.5),
    ("rainfall", "cm", 2, 20),
    ("conductivity", "S/m", 0.05, 500),
    ("dissolved_oxygen", "kg/m3", 0.007, 7),
    ("lamp_power", "kW", 0.1, 100),
    ("energy", "Wh", 2500, 2.5),
    ("energy", "J", 3.6e6, 1),
    ("water_volume", "l", 1000, 1),
    ("water_pressure", "Pa", 250000, 2.5),
    ("water_pressure", "kPa", 250, 2.5),
    ("fill_level", "/", 0.5, 50),
    ("fill_level", "/100", 50, 50),
])
def test_standard_factors(metric: str, unit: str, value: float, expected: float) -> None:
    assert to_catalogue_unit(metric, unit, value) == pytest.approx(expected, rel=1e-3)


def test_ppm_molar_volume_is_25_degrees_and_1_atm() -> None:
    # V = RT/p = 8.314462618 × 298.15 / 101325 m³/mol
    molar_volume = 8.314462618 * 298.15 / 101325 * 1000
    assert molar_volume == pytest.approx(MOLAR_VOLUME_L, rel=1e-3)


@pytest.mark.parametrize(("metric", "unit"), [
    ("pm25", "ppm"), ("pm10", "ppb"), ("hc", "ppm"),  # no single molar mass: no factor exists
    ("temperature", "degF"), ("temperature", "C"), ("pressure", "bar"), ("pressure", "mmHg"),
    ("wind_speed", "kn"), ("humidity", "/"), ("noise_level", "dB"), ("lamp_on", "W"),
    ("co", ""), ("co", "PPM"),  # symbols are case-sensitive (SenML: "case-sensitive" names)
])
def test_units_without_a_standard_factor_are_a_mismatch(metric: str, unit: str) -> None:
    result = to_catalogue_unit(metric, unit, 1)
    assert isinstance(result, Rejection)
    assert result.reason is Reason.UNIT_MISMATCH
    assert metric in result.detail and METRICS[metric].unit in result.detail


def test_absent_unit_means_the_catalogue_unit_and_keeps_the_value_exactly() -> None:
    assert to_catalogue_unit("pm25", None, 10**400) == 10**400
    assert to_catalogue_unit("pm25", "ug/m3", 10**400) == 10**400


def test_unknown_metric_is_left_for_the_validator() -> None:
    assert to_catalogue_unit("radon", "Bq", 3) == 3
    assert to_catalogue_unit("radon", "nonsense", 3) == 3


def test_overflowing_conversion_is_out_of_range_not_a_crash() -> None:
    for value in (10**400, 1e307):
        result = to_catalogue_unit("co", "mg/m3", value)
        assert isinstance(result, Rejection) and result.reason is Reason.OUT_OF_RANGE


def test_non_finite_values_pass_through_for_the_validator() -> None:
    assert math.isnan(to_catalogue_unit("temperature", "K", math.nan))  # type: ignore[arg-type]
    assert to_catalogue_unit("temperature", "K", -math.inf) == -math.inf
    assert to_catalogue_unit("pressure", "Pa", math.inf) == math.inf
