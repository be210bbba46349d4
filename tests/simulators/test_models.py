"""Device-kind models: complete, inside the catalogue, deterministic, and physically plausible."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from simulators.models import MODELS, ModelState
from simulators.models.signals import UTC_OFFSET_S, local_hour
from smartcity.catalog import DEVICE_KINDS, METRICS

DAY = 86_400.0
START = datetime(2026, 11, 26, 16, 0, tzinfo=UTC).timestamp()  # 2026-11-27 00:00 WITA
FOUR_DAYS = START + np.arange(0.0, 4 * DAY, 600.0)
KINDS = sorted(DEVICE_KINDS)
SEEDS = (0, 7, 20261127)
CUMULATIVE = [(kind, metric) for kind in KINDS for metric in DEVICE_KINDS[kind].metrics
              if METRICS[metric].cumulative]


def _run(kind: str, seed: int, times: np.ndarray, state: ModelState | None = None,
         ) -> dict[str, np.ndarray]:
    return MODELS[kind](np.random.default_rng(seed), times, state or ModelState())


def _by_local_hour(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    hours = np.floor(local_hour(times)).astype(int)
    return np.array([values[hours == hour].mean() for hour in range(24)])


def test_every_device_kind_has_a_model() -> None:
    assert set(MODELS) == set(DEVICE_KINDS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", KINDS)
def test_model_returns_every_metric_of_its_kind_inside_the_catalogue_range(
        kind: str, seed: int) -> None:
    values = _run(kind, seed, FOUR_DAYS)
    assert set(values) == set(DEVICE_KINDS[kind].metrics)
    for name, array in values.items():
        metric = METRICS[name]
        assert array.shape == FOUR_DAYS.shape, name
        assert np.isfinite(array).all(), name
        assert array.min() >= metric.min_value, (name, array.min())
        assert array.max() <= metric.max_value, (name, array.max())


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_values_and_another_seed_different_ones(kind: str) -> None:
    first, again, other = (_run(kind, seed, FOUR_DAYS) for seed in (5, 5, 6))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[name], other[name]) for name in first)


@pytest.mark.parametrize("kind", KINDS)
def test_model_accepts_a_single_time_and_no_state(kind: str) -> None:
    values = MODELS[kind](np.random.default_rng(1), START)
    assert {name: array.shape for name, array in values.items()} == {
        name: (1,) for name in DEVICE_KINDS[kind].metrics}


@pytest.mark.parametrize(("kind", "metric"), CUMULATIVE)
def test_cumulative_metrics_never_decrease_within_and_across_calls(kind: str, metric: str) -> None:
    rng, state = np.random.default_rng(3), ModelState()
    chunks = [MODELS[kind](rng, FOUR_DAYS[i:i + 100], state)[metric]
              for i in range(0, FOUR_DAYS.size, 100)]
    series = np.concatenate(chunks)
    assert np.all(np.diff(series) >= 0)
    assert series[-1] > series[0]


def test_temperature_peaks_early_afternoon_and_is_lowest_around_dawn() -> None:
    times = START + np.arange(0.0, 30 * DAY, 600.0)
    for seed in SEEDS:
        values = _run("weather_station", seed, times)
        hourly = _by_local_hour(times, values["temperature"])
        assert 12 <= int(np.argmax(hourly)) <= 14, hourly.round(1)
        assert 4 <= int(np.argmin(hourly)) <= 6, hourly.round(1)
        assert hourly.min() >= 22.0 and hourly.max() <= 34.0, hourly.round(1)


def test_humidity_moves_against_temperature_and_pressure_has_its_tide() -> None:
    times = START + np.arange(0.0, 30 * DAY, 600.0)
    values = _run("weather_station", 11, times)
    assert np.corrcoef(values["temperature"], values["humidity"])[0, 1] < -0.7
    pressure = _by_local_hour(times, values["pressure"])
    assert pressure[10] > pressure[16] and pressure[22] > pressure[4]
    assert values["pressure"].min() > 1007.0 and values["pressure"].max() < 1013.5


def test_rain_is_occasional() -> None:
    times = START + np.arange(0.0, 60 * DAY, 600.0)
    rainfall = _run("weather_station", 2, times)["rainfall"]
    assert 0.8 < np.mean(rainfall == 0.0) < 0.98
    assert 100.0 < rainfall.sum() < 1500.0  # 60 days of a ~2,500 mm/year climate


def test_rain_falls_in_bursts_mostly_in_the_afternoon_and_evening() -> None:
    times = START + np.arange(0.0, 60 * DAY, 600.0)
    for seed in SEEDS:
        rainfall = _run("weather_station", seed, times)["rainfall"]
        hours = local_hour(times)
        afternoon = (hours >= 13.0) & (hours < 21.0)
        assert rainfall[afternoon].sum() > 0.6 * rainfall.sum()
        wet = rainfall[rainfall > 0]
        assert np.percentile(wet, 95) > 3.0 * np.median(wet)  # a few downpours, many drizzles
        runs = np.flatnonzero(np.diff((rainfall > 0).astype(int)) == 1)
        assert 15 < runs.size < 120  # storms, not a steady drip: about one every day or two


def test_pm25_rises_at_rush_hours() -> None:
    times = START + np.arange(0.0, 20 * DAY, 600.0)
    hourly = _by_local_hour(times, _run("air_quality_station", 4, times)["pm25"])
    assert hourly[7] > 1.3 * hourly[13] and hourly[18] > 1.3 * hourly[13]
    assert hourly.min() > 5.0 and hourly.max() < 45.0


@pytest.mark.parametrize("seed", SEEDS)
def test_street_light_is_on_at_night_off_at_noon_and_meters_its_energy(seed: int) -> None:
    days = START + DAY * np.arange(4.0)
    at_23, at_12 = days + 23 * 3600.0, days + 12 * 3600.0
    assert np.all((at_23 + UTC_OFFSET_S) % DAY == 23 * 3600.0)
    night, noon = _run("street_light", seed, at_23), _run("street_light", seed, at_12)
    assert np.all(night["lamp_on"] == 1.0) and np.all(noon["lamp_on"] == 0.0)
    working = (night["lamp_power"] > 55.0) & (night["lamp_power"] < 130.0)
    assert np.all(working | (night["lamp_power"] < 2.0))  # a dead lamp draws its standby power
    assert np.all(noon["lamp_power"] == 0.0)

    # A day's energy is the lamp's power over its ~11¾ hours dusk to dawn.
    day = _run("street_light", seed, START + np.arange(0.0, DAY + 1.0, 600.0))
    used_kwh = day["energy"][-1] - day["energy"][0]
    watts = day["lamp_power"][day["lamp_on"] == 1.0].mean()
    assert used_kwh == pytest.approx(watts * 11.75 / 1000.0, rel=0.05)


def test_lamps_fail_rarely_stay_dead_for_days_and_still_report_on() -> None:
    nights = START + 23 * 3600.0 + DAY * np.arange(2 * 365.0)
    dead_share, spells = [], []
    for seed in range(12):
        values = _run("street_light", seed, nights)
        dead = (values["lamp_on"] == 1.0) & (values["lamp_power"] < 2.0)
        assert np.all(values["lamp_on"] == 1.0)
        dead_share.append(dead.mean())
        edges = np.flatnonzero(np.diff(np.concatenate(([0], dead.astype(int), [0]))))
        spells.extend(edges[1::2] - edges[::2])
    assert 0.001 < np.mean(dead_share) < 0.03, dead_share
    assert len(spells) >= 5 and np.percentile(spells, 90) <= 4, spells  # repaired in 1-4 days


def test_waste_bin_fills_up_and_is_emptied_on_collection() -> None:
    times = START + np.arange(0.0, 10 * DAY, 600.0)
    fill = _run("waste_bin", 8, times)["fill_level"]
    drops = np.flatnonzero(np.diff(fill) < 0)
    assert drops.size >= 3  # collected every one to three days
    assert np.all(fill[drops + 1] < 5.0)  # a collection leaves a few % behind
    assert fill.max() > 20.0


def test_water_meter_counts_a_household_s_daily_use() -> None:
    times = START + np.arange(0.0, 7 * DAY + 1.0, 600.0)
    for seed in SEEDS:
        values = _run("water_meter", seed, times)
        per_day = (values["water_volume"][-1] - values["water_volume"][0]) / 7
        assert 0.2 < per_day < 5.0
        assert values["water_pressure"].min() > 1.0 and values["water_pressure"].max() < 3.5


@pytest.mark.parametrize("seed", SEEDS)
def test_water_models_stay_in_a_lowland_river_s_ranges(seed: int) -> None:
    river = _run("river_level_sensor", seed, FOUR_DAYS)["water_level"]
    assert river.min() > 0.5 and river.max() < 3.5
    sonde = _run("water_quality_sonde", seed, FOUR_DAYS)
    assert sonde["water_ph"].min() > 6.4 and sonde["water_ph"].max() < 7.6
    assert sonde["dissolved_oxygen"].min() > 4.0 and sonde["dissolved_oxygen"].max() < 8.5
    assert sonde["water_temperature"].min() > 25.0 and sonde["water_temperature"].max() < 32.0
