"""GET /api/v1/ispu against the real database, readings stored through the writer and rolled up."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.indices import compute_sub_index, compute_us_aqi_pm25
from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS
from smartcity.devices import register_device
from tests.api.client import TestClient

URL = "/api/v1/ispu"
# 12:30 WITA on 15 September 2026: every 24-hour window ending here spans two WITA days.
AT = datetime(2026, 9, 15, 4, 30, tzinfo=UTC)
STEP_S = 600  # a reading every 10 minutes

Profile = Callable[[datetime], float | None]  # time → value, or None for no reading then


Stored = dict[str, list[tuple[datetime, float]]]


def _store(db: psycopg.Connection, database_url: str, site: str,
           profiles: dict[str, Profile], start: datetime, end: datetime) -> Stored:
    """Register an air-quality station at ``site`` and store its readings from ``start`` to ``end``.

    The older half is rolled up before the newer half is written, so the planner reads both the
    rollups and raw readings of pending hours.
    """
    device_id = f"aq-{site}-01"
    register_device(db, device_id, "air_quality_station", site)
    (key,) = db.execute("SELECT id FROM devices WHERE device_id = %s", (device_id,)).fetchone() or ()
    middle = start + (end - start) / 2
    older, newer = Rows(), Rows()
    stored: Stored = {metric: [] for metric in profiles}
    for epoch in range(int(start.timestamp()), int(end.timestamp()), STEP_S):
        time = datetime.fromtimestamp(epoch, UTC)
        for metric, profile in profiles.items():
            value = profile(time)
            if value is not None:
                (older if time < middle else newer).readings.append(
                    (float(epoch), key, METRICS[metric].id, value))
                stored[metric].append((time, value))
    writer = Writer(database_url)
    try:
        writer.write_rows(older)
        db.execute("SELECT * FROM smartcity_refresh_rollups()")
        writer.write_rows(newer)
    finally:
        writer.close()
    return stored


def _mean(points: list[tuple[datetime, float]], start: datetime, end: datetime) -> float:
    values = [value for time, value in points if start <= time < end]
    return sum(values) / len(values)


def _haze(time: datetime) -> float:
    """PM2.5 of a haze day: 90–150 µg/m³ through the day, exactly representable."""
    return 90 + (int(time.timestamp()) // STEP_S * 37 % 241) / 4


_CLEAN_GASES: dict[str, Profile] = {
    "pm10": lambda t: 120.0 + (t.hour % 4), "so2": lambda t: 20.0, "co": lambda t: 2000.0 + t.minute,
    "o3": lambda t: 60.0, "no2": lambda t: 30.0 + t.hour, "hc": lambda t: 10.0,
}


def test_a_haze_day_is_unhealthy_with_pm25_dominant(client: TestClient, db: psycopg.Connection,
                                                    database_url: str) -> None:
    stored = _store(db, database_url, "tanah-grogot", {"pm25": _haze, **_CLEAN_GASES},
                    AT - timedelta(hours=26), AT + timedelta(hours=2))

    response = client.get(URL, params={"site": "tanah-grogot", "at": AT.isoformat()})

    assert response.status_code == 200, response.text
    body = response.json()
    pm25_mean = _mean(stored["pm25"], AT - timedelta(hours=24), AT)
    assert 90 < pm25_mean < 150  # the haze band: Tidak Sehat
    pm25_sub = compute_sub_index("pm25", pm25_mean).value
    assert {k: body[k] for k in ("site_id", "ispu", "category", "category_id", "color", "dominant",
                                 "beyond_scale", "excluded", "reason")} == {
        "site_id": "tanah-grogot", "ispu": math.ceil(pm25_sub), "category": "Tidak Sehat",
        "category_id": "tidak_sehat", "color": "yellow", "dominant": "pm25", "beyond_scale": False,
        "excluded": [], "reason": None}
    assert datetime.fromisoformat(body["time"]) == AT
    assert list(body["sub_indices"]) == ["pm10", "pm25", "so2", "co", "o3", "no2", "hc"]
    hours = {"pm10": 24, "pm25": 24, "so2": 24, "co": 8, "o3": 1, "no2": 1, "hc": 3}
    for metric, entry in body["sub_indices"].items():
        mean = _mean(stored[metric], AT - timedelta(hours=hours[metric]), AT)
        sub = compute_sub_index(metric, mean)
        assert entry["concentration"] == pytest.approx(mean, rel=1e-12), metric
        assert entry == {"concentration": entry["concentration"], "unit": "µg/m³",
                         "averaging_hours": hours[metric], "coverage": 1.0,
                         "readings": hours[metric] * 3600 // STEP_S,
                         "sub_index": round(sub.value, 2), "band": sub.category.id,
                         "beyond_scale": False}, metric
    assert body["sub_indices"]["pm10"]["band"] == "sedang"
    aqi = compute_us_aqi_pm25(body["sub_indices"]["pm25"]["concentration"])
    assert body["us_aqi"] == {"aqi": aqi.aqi, "category": "Unhealthy",
                              "concentration": aqi.concentration, "beyond_scale": False}


def _steps(time: datetime) -> float:
    """10 µg/m³ before AT − 24 h, 100 from then until AT, 400 from AT on."""
    if time < AT - timedelta(hours=24):
        return 10.0
    return 100.0 if time < AT else 400.0


@pytest.fixture
def steps(db: psycopg.Connection, database_url: str) -> None:
    """PM2.5 alone at Kuaro, stepping at AT − 24 h and at AT, from AT − 30 h to AT + 6 h."""
    _store(db, database_url, "kuaro", {"pm25": _steps}, AT - timedelta(hours=30), AT + timedelta(hours=6))


@pytest.mark.usefixtures("steps")
def test_the_24_hour_window_ends_at_at_whatever_the_wita_day(client: TestClient) -> None:
    body = client.get(URL, params={"site": "kuaro", "at": AT.isoformat()}).json()

    # Exactly the 144 readings of [AT − 24 h, AT), across WITA midnight, none of 10 or 400.
    pm25 = body["sub_indices"]["pm25"]
    assert (pm25["concentration"], pm25["readings"], pm25["coverage"]) == (100.0, 144, 1.0)
    assert pm25["sub_index"] == round(compute_sub_index("pm25", 100.0).value, 2)
    assert (body["dominant"], body["category_id"]) == ("pm25", "tidak_sehat")
    assert body["excluded"] == ["pm10", "so2", "co", "o3", "no2", "hc"]  # Kuaro measures PM2.5 only


@pytest.mark.usefixtures("steps")
@pytest.mark.parametrize(("shift_h", "expected"), [
    (-6, (6 * 10 + 18 * 100) / 24),   # [AT − 30 h, AT − 6 h)
    (-1, (1 * 10 + 23 * 100) / 24),
    (3, (21 * 100 + 3 * 400) / 24),   # [AT − 21 h, AT + 3 h)
])
def test_an_earlier_or_later_at_uses_its_own_window(client: TestClient, shift_h: int,
                                                     expected: float) -> None:
    at = AT + timedelta(hours=shift_h)
    body = client.get(URL, params={"site": "kuaro", "at": at.isoformat()}).json()

    assert datetime.fromisoformat(body["time"]) == at
    assert body["sub_indices"]["pm25"]["concentration"] == pytest.approx(expected, rel=1e-12)
    assert body["sub_indices"]["pm25"]["readings"] == 144
    assert body["ispu"] == math.ceil(round(compute_sub_index("pm25", expected).value, 6))


def test_a_time_with_an_offset_is_the_same_instant(client: TestClient, db: psycopg.Connection,
                                                   database_url: str) -> None:
    _store(db, database_url, "kuaro", {"pm25": _steps}, AT - timedelta(hours=30), AT + timedelta(hours=6))
    wita = client.get(URL, params={"site": "kuaro", "at": "2026-09-15T12:30:00+08:00"}).json()
    assert wita["sub_indices"]["pm25"]["concentration"] == 100.0


def _hours_of_data(hours: set[int]) -> Profile:
    """50 µg/m³ in the given hours counted back from AT (0 = the hour before AT), nothing else."""
    def profile(time: datetime) -> float | None:
        back = math.ceil((AT - time).total_seconds() / 3600) - 1  # hour 0 = [AT − 1 h, AT)
        return 50.0 if back in hours else None
    return profile


def test_too_little_data_gives_no_number_and_says_what_each_pollutant_had(
        client: TestClient, db: psycopg.Connection, database_url: str) -> None:
    # 17 of 24 hours (71 %): one short of the 75 % minimum, though a mean exists.
    _store(db, database_url, "long-ikis", {"pm25": _hours_of_data(set(range(17)))},
           AT - timedelta(hours=24), AT)

    response = client.get(URL, params={"site": "long-ikis", "at": AT.isoformat()})

    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("ispu", "category", "color", "dominant", "us_aqi")} == {
        "ispu": None, "category": None, "color": None, "dominant": None, "us_aqi": None}
    assert body["excluded"] == ["pm10", "pm25", "so2", "co", "o3", "no2", "hc"]
    assert body["reason"] == (
        "too little data for every pollutant (at least 75% of a window's hours need readings): "
        "pm10 had 0 of 24 h (0%), pm25 had 17 of 24 h (71%), so2 had 0 of 24 h (0%), co had 0 of 8 h"
        " (0%), o3 had 0 of 1 h (0%), no2 had 0 of 1 h (0%), hc had 0 of 3 h (0%)")
    pm25 = body["sub_indices"]["pm25"]
    assert (pm25["concentration"], pm25["coverage"], pm25["readings"]) == (50.0, 0.708, 17 * 6)
    assert (pm25["sub_index"], pm25["band"]) == (None, None)
    assert body["sub_indices"]["co"]["concentration"] is None


def test_gases_alone_give_no_number_when_the_particulates_lack_data(
        client: TestClient, db: psycopg.Connection, database_url: str) -> None:
    # PM2.5 only for the last 4 hours (a sensor just back), the gases all day: NO2 alone reads Baik.
    _store(db, database_url, "batu-engau", {"pm25": _hours_of_data(set(range(4))),
                                            "no2": lambda t: 30.0, "co": lambda t: 2000.0},
           AT - timedelta(hours=24), AT)

    body = client.get(URL, params={"site": "batu-engau", "at": AT.isoformat()}).json()

    assert (body["ispu"], body["category"], body["dominant"], body["us_aqi"]) == (None, None, None, None)
    assert body["sub_indices"]["no2"]["sub_index"] is not None  # the gases' sub-indices stay shown
    assert body["reason"] == (
        "too little data for a particulate (at least 75% of a window's hours need readings): pm10 had"
        " 0 of 24 h (0%), pm25 had 4 of 24 h (17%); an index of co, no2 alone would understate a haze")


def test_exactly_the_minimum_coverage_is_enough_and_gaps_anywhere_count(
        client: TestClient, db: psycopg.Connection, database_url: str) -> None:
    # 18 of 24 hours, the gaps spread over the window: 75 %.
    _store(db, database_url, "long-kali", {"pm25": _hours_of_data(set(range(24)) - {0, 5, 9, 13, 20, 23})},
           AT - timedelta(hours=24), AT)

    body = client.get(URL, params={"site": "long-kali", "at": AT.isoformat()}).json()

    assert body["sub_indices"]["pm25"]["coverage"] == 0.75
    assert (body["ispu"], body["dominant"], body["reason"]) == (
        math.ceil(compute_sub_index("pm25", 50.0).value), "pm25", None)


def test_the_minimum_coverage_is_a_setting(settings: Any, db: psycopg.Connection,
                                           database_url: str, admin_headers: dict[str, str]) -> None:
    from api import create_app

    _store(db, database_url, "long-ikis", {"pm25": _hours_of_data(set(range(12)))},
           AT - timedelta(hours=24), AT)
    lenient = settings.model_copy(update={"index": settings.index.model_copy(
        update={"min_coverage": 0.5})})
    with TestClient(create_app(lenient), headers=admin_headers) as client:
        body = client.get(URL, params={"site": "long-ikis", "at": AT.isoformat()}).json()
    assert (body["ispu"], body["min_coverage"]) == (math.ceil(compute_sub_index("pm25", 50.0).value), 0.5)


def test_a_site_without_readings_now_has_no_number(client: TestClient) -> None:
    before = datetime.now(UTC)
    body = client.get(URL, params={"site": "muara-samu"}).json()

    assert body["ispu"] is None and body["reason"].startswith("too little data")
    assert before <= datetime.fromisoformat(body["time"]) <= datetime.now(UTC)


def test_an_unknown_site_is_a_404_problem(client: TestClient) -> None:
    response = client.get(URL, params={"site": "atlantis", "at": AT.isoformat()})

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "no site 'atlantis'; GET /api/v1/sites lists them"


@pytest.mark.parametrize(("params", "name"), [
    ({"site": "tanah-grogot", "at": "2026-09-15T12:30:00"}, "at"),   # no offset: which instant?
    ({"site": "tanah-grogot", "at": "yesterday"}, "at"),
    ({"site": "Tanah Grogot"}, "site"),
    ({}, "site"),
])
def test_malformed_parameters_are_a_422_naming_them(client: TestClient, params: dict[str, str],
                                                    name: str) -> None:
    response = client.get(URL, params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["name"] for e in response.json()["errors"]] == [name]


def test_the_openapi_document_has_the_route_with_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"]["/api/v1/ispu"]["get"]
    assert set(operation["responses"]) >= {"200", "404", "422", "503"}
    examples = document["components"]["schemas"]["IspuOut"]["examples"]
    # FastAPI drops null members from the document (exclude_none), examples' included.
    assert [e.get("ispu") for e in examples] == [163, None]
    assert examples[1]["reason"].startswith("too little data")


@pytest.mark.parametrize("at", ["0001-01-02T00:00:00Z", "9999-12-30T00:00:00Z"])
def test_a_time_far_from_the_data_is_no_number_not_an_error(client: TestClient, at: str) -> None:
    response = client.get(URL, params={"site": "tanah-grogot", "at": at})

    assert response.status_code == 200, response.text
    assert response.json()["ispu"] is None


@pytest.mark.usefixtures("steps")
def test_the_us_aqi_needs_a_24_hour_pm25_window(settings: Any, admin_headers: dict[str, str]) -> None:
    from api import create_app

    hourly = settings.model_copy(update={"index": settings.index.model_copy(
        update={"averaging_hours": {**settings.index.averaging_hours, "pm25": 1}})})
    with TestClient(create_app(hourly), headers=admin_headers) as client:
        body = client.get(URL, params={"site": "kuaro", "at": AT.isoformat()}).json()
    assert body["sub_indices"]["pm25"]["averaging_hours"] == 1
    assert (body["dominant"], body["us_aqi"]) == ("pm25", None)
