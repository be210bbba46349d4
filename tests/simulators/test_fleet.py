"""Fleets: the Paser demo fleet, generated fleets, and per-device random streams."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from simulators.fleet import (
    DeviceSpec,
    SimulatedDevice,
    build_fleet,
    demo_fleet,
    device_rng,
    device_seed,
)
from smartcity.catalog import DEVICE_KINDS, SITES, is_valid_device_id

TIMES = 1_790_000_000.0 + np.arange(0.0, 3600.0, 600.0)


def _near_site(spec: DeviceSpec, degrees: float) -> bool:
    site = SITES[spec.site_id]
    return abs(spec.latitude - site.latitude) <= degrees \
        and abs(spec.longitude - site.longitude) <= degrees


def test_demo_fleet_covers_every_kind_and_site_with_valid_unique_ids() -> None:
    fleet = demo_fleet()
    ids = [spec.device_id for spec in fleet]
    assert 25 <= len(fleet) <= 45
    assert len(set(ids)) == len(ids)
    assert all(is_valid_device_id(device_id) for device_id in ids)
    assert {spec.kind for spec in fleet} == set(DEVICE_KINDS)
    assert {spec.site_id for spec in fleet} == set(SITES)
    assert all(_near_site(spec, 0.02) for spec in fleet)
    assert demo_fleet() == fleet


def test_demo_fleet_places_stations_in_every_district_and_water_devices_on_the_rivers() -> None:
    by_kind: dict[str, set[str]] = {}
    for spec in demo_fleet():
        by_kind.setdefault(spec.kind, set()).add(spec.site_id)
    assert by_kind["air_quality_station"] == by_kind["weather_station"] == set(SITES)
    assert by_kind["river_level_sensor"] == {"tanah-grogot", "long-ikis", "kuaro"}
    assert by_kind["water_quality_sonde"] == {"tanah-grogot"}
    assert by_kind["noise_monitor"] == {"tanah-grogot", "long-ikis"}
    for kind in ("street_light", "waste_bin", "water_meter"):
        assert by_kind[kind] == {"tanah-grogot"}
    assert "aq-tanah-grogot-01" in {spec.device_id for spec in demo_fleet()}


@pytest.mark.parametrize("size", [0, 1, 8, 250])
def test_build_fleet_makes_unique_valid_devices_of_every_kind(size: int) -> None:
    fleet = build_fleet(size, seed=3)
    ids = [spec.device_id for spec in fleet]
    assert len(fleet) == size and len(set(ids)) == size
    assert all(is_valid_device_id(device_id) for device_id in ids)
    assert all(_near_site(spec, 0.06) for spec in fleet)
    if size >= len(DEVICE_KINDS):
        assert {spec.kind for spec in fleet} == set(DEVICE_KINDS)


def test_build_fleet_is_deterministic_per_seed_and_honours_kinds() -> None:
    assert build_fleet(50, seed=1) == build_fleet(50, seed=1)
    assert build_fleet(50, seed=1) != build_fleet(50, seed=2)
    lights = build_fleet(20, seed=1, kinds=["street_light", "water_meter"])
    assert {spec.kind for spec in lights} == {"street_light", "water_meter"}


@pytest.mark.parametrize(("size", "kinds"), [(-1, None), (3, ["toaster"]), (3, [])])
def test_build_fleet_rejects_bad_arguments(size: int, kinds: list[str] | None) -> None:
    with pytest.raises(ValueError):
        build_fleet(size, seed=1, kinds=kinds)


@pytest.mark.parametrize(("field", "value"), [
    ("device_id", "AQ Tanah Grogot"), ("kind", "toaster"), ("site_id", "jakarta"),
])
def test_device_spec_rejects_what_the_contract_does_not_know(field: str, value: str) -> None:
    spec = DeviceSpec("aq-tanah-grogot-01", "air_quality_station", "tanah-grogot", -1.9, 116.2)
    with pytest.raises(ValueError):
        replace(spec, **{field: value})


def test_device_spec_keeps_its_password_out_of_repr() -> None:
    spec = DeviceSpec("aq-kuaro-01", "air_quality_station", "kuaro", -1.8, 116.0,
                      mqtt_username="aq-kuaro-01", mqtt_password="s3cret")
    assert "s3cret" not in repr(spec)


def test_device_seed_is_a_stable_hash_of_seed_and_id() -> None:
    # A golden value: the same in every process, whatever PYTHONHASHSEED says.
    assert device_seed(1, "aq-tanah-grogot-01") == 8491273697562366599
    assert device_seed(2, "aq-tanah-grogot-01") != device_seed(1, "aq-tanah-grogot-01")
    assert device_rng(1, "x-1").random() == device_rng(1, "x-1").random()


def test_a_device_reads_the_same_whichever_fleet_it_runs_in() -> None:
    fleet = demo_fleet()
    alone = SimulatedDevice.create(fleet[0], seed=9).sample(TIMES)
    for spec in reversed(fleet):  # other devices drawing first must not change its stream
        device = SimulatedDevice.create(spec, seed=9)
        readings = device.sample(TIMES)
    assert set(readings) == set(DEVICE_KINDS[fleet[0].kind].metrics)
    for name, values in alone.items():
        np.testing.assert_array_equal(values, readings[name])
    other_seed = SimulatedDevice.create(fleet[0], seed=10).sample(TIMES)
    assert any(not np.array_equal(alone[name], other_seed[name]) for name in alone)


def test_build_fleet_keeps_the_fleets_it_made_before_kinds_could_be_weighted() -> None:
    # A golden value: fleets of earlier releases (and their stored histories) keep their ids.
    assert [spec.device_id for spec in build_fleet(4, seed=1)] == [
        "aq-muara-samu-0001", "wx-muara-komam-0002", "river-tanah-grogot-0003",
        "wq-tanah-grogot-0004"]


def test_build_fleet_mixes_kinds_by_weight_evenly_along_the_fleet() -> None:
    mix = {"air_quality_station": 3, "river_level_sensor": 1}
    fleet = build_fleet(1000, seed=5, mix=mix)
    assert Counter(spec.kind for spec in fleet) == {"air_quality_station": 750,
                                                    "river_level_sensor": 250}
    for size in (4, 10, 37, 101):  # every prefix keeps the mix, to within one device
        rivers = sum(spec.kind == "river_level_sensor" for spec in fleet[:size])
        assert abs(rivers - size / 4) <= 1
    assert build_fleet(1000, seed=5, mix=mix) == fleet
    assert {spec.kind for spec in build_fleet(50, seed=5, mix={"waste_bin": 1, "noise_monitor": 0})} \
        == {"waste_bin"}


def test_build_fleet_restricts_or_weights_the_districts() -> None:
    only = build_fleet(40, seed=2, sites=["kuaro", "long-ikis"])
    assert {spec.site_id for spec in only} == {"kuaro", "long-ikis"}
    weighted = Counter(spec.site_id for spec in build_fleet(
        2000, seed=2, sites={"tanah-grogot": 4, "kuaro": 1}))
    assert set(weighted) == {"tanah-grogot", "kuaro"}
    assert 0.75 < weighted["tanah-grogot"] / 2000 < 0.85
    fleet = build_fleet(300, seed=2, sites={"batu-sopang": 1}, mix={"weather_station": 1})
    ids = [spec.device_id for spec in fleet]
    assert len(set(ids)) == len(ids) and all(is_valid_device_id(i) for i in ids)
    assert all(_near_site(spec, 0.06) for spec in fleet)


@pytest.mark.parametrize("arguments", [
    {"sites": ["jakarta"]}, {"sites": []}, {"sites": {"kuaro": -1}}, {"sites": {"kuaro": 0}},
    {"mix": {"toaster": 1}}, {"mix": {"waste_bin": 0}}, {"mix": {"waste_bin": float("nan")}},
    {"mix": {"waste_bin": 1}, "kinds": ["waste_bin"]},
])
def test_build_fleet_rejects_bad_mixes_and_sites(arguments: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_fleet(10, seed=1, **arguments)  # type: ignore[arg-type]
