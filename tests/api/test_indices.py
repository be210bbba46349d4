"""ISPU and US AQI as pure functions: every breakpoint, values between and beyond, bad input."""

from __future__ import annotations

import math

import pytest

from api.indices import (
    ISPU_CATEGORIES,
    ISPU_INDEX_POINTS,
    ISPU_POLLUTANTS,
    ISPU_TABLE,
    InvalidConcentration,
    SubIndex,
    UnitError,
    compute_site_index,
    compute_sub_index,
    compute_us_aqi_pm25,
    ispu_category,
    to_table_unit,
)
from smartcity.catalog import DEVICE_KINDS, METRICS

# The regulation's table, written out again here (ispu.md), so a typo in the module's data fails.
_REGULATION = {
    "pm10": (50, 150, 350, 420, 500),
    "pm25": (15.5, 55.4, 150.4, 250.4, 500),
    "so2": (52, 180, 400, 800, 1200),
    "co": (4000, 8000, 15000, 30000, 45000),
    "o3": (120, 235, 400, 800, 1000),
    "no2": (80, 200, 1130, 2260, 3000),
    "hc": (45, 100, 215, 432, 648),
}
_BANDS = [(pollutant, band) for pollutant in _REGULATION for band in range(5)]


def test_the_table_is_the_regulation_s_and_its_names_are_the_catalogue_s() -> None:
    assert {p: ISPU_TABLE[p][1:] for p in ISPU_TABLE} == _REGULATION
    assert all(points[0] == 0 for points in ISPU_TABLE.values())
    assert set(ISPU_POLLUTANTS) == set(DEVICE_KINDS["air_quality_station"].metrics)
    assert {METRICS[p].unit for p in ISPU_POLLUTANTS} == {"µg/m³"}
    assert [(c.id, c.name, c.color) for c in ISPU_CATEGORIES] == [
        ("baik", "Baik", "green"), ("sedang", "Sedang", "blue"), ("tidak_sehat", "Tidak Sehat", "yellow"),
        ("sangat_tidak_sehat", "Sangat Tidak Sehat", "red"), ("berbahaya", "Berbahaya", "black")]


@pytest.mark.parametrize(("pollutant", "band"), _BANDS)
def test_each_band_s_edges_give_the_band_s_index_bounds(pollutant: str, band: int) -> None:
    lower = ISPU_TABLE[pollutant][band]
    upper = ISPU_TABLE[pollutant][band + 1]
    at_lower, at_upper = compute_sub_index(pollutant, lower), compute_sub_index(pollutant, upper)

    assert at_lower.value == ISPU_INDEX_POINTS[band]
    assert at_upper.value == ISPU_INDEX_POINTS[band + 1]
    # The upper edge belongs to the band; the lower edge is the band below's upper edge.
    assert at_upper.category == ISPU_CATEGORIES[band]
    assert at_lower.category == ISPU_CATEGORIES[max(band - 1, 0)]
    assert not at_upper.beyond_scale
    # Just above the lower edge is inside the band, its index just above the band's lower bound.
    inside = compute_sub_index(pollutant, lower + 1e-6)
    assert inside.category == ISPU_CATEGORIES[band]
    assert ISPU_INDEX_POINTS[band] < inside.value < ISPU_INDEX_POINTS[band] + 0.01


@pytest.mark.parametrize(("pollutant", "band"), _BANDS)
def test_values_between_breakpoints_interpolate_linearly(pollutant: str, band: int) -> None:
    lower, upper = ISPU_TABLE[pollutant][band], ISPU_TABLE[pollutant][band + 1]
    i_low, i_high = ISPU_INDEX_POINTS[band], ISPU_INDEX_POINTS[band + 1]
    for share in (0.25, 0.5, 0.9):
        got = compute_sub_index(pollutant, lower + share * (upper - lower))
        assert got.value == pytest.approx(i_low + share * (i_high - i_low), rel=1e-12)
        assert got.category == ISPU_CATEGORIES[band]


@pytest.mark.parametrize(("pollutant", "concentration", "expected"), [
    ("pm25", 35.45, 75.0),          # halfway 15.5 → 55.4: (100 − 50) / 39.9 · 19.95 + 50
    ("pm10", 100, 75.0),
    ("co", 10000, 100 + 100 / 7000 * 2000),
    ("so2", 1000, 400.0),
    ("no2", 665, 100 + 100 / 930 * 465),
    ("hc", 540, 400.0),
    ("o3", 60, 25.0),
])
def test_worked_examples(pollutant: str, concentration: float, expected: float) -> None:
    assert compute_sub_index(pollutant, concentration).value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("pollutant", ISPU_POLLUTANTS)
def test_above_the_scale_is_capped_at_500_and_flagged(pollutant: str) -> None:
    top = ISPU_TABLE[pollutant][-1]
    for concentration in (top + 0.001, top * 3):
        got = compute_sub_index(pollutant, concentration)
        assert (got.value, got.beyond_scale, got.category.id) == (500.0, True, "berbahaya")
    assert compute_sub_index(pollutant, top).beyond_scale is False


@pytest.mark.parametrize("pollutant", ISPU_POLLUTANTS)
def test_zero_is_index_zero_good(pollutant: str) -> None:
    got = compute_sub_index(pollutant, 0.0)
    assert (got.value, got.category.id, got.beyond_scale) == (0.0, "baik", False)


@pytest.mark.parametrize(("value", "message"), [
    (-0.1, "negative"), (-1e-300, "negative"), (math.nan, "not a finite number"),
    (math.inf, "not a finite number"), (-math.inf, "not a finite number"),
])
def test_negative_and_non_finite_concentrations_are_refused_with_the_reason(
        value: float, message: str) -> None:
    with pytest.raises(InvalidConcentration, match=f"pm25: concentration .* {message}"):
        compute_sub_index("pm25", value)
    with pytest.raises(InvalidConcentration, match=message):
        compute_us_aqi_pm25(value)


def test_an_unknown_pollutant_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(InvalidConcentration, match="unknown pollutant 'pm1'; known: pm10, pm25, so2"):
        compute_sub_index("pm1", 10)


def _sub(pollutant: str, concentration: float) -> SubIndex:
    return compute_sub_index(pollutant, concentration)


def test_the_site_index_is_the_highest_sub_index_and_its_pollutant() -> None:
    subs = {"pm10": _sub("pm10", 80), "pm25": _sub("pm25", 120.0), "co": _sub("co", 9000),
            "o3": _sub("o3", 20)}
    got = compute_site_index(subs)

    assert got is not None
    assert got.dominant == "pm25"
    assert got.value == subs["pm25"].value
    assert got.ispu == math.ceil(subs["pm25"].value)
    assert (got.category.id, got.beyond_scale) == ("tidak_sehat", False)
    assert compute_site_index({}) is None


def test_a_tie_goes_to_the_pollutant_first_in_the_table_whatever_the_order_given() -> None:
    # Each at its band's upper column: the sub-indices are exactly 100.
    tied = [("hc", 100.0), ("so2", 180.0), ("pm25", 55.4)]
    for order in (tied, tied[::-1]):
        got = compute_site_index({p: _sub(p, c) for p, c in order})
        assert got is not None
        assert (got.dominant, got.ispu) == ("pm25", 100)
    beyond = compute_site_index({"pm10": _sub("pm10", 10), "co": _sub("co", 50000),
                                 "no2": _sub("no2", 4000)})
    assert beyond is not None
    assert (beyond.dominant, beyond.ispu, beyond.beyond_scale) == ("co", 500, True)


def test_gases_without_a_particulate_give_no_index_however_high() -> None:
    # A haze with the PM sensor silent would otherwise read from NO2 alone: "Baik".
    assert compute_site_index({"no2": _sub("no2", 30), "co": _sub("co", 2000)}) is None
    assert compute_site_index({"co": _sub("co", 50000)}) is None
    for particulate in ("pm10", "pm25"):
        only = compute_site_index({particulate: _sub(particulate, 10), "no2": _sub("no2", 30)})
        assert only is not None and only.dominant in (particulate, "no2")


def test_the_reported_ispu_rounds_up_into_its_category_s_range() -> None:
    just_above = compute_site_index({"pm10": _sub("pm10", 50.2)})
    assert just_above is not None
    assert (just_above.ispu, just_above.category.id) == (51, "sedang")
    assert ispu_category(just_above.ispu).id == "sedang"
    assert [ispu_category(i).id for i in (0, 50, 51, 100, 101, 200, 201, 300, 301, 500)] == [
        "baik", "baik", "sedang", "sedang", "tidak_sehat", "tidak_sehat", "sangat_tidak_sehat",
        "sangat_tidak_sehat", "berbahaya", "berbahaya"]


def test_units_are_converted_explicitly_before_the_lookup() -> None:
    assert to_table_unit("co", 4.0, "mg/m³") == 4000.0  # CO is often given in mg/m³
    assert compute_sub_index("co", to_table_unit("co", 8.0, "mg/m³")).value == 100.0
    assert to_table_unit("pm25", 12.5, "µg/m³") == 12.5
    assert to_table_unit("co", 1.0, "ppm") == pytest.approx(1145.6, abs=0.1)   # 28.01 / 24.45 · 1000
    assert to_table_unit("no2", 100.0, "ppb") == pytest.approx(188.2, abs=0.1)  # 46.01 / 24.45 · 100
    with pytest.raises(UnitError, match="pm25: ppb cannot be converted"):
        to_table_unit("pm25", 1.0, "ppb")
    with pytest.raises(UnitError, match="unknown unit 'g/l'"):
        to_table_unit("co", 1.0, "g/l")


@pytest.mark.parametrize(("concentration", "aqi", "category"), [
    (0.0, 0, "Good"), (9.0, 50, "Good"), (9.09, 50, "Good"), (9.1, 51, "Moderate"),
    (35.4, 100, "Moderate"), (35.49, 100, "Moderate"), (35.5, 101, "Unhealthy for Sensitive Groups"),
    (55.4, 150, "Unhealthy for Sensitive Groups"), (55.5, 151, "Unhealthy"), (125.4, 200, "Unhealthy"),
    (125.5, 201, "Very Unhealthy"), (225.4, 300, "Very Unhealthy"), (225.5, 301, "Hazardous"),
    (325.4, 500, "Hazardous"),
    # Between: 22.25 → 22.2 → (100 − 51) / 26.3 · 13.1 + 51 = 75.4 → 75; 4.5 → 25; 2.3 stays 2.3.
    (22.25, 75, "Moderate"), (4.5, 25, "Good"), (2.3, 13, "Good"),
])
def test_us_aqi_pm25_2024_edges(concentration: float, aqi: int, category: str) -> None:
    got = compute_us_aqi_pm25(concentration)
    assert (got.aqi, got.category, got.beyond_scale) == (aqi, category, False)


def test_us_aqi_truncates_before_the_lookup_and_caps_above_the_scale() -> None:
    assert compute_us_aqi_pm25(9.09).concentration == 9.0
    assert compute_us_aqi_pm25(2.3).concentration == 2.3
    above = compute_us_aqi_pm25(325.5)
    assert (above.aqi, above.category, above.beyond_scale) == (500, "Hazardous", True)
