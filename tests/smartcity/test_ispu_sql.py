"""The ISPU in SQL (migration 010) against the real database: the same numbers as api/indices.py and
GET /api/v1/ispu, from tables seeded with smartcity/airquality.py's constants.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

from api import create_app
from api.indices import SubIndex, compute_site_index, compute_sub_index
from simulators.backfill import backfill
from simulators.fleet import demo_fleet
from smartcity.airquality import (
    ISPU_CATEGORIES,
    ISPU_INDEX_POINTS,
    ISPU_POLLUTANTS,
    ISPU_TABLE,
    PARTICULATES,
)
from smartcity.catalog import SITES
from smartcity.db import seed_catalog
from smartcity.db.queries import airquality as airquality_sql
from smartcity.launcher import register_fleet
from smartcity.services import EmbeddedPostgres
from smartcity.settings import DEFAULT_AVERAGING_HOURS, Settings
from tests.api.client import TestClient
from tests.api.test_ispu import _CLEAN_GASES, AT, _haze, _hours_of_data, _store
from tests.logins import BrokerLogins, login_url

# Many values per round trip: one query evaluates a whole list.
SUB_INDICES = """
SELECT s.sub_index, s.band, s.beyond_scale
FROM unnest(%s::text[], %s::float8[]) WITH ORDINALITY AS x(pollutant, concentration, n),
     smartcity_ispu_sub_index(x.pollutant, x.concentration) s
ORDER BY x.n
"""
ROUND_UP = """
SELECT smartcity_ispu_round_up(v) FROM unnest(%s::float8[]) WITH ORDINALITY AS x(v, n) ORDER BY n
"""


def _sql_sub_indices(db: psycopg.Connection, pairs: list[tuple[str, float]]) -> list[tuple[Any, ...]]:
    return db.execute(SUB_INDICES, ([p for p, _ in pairs], [c for _, c in pairs])).fetchall()


def _python_sub_indices(pairs: list[tuple[str, float]]) -> list[tuple[Any, ...]]:
    subs = [compute_sub_index(p, c) for p, c in pairs]
    return [(s.value, s.category.id, s.beyond_scale) for s in subs]


# --- the tables are the Python constants -------------------------------------------------------

def _tables(db: psycopg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "categories": db.execute("SELECT band, id, name, name_en, color, i_low, i_high"
                                 " FROM ispu_categories ORDER BY band").fetchall(),
        "pollutants": db.execute("SELECT pollutant, position, particulate, averaging_hours"
                                 " FROM ispu_pollutants ORDER BY position").fetchall(),
        "breakpoints": db.execute("SELECT pollutant, band, x_low, x_high, i_low, i_high"
                                  " FROM ispu_breakpoints ORDER BY pollutant, band").fetchall(),
        "settings": db.execute("SELECT min_coverage FROM ispu_settings").fetchall(),
    }


def _expected_tables() -> dict[str, list[tuple[Any, ...]]]:
    points = ISPU_INDEX_POINTS
    return {
        "categories": [(band, c.id, c.name, c.name_en, c.color, points[band], points[band + 1])
                       for band, c in enumerate(ISPU_CATEGORIES)],
        "pollutants": [(p, n, p in PARTICULATES, DEFAULT_AVERAGING_HOURS[p])
                       for n, p in enumerate(ISPU_POLLUTANTS)],
        "breakpoints": sorted((p, band, xs[band], xs[band + 1], points[band], points[band + 1])
                              for p, xs in ISPU_TABLE.items() for band in range(len(xs) - 1)),
        "settings": [(0.75,)],
    }


def test_the_tables_hold_the_python_constants(db: psycopg.Connection) -> None:
    tables = _tables(db)
    assert tables == _expected_tables()
    assert len(tables["breakpoints"]) == 7 * 5  # seven pollutants, five bands: not vacuous


def test_seeding_again_overwrites_hand_edits_and_drops_strays(postgres: EmbeddedPostgres,
                                                                db: psycopg.Connection) -> None:
    try:
        db.execute("UPDATE ispu_breakpoints SET x_high = 16 WHERE pollutant = 'pm25' AND band = 0")
        db.execute("UPDATE ispu_categories SET color = 'purple' WHERE id = 'berbahaya'")
        db.execute("UPDATE ispu_settings SET min_coverage = 0.5")
        db.execute("INSERT INTO ispu_pollutants VALUES ('temperature', 99, false, 1)")
        db.execute("INSERT INTO ispu_breakpoints VALUES ('temperature', 0, 0, 40, 0, 50)")
        db.execute("INSERT INTO ispu_categories VALUES (9, 'extra', 'Extra', 'Extra', 'pink', 500, 600)")
        assert _tables(db) != _expected_tables()
    finally:
        with psycopg.connect(postgres.url) as conn:
            seed_catalog(conn)
    assert _tables(db) == _expected_tables()


# --- smartcity_ispu_sub_index == compute_sub_index -----------------------------------------------

def test_every_breakpoint_of_every_pollutant_gives_the_same_sub_index(db: psycopg.Connection) -> None:
    pairs = [(p, float(x)) for p, xs in ISPU_TABLE.items() for x in xs]
    got = _sql_sub_indices(db, pairs)
    assert got == _python_sub_indices(pairs)
    # On a column the index is the column's exactly (50 µg/m³ of PM10 is 50, Baik).
    assert got[1] == (50.0, "baik", False)
    assert [row[0] for row in got[:6]] == [float(i) for i in ISPU_INDEX_POINTS]


def _around_the_table() -> st.SearchStrategy[list[tuple[str, float]]]:
    """Lists of (pollutant, concentration) from 0 to a fifth beyond the table's top, and next to columns."""
    def anywhere(pollutant: str) -> st.SearchStrategy[tuple[str, float]]:
        top = ISPU_TABLE[pollutant][-1]
        near_column = st.sampled_from(ISPU_TABLE[pollutant]).flatmap(
            lambda x: st.sampled_from([math.nextafter(float(x), -1.0) if x else 0.0, float(x),
                                       math.nextafter(float(x), math.inf)]))
        values = st.one_of(st.floats(0, top * 1.2, allow_nan=False), near_column)
        return values.map(lambda c: (pollutant, c))
    return st.lists(st.sampled_from(ISPU_POLLUTANTS).flatmap(anywhere), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=_around_the_table())
def test_any_concentration_gives_the_same_float_as_python(db: psycopg.Connection,
                                                          pairs: list[tuple[str, float]]) -> None:
    assert _sql_sub_indices(db, pairs) == _python_sub_indices(pairs)


@pytest.mark.parametrize("pollutant", ISPU_POLLUTANTS)
def test_above_the_scale_is_500_berbahaya_beyond_scale(db: psycopg.Connection, pollutant: str) -> None:
    top = float(ISPU_TABLE[pollutant][-1])
    pairs = [(pollutant, c) for c in (math.nextafter(top, math.inf), top + 1, top * 10, 1e300)]
    got = _sql_sub_indices(db, pairs)
    assert got == _python_sub_indices(pairs)
    assert set(got) == {(500.0, "berbahaya", True)}


def test_a_denormal_concentration_gives_python_s_float_not_an_underflow(db: psycopg.Connection) -> None:
    # PostgreSQL raises "value out of range: underflow" where a product rounds to zero.
    pairs = [("pm25", 5e-324), ("co", 5e-324), ("pm10", 1e-310), ("hc", 2.5e-308), ("no2", 1e-300)]
    got = _sql_sub_indices(db, pairs)
    assert got == _python_sub_indices(pairs)
    assert got[1] == (0.0, "baik", False) and 0 < got[2][0] < 1e-300


def test_no_concentration_gives_nulls_not_an_error(db: psycopg.Connection) -> None:
    assert db.execute("SELECT * FROM smartcity_ispu_sub_index('pm25', NULL)").fetchall() == [
        (None, None, None)]


@pytest.mark.parametrize(("pollutant", "concentration", "message"), [
    ("pm1", "10", "unknown pollutant 'pm1'"),
    ("temperature", "10", "unknown pollutant 'temperature'"),
    (None, "10", "unknown pollutant NULL"),
    ("pm25", "-0.5", "pm25: concentration -0.5 is negative"),
    ("co", "NaN", "co: concentration NaN is not a finite number"),
    ("o3", "Infinity", "o3: concentration Infinity is not a finite number"),
    ("o3", "-Infinity", "o3: concentration -Infinity is not a finite number"),
])
def test_bad_input_is_a_22023_error_naming_it(db: psycopg.Connection, pollutant: str | None,
                                              concentration: str, message: str) -> None:
    with pytest.raises(errors.InvalidParameterValue) as caught:
        db.execute("SELECT * FROM smartcity_ispu_sub_index(%s, %s::float8)", (pollutant, concentration))
    assert caught.value.diag.message_primary == message
    if message.startswith("unknown"):
        assert caught.value.diag.message_hint == "known: pm10, pm25, so2, co, o3, no2, hc"
    # …and Python refuses the same input.
    if pollutant is not None:
        with pytest.raises(ValueError):
            compute_sub_index(pollutant, float(concentration))


# --- rounding up the site's number as compute_site_index does ------------------------------------

def _python_ispu(value: float) -> int:
    site = compute_site_index({"pm25": SubIndex("pm25", 0.0, value, ISPU_CATEGORIES[0], False)})
    assert site is not None
    return site.ispu


def _near_whole_numbers() -> st.SearchStrategy[float]:
    """Values a few ulps or about 5e-7 from a whole number, where rounding noise decides."""
    def around(n: int, offset: float, ulps: int) -> float:
        value = max(0.0, n + offset)
        for _ in range(abs(ulps)):
            value = math.nextafter(value, math.inf if ulps > 0 else 0.0)
        return value
    return st.builds(around, st.integers(0, 500), st.sampled_from([0.0, 5e-7, -5e-7, 1e-6, -1e-6]),
                     st.integers(-4, 4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.floats(0, 500), _near_whole_numbers()), min_size=1, max_size=80))
def test_the_site_number_is_rounded_up_as_python_does(db: psycopg.Connection, values: list[float]) -> None:
    got = [n for (n,) in db.execute(ROUND_UP, (values,)).fetchall()]
    assert got == [_python_ispu(v) for v in values]


def test_rounding_up_drops_float_noise_only(db: psycopg.Connection) -> None:
    values = [50.0, 50.2, math.nextafter(50.0, math.inf), 50.0000004, 50.0000006, 5e-7, 0.0]
    got = [n for (n,) in db.execute(ROUND_UP, (values,)).fetchall()]
    assert got == [50, 51, 50, 50, 51, 0, 0] == [_python_ispu(v) for v in values]


# --- smartcity_site_ispu(at) == GET /api/v1/ispu for every site ----------------------------------

@pytest.fixture
def api(database_url: str, broker_login: BrokerLogins,
        admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client of the API on the test database, with the default index settings."""
    login = broker_login("api")
    app_settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, mqtt_url=f"mqtt://127.0.0.1:{login.port}",
        api={"mqtt_url": login_url(login)})
    with TestClient(create_app(app_settings), headers=admin_headers) as client:
        yield client


def _from_api(api: TestClient, at: datetime) -> dict[str, tuple[Any, ...]]:
    answers = {}
    for site in SITES:
        response = api.get("/api/v1/ispu", params={"site": site, "at": at.isoformat()})
        assert response.status_code == 200, response.text
        body = response.json()
        answers[site] = (body["ispu"], body["category"], body["color"], body["dominant"])
    return answers


def _from_sql(db: psycopg.Connection, at: datetime) -> dict[str, tuple[Any, ...]]:
    rows = db.execute(airquality_sql.SELECT_SITE_ISPU, {"at": at}).fetchall()
    assert [row[0] for row in rows] == sorted(SITES)  # every site, with a number or not
    for site_id, name, latitude, longitude, *_ in rows:
        assert (name, latitude, longitude) == (SITES[site_id].name, SITES[site_id].latitude,
                                               SITES[site_id].longitude)
    return {row[0]: tuple(row[4:]) for row in rows}


@pytest.fixture
def fleet_of_cases(db: psycopg.Connection, database_url: str) -> None:
    """Stations in eight districts, each a case of the API's tests, half rolled up, half pending."""
    window = (AT - timedelta(hours=30), AT + timedelta(hours=2))
    # Haze: PM2.5 dominant, Tidak Sehat.
    _store(db, database_url, "tanah-grogot", {"pm25": _haze, **_CLEAN_GASES}, *window)
    # Clean: every pollutant low; PM10's Sedang band dominates.
    _store(db, database_url, "kuaro", {"pm25": lambda t: 8.0 + t.hour % 3, **_CLEAN_GASES}, *window)
    # Too little data: PM2.5 in 17 of 24 hours, nothing else.
    _store(db, database_url, "long-ikis", {"pm25": _hours_of_data(set(range(17)))}, *window)
    # Gases only: PM2.5 just back (4 hours), the gases all day, NO2 high enough to be Sedang.
    _store(db, database_url, "batu-engau", {"pm25": _hours_of_data(set(range(4))),
                                            "no2": lambda t: 150.0, "co": lambda t: 2000.0}, *window)
    # Exactly the minimum coverage, gaps spread out.
    _store(db, database_url, "long-kali",
           {"pm25": _hours_of_data(set(range(24)) - {0, 5, 9, 13, 20, 23})}, *window)
    # PM10 without PM2.5, and a gas above it: the gas is dominant since a particulate is there.
    _store(db, database_url, "muara-komam", {"pm10": lambda t: 40.0, "o3": lambda t: 300.0}, *window)
    # A tie: every sub-index exactly 50; the table's order (pm10 first) decides, not the store's.
    _store(db, database_url, "batu-sopang",
           {"so2": lambda t: 52.0, "pm25": lambda t: 15.5, "pm10": lambda t: 50.0}, *window)
    # Beyond the scale: 500, Berbahaya.
    _store(db, database_url, "tanjung-harapan", {"pm25": lambda t: 600.0}, *window)


@pytest.mark.usefixtures("fleet_of_cases")
@pytest.mark.parametrize("shift_h", [0, -7, 1])
def test_every_site_gets_the_api_s_answer(api: TestClient, db: psycopg.Connection, shift_h: int) -> None:
    at = AT + timedelta(hours=shift_h)

    sql = _from_sql(db, at)

    assert sql == _from_api(api, at)
    if shift_h == 0:  # the cases are the ones meant: not every site null, not all alike
        assert sql["tanah-grogot"][1:] == ("Tidak Sehat", "yellow", "pm25")
        assert sql["kuaro"][1:] == ("Sedang", "blue", "pm10")
        assert sql["long-ikis"] == sql["batu-engau"] == sql["muara-samu"] == (None, None, None, None)
        assert sql["long-kali"] == (math.ceil(compute_sub_index("pm25", 50.0).value), "Sedang", "blue",
                                    "pm25")
        assert sql["muara-komam"] == (math.ceil(compute_sub_index("o3", 300.0).value), "Tidak Sehat",
                                      "yellow", "o3")
        assert sql["batu-sopang"] == (50, "Baik", "green", "pm10")
        assert sql["tanjung-harapan"] == (500, "Berbahaya", "black", "pm25")


@pytest.mark.parametrize("at", ["infinity", "-infinity", None])
def test_a_time_that_is_not_finite_is_a_22023_error(db: psycopg.Connection, at: str | None) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="must be a finite time"):
        db.execute("SELECT * FROM smartcity_site_ispu(%s::timestamptz)", (at,))


def test_a_time_far_from_the_data_is_no_number_not_an_error(db: psycopg.Connection) -> None:
    rows = db.execute(airquality_sql.SELECT_SITE_ISPU,
                      {"at": datetime(1, 1, 2, tzinfo=UTC)}).fetchall()
    assert len(rows) == len(SITES) and {row[4:] for row in rows} == {(None, None, None, None)}


# --- the map's refresh over the demo fleet -------------------------------------------------------

def _median_ms(db: psycopg.Connection, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        db.execute("SELECT * FROM smartcity_site_ispu(now())").fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_map_over_the_demo_fleet_with_a_day_of_10_s_data(
        db: psycopg.Connection, database_url: str, api: TestClient, capsys: pytest.CaptureFixture[str],
        record_property: Any) -> None:
    specs = demo_fleet()
    register_fleet(database_url, specs)
    loaded = backfill(database_url, specs, 20261127, 86400 + 3600, 10, progress=False)

    pending_ms = _median_ms(db, 5)  # every hour still pending: read raw
    while db.execute("SELECT marks FROM smartcity_refresh_rollups()").fetchone() != (0,):
        pass
    rolled_ms = _median_ms(db, 15)  # the refresher caught up

    at = datetime.now(UTC)
    sql, api_answer = _from_sql(db, at), _from_api(api, at)
    assert sql == api_answer
    assert sum(row[0] is not None for row in sql.values()) == sum(
        spec.kind == "air_quality_station" for spec in specs) == len(SITES)
    record_property("site_ispu_ms", {"pending": pending_ms, "rolled_up": rolled_ms})
    with capsys.disabled():
        print(f"\nsmartcity_site_ispu(now()), {len(specs)} devices, {loaded.stored} readings:"
              f" {rolled_ms:.0f} ms rolled up, {pending_ms:.0f} ms every hour pending (medians)")
    # A map refresh, not a report: generous for a shared 2-core machine, yet far below a timeout.
    assert rolled_ms < 2000
