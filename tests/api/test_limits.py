"""Request limits (api.limits): every refusal is a 4xx problem that states the bound, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx2
import psycopg
import pytest

from api import create_app
from api.errors import BadRequest
from api.limits import check_range, range_start
from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS
from smartcity.devices import register_device
from smartcity.settings import Settings
from tests.api.client import TestClient

PROBLEM = "application/problem+json"
ROUTES = ["/api/v1/health", "/api/v1/sites", "/api/v1/devices", "/api/v1/aggregates", "/api/v1/ispu",
          "/api/v1/devices/aq-kuaro-01/latest", "/metrics", "/no-such-route"]


def _problem(response: httpx2.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
def tight_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client of an app with small limits: 200 query bytes, 5 parameters, 7-day aggregates."""
    tight = settings.model_copy(update={"api": settings.api.model_copy(update={
        "max_query_length": 200, "max_query_params": 5, "aggregate_max_range_days": 7})})
    with TestClient(create_app(tight), headers=admin_headers) as client:
        yield client


@pytest.mark.parametrize("route", ROUTES)
def test_a_query_string_over_the_length_limit_is_a_414_on_every_route(
        tight_client: TestClient, route: str) -> None:
    body = _problem(tight_client.get(route, params={"x": "a" * 199}), 414)
    assert "201 bytes, more than the limit of 200" in str(body["detail"])
    assert body["max_length"] == 200
    # At the limit, the limits let it through (whatever the route then says of the parameter).
    assert tight_client.get(route, params={"x": "a" * 198}).status_code != 414


@pytest.mark.parametrize("route", ROUTES)
def test_more_parameters_than_the_limit_is_a_400_on_every_route(
        tight_client: TestClient, route: str) -> None:
    body = _problem(tight_client.get(route, params=[("site", "kuaro")] * 6), 400)
    assert "6 parameters, more than the limit of 5 (repeated ones count each time)" in str(body["detail"])
    assert body["max_params"] == 5
    assert "parameters" not in tight_client.get(route, params=[("site", "kuaro")] * 5).text


def test_repeated_devices_count_against_the_default_limit(client: TestClient) -> None:
    devices = [("device", f"aq-kuaro-{i:02d}") for i in range(100)]
    body = _problem(client.get("/api/v1/aggregates", params=[("metric", "pm25"), *devices]), 400)
    assert "101 parameters, more than the limit of 100" in str(body["detail"])
    # 99 devices and the metric: the limits pass it, and the planner names the unknown devices.
    body = _problem(client.get("/api/v1/aggregates", params=[("metric", "pm25"), *devices[:99]]), 400)
    assert "unknown device aq-kuaro-00" in str(body["detail"])


@pytest.mark.parametrize("query", ["metric=pm25&tz=%00", "metric=%00", "site=kuaro%00"])
def test_a_nul_in_the_query_is_a_400_naming_it(client: TestClient, query: str) -> None:
    body = _problem(client.get(f"/api/v1/aggregates?{query}"), 400)
    assert "NUL character (%00)" in str(body["detail"])


def test_the_aggregate_range_limit_states_its_bound(tight_client: TestClient) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    params = {"metric": "pm25", "bucket": "1d", "start": start.isoformat()}
    body = _problem(tight_client.get("/api/v1/aggregates", params={
        **params, "end": (start + timedelta(days=7, seconds=1)).isoformat()}), 400)
    assert "spans 7.0 days, more than the limit of 7 days" in str(body["detail"])
    assert body["max_range_days"] == 7 and body["hint"]
    end = start + timedelta(days=7)
    ok = tight_client.get("/api/v1/aggregates", params={**params, "end": end.isoformat()})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("route", "params", "status", "message"), [
    # Bare numbers are not RFC 3339 (pydantic alone would read them as epoch seconds).
    ("/api/v1/ispu", {"site": "kuaro", "at": "0"}, 422, "RFC 3339 datetime with an offset"),
    ("/api/v1/aggregates", {"metric": "pm25", "end": "1700000000"}, 400, "RFC 3339 datetime"),
    # Times that exist only in their own offset: no UTC time to compare or store.
    ("/api/v1/ispu", {"site": "kuaro", "at": "0001-01-01T00:00:00+01:00"}, 422, "no UTC time"),
    ("/api/v1/aggregates", {"metric": "pm25", "end": "9999-12-31T23:59:59-01:00"}, 400, "no UTC time"),
])
def test_times_must_be_rfc_3339_with_a_utc_time(client: TestClient, route: str, params: dict[str, str],
                                              status: int, message: str) -> None:
    body = _problem(client.get(route, params=params), status)
    assert message in str(body["detail"])


def test_the_default_start_of_the_earliest_end_cannot_overflow(client: TestClient) -> None:
    # end − 24 h would be before year 1: the start is the earliest time, and the planner says why
    # that range is empty.
    body = _problem(client.get("/api/v1/aggregates", params={
        "metric": "pm25", "end": "0001-01-01T00:00:00Z"}), 400)
    assert "must be before end" in str(body["detail"])
    earliest = datetime.min.replace(tzinfo=UTC)
    assert range_start(earliest + timedelta(hours=1), timedelta(days=1)) == earliest
    assert range_start(earliest + timedelta(days=2), timedelta(days=1)) == earliest + timedelta(days=1)


def test_check_range_passes_the_bound_and_refuses_beyond() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    check_range(start, start + timedelta(days=30), timedelta(days=30))
    with pytest.raises(BadRequest, match="spans 30.5 days, more than the limit of 30 days"):
        check_range(start, start + timedelta(days=30, hours=12), timedelta(days=30))


def test_a_statement_over_the_timeout_is_cancelled_and_a_503(
        settings: Settings, db: psycopg.Connection, database_url: str,
        admin_headers: dict[str, str]) -> None:
    register_device(db, "aq-slow-01", "air_quality_station", "kuaro")
    device = db.execute("SELECT id FROM devices WHERE device_id = 'aq-slow-01'").fetchone()
    assert device is not None
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = Rows(readings=[((start + timedelta(seconds=10 * i)).timestamp(), device[0], METRICS["pm25"].id,
                           float(i % 100)) for i in range(20_000)])
    writer = Writer(database_url)
    try:
        writer.write_rows(rows)
    finally:
        writer.close()
    question = {"metric": "pm25", "bucket": "1d", "start": start.isoformat(),
                "end": (start + timedelta(days=3)).isoformat()}
    impatient = settings.model_copy(update={"api": settings.api.model_copy(update={
        "statement_timeout_ms": 1})})
    with TestClient(create_app(impatient), headers=admin_headers) as client:
        body = _problem(client.get("/api/v1/aggregates", params=question), 503)
        assert "ran longer than the API allows" in str(body["detail"])
    # The same question with the default timeout is answered: every reading counted.
    with TestClient(create_app(settings), headers=admin_headers) as client:
        answer = client.get("/api/v1/aggregates", params=question)
        assert answer.status_code == 200, answer.text
        assert sum(p["count"] for s in answer.json()["series"] for p in s["points"]) == 20_000
