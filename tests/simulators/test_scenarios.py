"""Scenarios: named and described, and each bad day as bad as it should be, checked by statistics."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.fleet import KIND_PREFIXES, DeviceSpec, SimulatedDevice
from simulators.models.river_level_sensor import GAUGES, WARNING_LEVELS_M
from simulators.models.signals import UTC_OFFSET_S, local_day, local_hour
from simulators.scenarios import (
    FAULT_NAMES,
    SCENARIOS,
    FloodEvent,
    HazeEpisode,
    Scenario,
    get_scenario,
)
from smartcity.catalog import DEVICE_KINDS, METRICS, SITES

HOUR, DAY = 3600.0, 86_400.0
ANCHOR = datetime(2026, 8, 9, 16, 0, tzinfo=UTC).timestamp()  # 2026-08-10 00:00 WITA, dry season
SEEDS = (1, 2, 3)
ISPU_PM25_SEDANG_MAX = 55.4  # µg/m³: above it, ISPU "Tidak Sehat" or worse


def _device(kind: str, site_id: str, scenario: str, seed: int, number: int = 1,
            anchor: float = ANCHOR) -> SimulatedDevice:
    site = SITES[site_id]
    spec = DeviceSpec(f"{KIND_PREFIXES[kind]}-{site_id}-{number:02d}", kind, site_id,
                      site.latitude, site.longitude)
    return SimulatedDevice.create(spec, seed, get_scenario(scenario), anchor)


def _haze() -> HazeEpisode:
    haze = SCENARIOS["haze"].haze
    assert haze is not None
    return haze


def _flood() -> FloodEvent:
    flood = SCENARIOS["flood"].flood
    assert flood is not None
    return flood


def _daily_means(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    days = local_day(times)
    starts = np.unique(days)
    return starts, np.array([values[days == day].mean() for day in starts])


# names and descriptions ---------------------------------------------------------------------

def test_the_four_scenarios_are_named_and_described_in_a_sentence_or_two() -> None:
    assert list(SCENARIOS) == ["normal", "haze", "flood", "sensor-faults"]
    for name, scenario in SCENARIOS.items():
        assert scenario.name == name
        assert 40 < len(scenario.description) < 400, name
        assert scenario.description.endswith(".") and scenario.description.count(". ") <= 1, name


def test_get_scenario_finds_by_name_and_lists_the_names_when_it_cannot() -> None:
    assert get_scenario("flood") is SCENARIOS["flood"]
    with pytest.raises(ValueError, match="'smog'.*normal, haze, flood, sensor-faults"):
        get_scenario("smog")


def test_only_sensor_faults_injects_faults_a_few_percent_each() -> None:
    faults = SCENARIOS["sensor-faults"].faults
    assert set(faults) == set(FAULT_NAMES)
    assert all(0.0 < probability <= 0.05 for probability in faults.values())
    assert all(not SCENARIOS[name].faults for name in ("normal", "haze", "flood"))
    assert SCENARIOS["haze"].haze is not None and SCENARIOS["flood"].flood is not None


@pytest.mark.parametrize(("faults", "message"), [
    ({"gremlins": 0.1}, "unknown faults"),
    ({"spike": 1.5}, "probability of spike"),
])
def test_scenario_rejects_unknown_faults_and_impossible_probabilities(
        faults: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scenario("odd", "Odd.", faults=faults)


def test_scenario_faults_cannot_be_changed_afterwards() -> None:
    with pytest.raises(TypeError):
        SCENARIOS["sensor-faults"].faults["spike"] = 1.0  # type: ignore[index]


# haze -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_haze_lifts_pm25_daily_means_past_tidak_sehat_with_co_and_pm10_while_normal_stays_below(
        seed: int) -> None:
    times = ANCHOR + np.arange(0.0, 16 * DAY, 600.0)
    normal = _device("air_quality_station", "tanah-grogot", "normal", seed).sample(times)
    hazy = _device("air_quality_station", "tanah-grogot", "haze", seed).sample(times)
    plateau_start, plateau_end = _haze().plateau(ANCHOR)
    days, hazy_pm25 = _daily_means(times, hazy["pm25"])
    _, normal_pm25 = _daily_means(times, normal["pm25"])
    _, hazy_co = _daily_means(times, hazy["co"])
    _, normal_co = _daily_means(times, normal["co"])
    midnights = days * DAY - UTC_OFFSET_S
    on_plateau = (midnights >= plateau_start) & (midnights + DAY <= plateau_end)

    assert on_plateau.sum() >= 5
    assert np.all(hazy_pm25[on_plateau] > ISPU_PM25_SEDANG_MAX), hazy_pm25.round()
    assert np.all(normal_pm25 < 55.0), normal_pm25.round()
    assert np.mean(hazy_pm25[on_plateau]) > 150.0  # mostly "Sangat Tidak Sehat" or worse
    assert np.all(hazy_co[on_plateau] > 2.0 * normal_co[on_plateau]), (hazy_co / normal_co).round(1)
    assert np.all(hazy["pm10"] >= hazy["pm25"])
    # Smoke builds over days and clears: before and after the episode the air is as on a normal day.
    assert hazy_pm25[1] < hazy_pm25[2] < hazy_pm25[on_plateau].min()
    first, last = _haze().window(ANCHOR)
    outside = (times <= first) | (times >= last)
    assert outside.sum() > 2 * 144
    for name in ("pm25", "pm10", "co"):
        np.testing.assert_array_equal(hazy[name][outside], normal[name][outside])


def test_haze_keeps_a_daily_cycle_thickest_in_the_night_and_morning() -> None:
    times = ANCHOR + np.arange(0.0, 16 * DAY, 600.0)
    plateau_start, plateau_end = _haze().plateau(ANCHOR)
    on_plateau = (times >= plateau_start) & (times < plateau_end)
    pm25 = _device("air_quality_station", "tanah-grogot", "haze", 4).sample(times)["pm25"]
    hours = np.floor(local_hour(times)).astype(int)
    hourly = np.array([pm25[on_plateau & (hours == hour)].mean() for hour in range(24)])
    assert 2 <= int(np.argmax(hourly)) <= 8 and 12 <= int(np.argmin(hourly)) <= 18, hourly.round()
    assert hourly.max() > 1.8 * hourly.min()


def test_haze_all_but_stops_the_storms() -> None:
    times = ANCHOR + np.arange(0.0, 16 * DAY, 600.0)
    plateau_start, plateau_end = _haze().plateau(ANCHOR)
    on_plateau = (times >= plateau_start) & (times < plateau_end)
    storms = dict.fromkeys(("normal", "haze"), 0)
    for scenario in storms:
        for seed in SEEDS:
            for site_id in ("kuaro", "long-kali", "muara-komam"):
                rainfall = _device("weather_station", site_id, scenario, seed).sample(times)["rainfall"]
                wet = (rainfall > 0) & on_plateau
                storms[scenario] += int(np.sum(wet[1:] & ~wet[:-1]))
    assert storms["normal"] >= 10 and storms["haze"] <= 0.25 * storms["normal"], storms


def test_the_anchor_places_the_episode() -> None:
    times = ANCHOR + np.arange(0.0, 8 * DAY, 3600.0)
    later = ANCHOR + 3 * DAY
    normal, early, late = (_device("air_quality_station", "kuaro", scenario, 5, anchor=anchor)
                           .sample(times)["pm25"]
                           for scenario, anchor in (("normal", ANCHOR), ("haze", ANCHOR), ("haze", later)))
    smoke_free = times <= later + _haze().start_s
    np.testing.assert_array_equal(late[smoke_free], normal[smoke_free])
    assert early[smoke_free].mean() > 2.0 * normal[smoke_free].mean()
    assert late[~smoke_free].mean() > 2.0 * normal[~smoke_free].mean()


# flood and rivers ------------------------------------------------------------------------------

@pytest.mark.parametrize("site_id", sorted(GAUGES))
def test_flood_crests_above_awas_a_travel_time_after_the_rain_stops_then_recedes(site_id: str) -> None:
    times = ANCHOR + np.arange(0.0, 5 * DAY, 600.0)
    rain_start, rain_end = _flood().rain_window(ANCHOR)
    for seed in SEEDS:
        level = _device("river_level_sensor", site_id, "flood", seed).sample(times)["water_level"]
        crest = int(np.argmax(level))
        assert level[crest] > WARNING_LEVELS_M["awas"], level.max()
        assert level[times < rain_start].max() < WARNING_LEVELS_M["waspada"]
        lag_h = (times[crest] - rain_end) / HOUR
        assert lag_h == pytest.approx(GAUGES[site_id].lag_h, abs=0.5)
        two_days_on = times >= times[crest] + 2 * DAY
        assert level[two_days_on].max() < WARNING_LEVELS_M["siaga"]
        receding = level[crest + np.array([0, 6 * 12, 6 * 24, 6 * 48])]  # now, +12 h, +1 d, +2 d
        assert np.all(np.diff(receding) < -0.1), receding.round(2)


def test_flood_rain_falls_on_the_weather_stations_too() -> None:
    times = ANCHOR + np.arange(0.0, 2 * DAY, 600.0)
    rain_start, rain_end = _flood().rain_window(ANCHOR)
    rainfall = _device("weather_station", "tanah-grogot", "flood", 1).sample(times)["rainfall"]
    during = (times > rain_start) & (times <= rain_end)
    assert rainfall[during].sum() == pytest.approx(240.0, rel=0.25)
    assert np.all(rainfall[during] > 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_in_normal_weather_the_river_peaks_a_travel_time_after_each_isolated_storm(seed: int) -> None:
    # Kuaro's gauge is upstream of the tide, so its peaks are the rain's alone. Wet season.
    times = ANCHOR + np.arange(90 * DAY, 180 * DAY, 600.0)
    lag = GAUGES["kuaro"].lag_h * HOUR
    rain = _device("weather_station", "kuaro", "normal", seed).sample(times)["rainfall"]
    level = _device("river_level_sensor", "kuaro", "normal", seed).sample(times)["water_level"]
    wet = rain > 0
    starts = np.flatnonzero(~wet[:-1] & wet[1:]) + 1
    ends = np.flatnonzero(wet[:-1] & ~wet[1:])
    errors = []
    for end in ends[ends > starts[0]]:
        start = starts[starts <= end][-1]
        before = (times >= times[start] - lag - 12 * HOUR) & (times < times[start])
        after = (times > times[end]) & (times <= times[end] + lag + 3 * HOUR)
        if rain[start:end + 1].sum() < 10.0 or wet[before].any() or wet[after].any() \
                or times[end] + lag + 3 * HOUR > times[-1]:
            continue  # small, or another storm muddles the response
        window = (times >= times[start]) & (times <= times[end] + lag + 3 * HOUR)
        peak = int(np.argmax(np.where(window, level, -np.inf)))
        errors.append((times[peak] - times[end] - lag) / HOUR)
    assert len(errors) >= 8
    assert np.all(np.abs(errors) <= 1.0), np.round(errors, 2)
    assert np.median(np.abs(errors)) <= 0.25


def test_normal_rivers_rise_modestly_after_rain_and_stay_under_siaga() -> None:
    times = ANCHOR + np.arange(0.0, 60 * DAY, 1800.0)
    for site_id in GAUGES:
        level = _device("river_level_sensor", site_id, "normal", 7).sample(times)["water_level"]
        assert level.max() < WARNING_LEVELS_M["siaga"], site_id
        assert 0.5 < level.max() - np.median(level) < 2.0, site_id


@pytest.mark.parametrize("site_id", ["kuaro", "tanah-grogot"])
def test_turbidity_rises_with_the_river_at_the_same_site(site_id: str) -> None:
    times = ANCHOR + np.arange(0.0, 30 * DAY, 1800.0)
    for scenario in ("normal", "flood"):
        level = _device("river_level_sensor", site_id, scenario, 2).sample(times)["water_level"]
        turbidity = _device("water_quality_sonde", site_id, scenario, 2).sample(times)["turbidity"]
        assert np.corrcoef(np.log(turbidity), level)[0, 1] > 0.6, scenario
        if scenario == "flood":
            assert turbidity[np.argmax(level)] > 5.0 * np.median(turbidity)


def test_devices_at_one_site_share_its_storms_and_other_sites_have_their_own() -> None:
    times = ANCHOR + np.arange(0.0, 30 * DAY, 600.0)
    first, second = (_device("weather_station", "kuaro", "normal", 9, number).sample(times)["rainfall"] > 0
                     for number in (1, 2))
    elsewhere = _device("weather_station", "long-kali", "normal", 9).sample(times)["rainfall"] > 0
    np.testing.assert_array_equal(first, second)
    assert first.any() and np.mean(first == elsewhere) < np.mean(first == second)


# every scenario -----------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_kind_stays_inside_the_catalogue_in_every_scenario(scenario: str) -> None:
    times = ANCHOR + np.arange(0.0, 14 * DAY, 1200.0)
    for seed in SEEDS:
        for kind in sorted(DEVICE_KINDS):
            values = _device(kind, "tanah-grogot", scenario, seed).sample(times)
            assert set(values) == set(DEVICE_KINDS[kind].metrics)
            for name, array in values.items():
                metric = METRICS[name]
                assert np.isfinite(array).all(), (kind, name)
                assert metric.min_value <= array.min() and array.max() <= metric.max_value, (kind, name)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_same_seed_and_anchor_give_the_same_readings(scenario: str) -> None:
    times = ANCHOR + np.arange(0.0, 4 * DAY, 900.0)
    for kind in sorted(DEVICE_KINDS):
        first, again = (_device(kind, "kuaro", scenario, 11).sample(times) for _ in range(2))
        other = _device(kind, "kuaro", scenario, 12).sample(times)
        for name in first:
            np.testing.assert_array_equal(first[name], again[name])
        assert any(not np.array_equal(first[name], other[name]) for name in first), kind


def test_without_an_anchor_the_scenario_starts_now() -> None:
    spec = DeviceSpec("aq-kuaro-01", "air_quality_station", "kuaro", -1.842, 116.028)
    before = time.time()
    device = SimulatedDevice.create(spec, 1, SCENARIOS["haze"])
    assert before <= device.conditions.anchor <= time.time()
    assert SimulatedDevice.create(spec, 1).conditions.scenario is None
