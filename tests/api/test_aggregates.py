"""GET /api/v1/aggregates against the real database: the planner's rows, a raw computation, 400s."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS, SITES
from smartcity.devices import register_device
from smartcity.settings import Settings
from tests.api.client import TestClient

URL = "/api/v1/aggregates"
# A WITA day and the hours around it: 2026-03-01 00:00 WITA is 2026-02-28 16:00 UTC.
T0 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
SPAN = timedelta(hours=12)
STEP_S = 300  # a reading every 5 minutes
_ROLLUP_TABLES = ("rollup_1m", "rollup_1h", "rollup_1d", "rollup_pending", "retention_horizon")
# device id → site: two stations in Tanah Grogot, one in Kuaro; a weather station reports no pm25.
_DEVICES = {"aq-grogot-01": "tanah-grogot", "aq-grogot-02": "tanah-grogot", "aq-kuaro-01": "kuaro"}


def _value(device: int, epoch: float) -> float:
    """A pm25 value that differs per device and reading, exactly representable."""
    return float((int(epoch) // STEP_S * 7 + device * 13) % 200) / 4


@pytest.fixture
def readings(db: psycopg.Connection, database_url: str) -> dict[str, list[tuple[datetime, float]]]:
    """Three pm25 stations with 12 h of readings: rolled up, then some late ones still pending."""
    db.execute(f"TRUNCATE {', '.join(_ROLLUP_TABLES)}")
    for device_id, site in _DEVICES.items():
        register_device(db, device_id, "air_quality_station", site)
    register_device(db, "wx-grogot-01", "weather_station", "tanah-grogot")
    keys = dict(db.execute("SELECT device_id, id FROM devices").fetchall())
    pm25 = METRICS["pm25"].id
    start = T0.timestamp()
    stored: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    first, late = Rows(), Rows()
    for device_id in _DEVICES:
        for epoch in range(int(start), int(start + SPAN.total_seconds()), STEP_S):
            value = _value(keys[device_id], epoch)
            # Every seventh reading arrives after the refresh: its hour is pending, read raw.
            (late if epoch // STEP_S % 7 == 0 else first).readings.append(
                (float(epoch), keys[device_id], pm25, value))
            stored[device_id].append((datetime.fromtimestamp(epoch, UTC), value))
    writer = Writer(database_url)
    try:
        writer.write_rows(first)
        db.execute("SELECT * FROM smartcity_refresh_rollups()")
        writer.write_rows(late)
    finally:
        writer.close()
    assert db.execute("SELECT count(*) FROM rollup_pending").fetchone() != (0,)
    return stored


@pytest.fixture
def small_limit_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client whose answers may hold at most 30 points."""
    from api import create_app

    limited = settings.model_copy(update={"api": settings.api.model_copy(
        update={"aggregate_max_points": 30})})
    with TestClient(create_app(limited), headers=admin_headers) as client:
        yield client


def _planner(db: psycopg.Connection, metric: str, bucket: str, agg: str, start: datetime,
             end: datetime, **named: Any) -> list[tuple[Any, ...]]:
    """The planner's rows, asked directly in SQL."""
    extra = "".join(f", {name} => %({name})s" for name in named)
    return db.execute(
        "SELECT key, time, value, count FROM smartcity_aggregate("
        f"%(metric)s, %(bucket)s, %(agg)s, %(start)s, %(end)s{extra})",
        {"metric": metric, "bucket": bucket, "agg": agg, "start": start, "end": end, **named},
    ).fetchall()


def _rows_of(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(series["key"], datetime.fromisoformat(point["time"]), point["value"], point["count"])
            for series in body["series"] for point in series["points"]]


def _raw_hourly_avg(readings: dict[str, list[tuple[datetime, float]]], key_of: dict[str, str],
                    start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    """The hourly mean per key, computed here from the readings as stored."""
    groups: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for device_id, points in readings.items():
        for time, value in points:
            if start <= time < end:
                hour = time.replace(minute=0, second=0, microsecond=0)
                groups[(key_of[device_id], hour)].append(value)
    return [(key, hour, sum(values) / len(values), len(values))
            for (key, hour), values in sorted(groups.items())]


def test_device_buckets_equal_the_planner_and_the_raw_readings(
        client: TestClient, db: psycopg.Connection, readings: dict[str, Any]) -> None:
    start, end = T0 + timedelta(minutes=30), T0 + SPAN - timedelta(minutes=10)
    response = client.get(URL, params={"metric": "pm25", "bucket": "1h", "agg": "avg",
                                       "start": start.isoformat(), "end": end.isoformat()})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert {k: body[k] for k in ("metric", "unit", "bucket", "agg")} == {
        "metric": "pm25", "unit": "µg/m³", "bucket": "1h", "agg": "avg"}
    assert [s["key"] for s in body["series"]] == sorted(_DEVICES)  # wx-grogot-01 has no pm25
    got = _rows_of(body)
    assert got == _planner(db, "pm25", "1h", "avg", start, end)
    expected = _raw_hourly_avg(readings, {d: d for d in _DEVICES}, start, end)
    assert [(k, t, c) for k, t, _, c in got] == [(k, t, c) for k, t, _, c in expected]
    assert [v for *_, v, _ in got] == pytest.approx([v for *_, v, _ in expected], rel=1e-12)


@pytest.mark.parametrize(("group_by", "key_of"), [
    ("site", _DEVICES),
    ("none", dict.fromkeys(_DEVICES, "all")),
])
def test_site_and_none_groupings_pool_their_devices(
        client: TestClient, db: psycopg.Connection, readings: dict[str, Any], group_by: str,
        key_of: dict[str, str]) -> None:
    start, end = T0, T0 + SPAN
    response = client.get(URL, params={"metric": "pm25", "bucket": "1h", "group_by": group_by,
                                       "start": start.isoformat(), "end": end.isoformat()})

    assert response.status_code == 200, response.text
    got = _rows_of(response.json())
    assert got == _planner(db, "pm25", "1h", "avg", start, end, group_by=group_by)
    expected = _raw_hourly_avg(readings, key_of, start, end)
    assert [(k, t, c) for k, t, _, c in got] == [(k, t, c) for k, t, _, c in expected]
    assert [v for *_, v, _ in got] == pytest.approx([v for *_, v, _ in expected], rel=1e-12)


def test_repeated_device_and_site_select_and_wita_days_are_the_default(
        client: TestClient, db: psycopg.Connection, readings: dict[str, Any]) -> None:
    start, end = T0, T0 + SPAN
    response = client.get(URL, params=[
        ("metric", "pm25"), ("bucket", "1d"), ("agg", "max"), ("device", "aq-grogot-02"),
        ("device", "aq-kuaro-01"), ("site", "kuaro"), ("site", "tanah-grogot"),
        ("start", start.isoformat()), ("end", end.isoformat())])

    assert response.status_code == 200, response.text
    got = _rows_of(response.json())
    assert {k for k, *_ in got} == {"aq-grogot-02", "aq-kuaro-01"}
    # Two WITA days meet the range: before and after 2026-02-28T16:00Z.
    assert sorted({t for _, t, *_ in got}) == [datetime(2026, 2, 27, 16, tzinfo=UTC),
                                               datetime(2026, 2, 28, 16, tzinfo=UTC)]
    assert got == _planner(db, "pm25", "1d", "max", start, end,
                           device_ids=["aq-grogot-02", "aq-kuaro-01"],
                           site_ids=["kuaro", "tanah-grogot"])
    for key, day, value, count in got:
        in_day = [v for t, v in readings[key] if day <= t < day + timedelta(days=1)]
        assert (value, count) == (max(in_day), len(in_day))


def test_utc_days_on_request(client: TestClient, readings: dict[str, Any]) -> None:
    response = client.get(URL, params={"metric": "pm25", "bucket": "1d", "agg": "count",
                                       "group_by": "none", "tz": "UTC",
                                       "start": T0.isoformat(), "end": (T0 + SPAN).isoformat()})

    assert response.status_code == 200, response.text
    (series,) = response.json()["series"]
    assert series["key"] == "all"
    assert [(p["time"], p["value"], p["count"]) for p in series["points"]] == [
        ("2026-02-28T00:00:00+00:00", 3 * 144.0, 3 * 144)]


def test_start_and_end_default_to_the_last_24_hours(client: TestClient, db: psycopg.Connection,
                                                    database_url: str,
                                                    readings: dict[str, Any]) -> None:
    keys = dict(db.execute("SELECT device_id, id FROM devices").fetchall())
    now = datetime.now(UTC).replace(microsecond=0)
    writer = Writer(database_url)
    try:
        writer.write_rows(Rows(readings=[
            ((now - timedelta(hours=25)).timestamp(), keys["aq-kuaro-01"], METRICS["pm25"].id, 50.0),
            ((now - timedelta(hours=2)).timestamp(), keys["aq-kuaro-01"], METRICS["pm25"].id, 7.0),
        ]))
    finally:
        writer.close()

    response = client.get(URL, params={"metric": "pm25", "agg": "sum", "group_by": "none"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bucket"] == "1h" and body["agg"] == "sum"
    assert [(p["value"], p["count"]) for s in body["series"] for p in s["points"]] == [(7.0, 1)]


def test_increase_of_a_counter_across_a_reset_and_from_before_the_range(
        client: TestClient, db: psycopg.Connection, database_url: str) -> None:
    db.execute(f"TRUNCATE {', '.join(_ROLLUP_TABLES)}")
    register_device(db, "meter-grogot-01", "water_meter", "tanah-grogot")
    (key,) = db.execute("SELECT id FROM devices WHERE device_id = 'meter-grogot-01'").fetchone()
    volume = METRICS["water_volume"].id
    # (minutes after T0, counter): one reading before the range, a reset at +150 min.
    counter = [(-30, 100.0), (10, 104.0), (50, 110.5), (70, 111.0), (130, 118.0), (150, 3.0),
               (170, 5.5), (230, 9.0)]
    rows = Rows(readings=[((T0 + timedelta(minutes=m)).timestamp(), key, volume, v) for m, v in counter])
    writer = Writer(database_url)
    try:
        writer.write_rows(rows)
    finally:
        writer.close()
    start, end = T0, T0 + timedelta(hours=4)

    response = client.get(URL, params={"metric": "water_volume", "agg": "increase", "bucket": "1h",
                                       "group_by": "none", "start": start.isoformat(),
                                       "end": end.isoformat()})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unit"] == "m³"
    got = _rows_of(body)
    assert got == _planner(db, "water_volume", "1h", "increase", start, end, group_by="none")
    # The rise from each reading's predecessor (a fall is a reset: the new value is the rise).
    expected: dict[datetime, list[float]] = defaultdict(list)
    for (_, previous), (minute, value) in zip(counter, counter[1:], strict=False):
        hour = (T0 + timedelta(minutes=minute)).replace(minute=0)
        expected[hour].append(value - previous if value >= previous else value)
    assert [(t, v, c) for _, t, v, c in got] == [
        (hour, pytest.approx(sum(rises)), len(rises)) for hour, rises in sorted(expected.items())]


def test_no_matching_devices_is_an_empty_answer(client: TestClient, readings: dict[str, Any]) -> None:
    response = client.get(URL, params={"metric": "pm25", "site": "long-kali",
                                       "start": T0.isoformat(), "end": (T0 + SPAN).isoformat()})

    assert response.status_code == 200
    assert response.json()["series"] == []


def _problem(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == 400 and body["title"] == "Bad request"
    assert body["instance"] == URL
    return body


_RANGE = {"start": T0.isoformat(), "end": (T0 + SPAN).isoformat()}


@pytest.mark.parametrize(("params", "detail", "hint"), [
    # The planner's refusals: its message and its hint.
    ({"metric": "pm2.5"}, "unknown metric 'pm2.5'", "known metrics: co, conductivity,"),
    ({"metric": "pm25", "agg": "median"}, "unknown agg 'median'", "avg, min, max, sum, count"),
    ({"metric": "pm25", "agg": "increase"}, "increase needs a cumulative metric; pm25 is not one",
     "cumulative metrics: energy, water_volume"),
    ({"metric": "pm25", "bucket": "2x"}, "bucket '2x' is not a count and a unit", "1m, 5m, 15m"),
    ({"metric": "pm25", "bucket": "0m"}, "bucket '0m' is not a count and a unit", "units: s, m, h"),
    # Refused before the planner, whatever the bucket: PostgreSQL also takes POSIX zone strings,
    # which no IANA name reads like (tests/api/test_sql_injection.py found "' OR '1'='1" taken).
    ({"metric": "pm25", "tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'; give an IANA name", None),
    ({"metric": "pm25", "tz": "UTC+8"}, "unknown time zone 'UTC+8'", None),
    ({"metric": "pm25", "device": "aq-nowhere-01"}, "unknown device aq-nowhere-01", None),
    ({"metric": "pm25", "start": (T0 + SPAN).isoformat(), "end": T0.isoformat()},
     "must be before end", None),
])
def test_the_planners_refusals_are_400_problems_with_its_message_and_hint(
        client: TestClient, readings: dict[str, Any], params: dict[str, str], detail: str,
        hint: str | None) -> None:
    body = _problem(client.get(URL, params={**_RANGE, **params}))

    assert detail in body["detail"]
    if hint is None:
        assert "hint" not in body
    else:
        assert hint in body["hint"]


@pytest.mark.parametrize(("params", "name", "message"), [
    ({}, "metric", "Field required"),
    ({"metric": "pm25", "start": "yesterday"}, "start", "datetime"),
    ({"metric": "pm25", "start": "2026-02-28T12:00:00"}, "start", "timezone"),
    ({"metric": "pm25", "group_by": "district"}, "group_by", "'device', 'site' or 'none'"),
    ({"metric": "pm25", "site": "jakarta"}, "site", "unknown site 'jakarta'; known: tanah-grogot"),
    ({"metric": "pm25", "device": "AQ/01"}, "device", "pattern"),
    ({"metric": "pm25", "devices": "aq-kuaro-01"}, "devices", "Extra inputs are not permitted"),
])
def test_malformed_parameters_are_400_problems_naming_the_parameter(
        client: TestClient, readings: dict[str, Any], params: dict[str, str], name: str,
        message: str) -> None:
    body = _problem(client.get(URL, params=params))

    (error,) = [e for e in body["errors"] if e["name"].startswith(name)]
    assert error["in"] == "query" and message in error["message"]
    assert name in body["detail"]


def test_an_answer_over_the_point_limit_is_refused_before_the_planner_runs(
        small_limit_client: TestClient, db: psycopg.Connection, readings: dict[str, Any]) -> None:
    # 3 stations × 13 hourly buckets that a 12-hour range can meet: 39 points > 30.
    params = {"metric": "pm25", "bucket": "1h", **_RANGE}
    body = _problem(small_limit_client.get(URL, params=params))
    assert "up to 39 points, more than the limit of 30" in body["detail"]
    assert "larger bucket" in body["hint"]
    # The planner never ran: it would have refused this agg ("unknown agg 'median'").
    body = _problem(small_limit_client.get(URL, params={**params, "agg": "median"}))
    assert "up to 39 points" in body["detail"]

    # Within the limit: one site's pooled series, or a coarser bucket.
    assert small_limit_client.get(URL, params={**params, "group_by": "site"}).status_code == 200
    ok = small_limit_client.get(URL, params={**params, "bucket": "6h"})
    assert ok.status_code == 200
    assert len(_rows_of(ok.json())) == len(_planner(db, "pm25", "6h", "avg", T0, T0 + SPAN))


def test_the_site_count_bounds_group_by_site(small_limit_client: TestClient,
                                             readings: dict[str, Any]) -> None:
    # 2 sites × 13 hourly buckets = 26 points pass; 2 × 25 half-hour buckets = 50 do not.
    ok = small_limit_client.get(URL, params={"metric": "pm25", "group_by": "site", **_RANGE})
    assert ok.status_code == 200
    assert {s["key"] for s in ok.json()["series"]} == set(SITES) & {"tanah-grogot", "kuaro"}
    body = _problem(small_limit_client.get(URL, params={"metric": "pm25", "group_by": "site",
                                                        "bucket": "30m", **_RANGE}))
    assert "up to 50 points" in body["detail"]


@pytest.mark.parametrize(("params", "status"), [
    ({"start": "0001-01-01T00:00:00+00:00", "bucket": "99999mo"}, 200),  # two buckets in 2,000 years
    ({"start": "0001-01-01T00:00:00+00:00", "bucket": "1d"}, 400),  # 740,000 days
    ({"end": "9999-12-31T23:59:59+00:00", "bucket": "99999mo"}, 200),
    ({"bucket": "1s"}, 400),  # 43,201 seconds × 3 stations
    ({"bucket": "999999h"}, 400),  # more digits than the planner takes
    ({"tz": ""}, 400),
    ({"tz": "Asia/Kathmandu", "bucket": "1d"}, 200),  # UTC+5:45: answered from raw readings
])
def test_extreme_values_are_answered_or_refused_never_a_500(
        client: TestClient, readings: dict[str, Any], params: dict[str, str], status: int) -> None:
    response = client.get(URL, params={"metric": "pm25", **_RANGE, **params})

    assert response.status_code == status, response.text
    if status == 200:
        total = sum(p["count"] for s in response.json()["series"] for p in s["points"])
        assert total == 3 * 144  # every reading of the range, in whatever buckets
    else:
        assert response.json()["detail"]


def test_the_route_is_in_the_openapi_document(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"][URL]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"metric", "bucket", "agg", "start", "end", "device", "site", "group_by", "tz"}
    assert params["metric"]["required"] is True
    assert "400" in operation["responses"]
