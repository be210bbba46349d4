"""GET /api/v1/readings against the real database: pages, the cursor, concurrent inserts, bounds, plan."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from api import create_app
from api.pagination import Cursor, Filters, ReadingKey, encode_cursor
from api.queries.readings import Series, Window
from smartcity.catalog import METRICS
from smartcity.db.queries import readings as reading_sql
from smartcity.settings import Settings
from tests.api.client import TestClient
from tests.api.readings_seed import T0, ReadingRow, register, stored_readings, write_readings

URL = "/api/v1/readings"
SPAN = timedelta(hours=6)
END = T0 + SPAN
WINDOW = {"start": T0.isoformat(), "end": END.isoformat()}
# Every series of the three devices: ties of time across series, and one reading 1 µs after another.
_SERIES = (("aq-grogot-01", "pm25", 60), ("aq-grogot-01", "pm10", 60), ("aq-grogot-02", "pm25", 90),
           ("wx-kuaro-01", "temperature", 45))


def _value(i: int, metric: str) -> float:
    # Values whose shortest repr has many digits (0.1 steps do not add up exactly).
    return round((i * 7.3) % 40 + METRICS[metric].min_value + 0.1, 10) + i * 0.1


@pytest.fixture
def keys(db: psycopg.Connection) -> dict[str, int]:
    return register(db)


@pytest.fixture
def seeded(db: psycopg.Connection, database_url: str, keys: dict[str, int]) -> list[ReadingRow]:
    """1,441 readings over 6 hours (plus some outside), stored through ingest's writer."""
    start = T0.timestamp()
    readings = [(device, metric, start + offset, _value(i, metric))
                for device, metric, step in _SERIES
                for i, offset in enumerate(range(-600, int(SPAN.total_seconds()) + 600, step))]
    readings.append(("aq-grogot-02", "pm10", start + 3600.000001, 12.5))  # 1 µs after pm25's
    write_readings(database_url, keys, readings)
    return stored_readings(db, T0, END)


def _row(item: dict[str, Any]) -> ReadingRow:
    return item["device_id"], item["metric"], datetime.fromisoformat(item["time"]), item["value"]


def _pages(client: TestClient, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    response = client.get(URL, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        yield body
        if body["next"] is None:
            assert "link" not in response.headers
            return
        assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        response = client.get(body["next"])


def test_pages_concatenate_to_exactly_the_readings_in_range_in_order(
        client: TestClient, seeded: list[ReadingRow]) -> None:
    params = {"device": ["aq-grogot-01", "aq-grogot-02", "wx-kuaro-01"], **WINDOW, "limit": 97}
    pages = list(_pages(client, params))
    got = [_row(item) for page in pages for item in page["items"]]
    assert len(seeded) > 1400
    assert got == seeded
    assert [len(page["items"]) for page in pages[:-1]] == [97] * (len(pages) - 1)
    assert 0 < len(pages[-1]["items"]) <= 97
    units = {item["metric"]: item["unit"] for page in pages for item in page["items"]}
    assert units == {"pm25": "µg/m³", "pm10": "µg/m³", "temperature": "°C"}


def test_the_default_page_holds_1000_readings(client: TestClient, seeded: list[ReadingRow]) -> None:
    body = client.get(URL, params={"site": ["tanah-grogot", "kuaro"], **WINDOW}).json()
    assert [_row(item) for item in body["items"]] == seeded[:1000]
    assert body["next_cursor"] is not None


def test_site_metric_and_device_filters_select_their_series(
        client: TestClient, db: psycopg.Connection, seeded: list[ReadingRow]) -> None:
    def everything(**params: Any) -> list[ReadingRow]:
        return [_row(item) for page in _pages(client, {**params, **WINDOW, "limit": 500})
                for item in page["items"]]

    assert everything(site="kuaro") == [row for row in seeded if row[0] == "wx-kuaro-01"]
    assert everything(site="tanah-grogot", metric="pm10") == [
        row for row in seeded if row[1] == "pm10"]
    # device and site together: the devices named that stand in those sites
    assert everything(device=["aq-grogot-02", "wx-kuaro-01"], site="tanah-grogot") == [
        row for row in seeded if row[0] == "aq-grogot-02"]
    # a metric the device does not report: no series, no readings
    assert everything(device="wx-kuaro-01", metric="pm25") == []


def test_a_reading_inserted_while_paging_shifts_no_page(
        client: TestClient, database_url: str, keys: dict[str, int], seeded: list[ReadingRow]) -> None:
    params = {"device": ["aq-grogot-01", "aq-grogot-02", "wx-kuaro-01"], **WINDOW, "limit": 100}
    response = client.get(URL, params=params)
    got: list[ReadingRow] = []
    pages = 0
    while True:
        body = response.json()
        got += [_row(item) for item in body["items"]]
        pages += 1
        if body["next"] is None:
            break
        # Behind the cursor (values from 1000 on): earlier than the last row, and at its time in a
        # series ordered before it when there is one.
        last_time = got[-1][2].timestamp()
        behind = [("aq-grogot-02", "pm10", last_time - 7.5, 1000.0 + pages)]
        if got[-1][:2] > ("aq-grogot-01", "co"):
            behind.append(("aq-grogot-01", "co", last_time, 1000.0 + pages))
        # Ahead of it, still in the window: it must be served by a later page.
        ahead = [("wx-kuaro-01", "humidity", last_time + 600.5, 50.0 + pages / 8)]
        write_readings(database_url, keys, behind + ahead)
        response = client.get(body["next"])
    assert pages > 10
    assert len(got) == len(set(got)), "a reading was served twice"
    assert got == sorted(got, key=lambda row: (row[2], row[0], row[1]))
    served = set(got)
    assert [row for row in seeded if row not in served] == [], "a reading present at the start was skipped"
    assert not any(row[3] >= 1000 for row in got), "a reading inserted behind the cursor was served"
    assert sum(1 for row in got if row[1] == "humidity") >= pages - 3  # those ahead were served


def test_a_cursor_with_other_filters_or_altered_is_a_400(client: TestClient,
                                                         seeded: list[ReadingRow]) -> None:
    params = {"device": ["aq-grogot-01"], **WINDOW, "limit": 10}
    cursor = client.get(URL, params=params).json()["next_cursor"]
    assert client.get(URL, params={**params, "cursor": cursor}).status_code == 200
    # repetition and order of the filters do not matter; start and end may be left out
    same = {"device": ["aq-grogot-01", "aq-grogot-01"], "limit": 10, "cursor": cursor}
    assert client.get(URL, params=same).status_code == 200

    def refused(**changes: Any) -> dict[str, Any]:
        response = client.get(URL, params={**params, "cursor": cursor, **changes})
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return response.json()

    assert "another query" in refused(device=["aq-grogot-02"])["detail"]
    assert "another query" in refused(metric="pm25")["detail"]
    assert "another query" in refused(site="tanah-grogot")["detail"]
    assert "start differs" in refused(start=(T0 + timedelta(minutes=1)).isoformat())["detail"]
    assert "end differs" in refused(end=(END - timedelta(minutes=1)).isoformat())["detail"]
    # an edited position: the checksum no longer matches
    fields = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    fields[1] -= 60_000_000
    edited = base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()
    assert "altered" in refused(cursor=edited)["detail"]
    # A forged cursor (the checksum is no secret) is held to the same bounds as a request.
    forged = encode_cursor(Cursor(ReadingKey(T0, "aq-grogot-01", "pm25"), T0 - timedelta(days=400), END),
                           Filters.of(["aq-grogot-01"], [], []))
    response = client.get(URL, params={"device": "aq-grogot-01", "limit": 10, "cursor": forged})
    assert response.status_code == 400 and "31 days" in response.json()["detail"]
    for garbage in ("abc", "!!!", cursor[:-6], base64.urlsafe_b64encode(b"[1,2]").decode(), "e30"):
        assert "not one this API issued" in refused(cursor=garbage)["detail"], garbage
    assert client.get(URL, params={**params, "cursor": "x" * 1001}).status_code == 422


_WX = {"device": "wx-kuaro-01", "metric": "temperature"}


@pytest.fixture
def small_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client whose pages hold at most 50 readings, ranges 2 days and requests 3 series."""
    api = settings.api.model_copy(update={"readings_max_page": 50, "readings_max_range_days": 2,
                                          "readings_max_series": 3})
    with TestClient(create_app(settings.model_copy(update={"api": api})), headers=admin_headers) as client:
        yield client


def test_limits_and_ranges_are_bounded_with_the_bound_in_the_400(
        small_client: TestClient, seeded: list[ReadingRow]) -> None:
    # The weather station reports six metrics: one is a single series.
    def detail(status: int, **params: Any) -> str:
        response = small_client.get(URL, params=params)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return str(response.json()["detail"])

    first = small_client.get(URL, params={**_WX, **WINDOW})
    assert first.status_code == 200, first.text
    assert len(first.json()["items"]) == 50
    assert len(small_client.get(URL, params={**_WX, **WINDOW, "limit": 50}
                                ).json()["items"]) == 50
    assert "limit 51 is above the most a page may hold, 50" in detail(
        400, **_WX, limit=51, **WINDOW)
    assert "limit" in detail(422, **_WX, limit=0)
    assert "limit" in detail(422, **_WX, limit="many")
    assert "2 days" in detail(400, **_WX, start=T0.isoformat(),
                              end=(T0 + timedelta(days=2, seconds=1)).isoformat())
    assert "must be before end" in detail(400, **_WX, start=END.isoformat(),
                                          end=T0.isoformat())
    assert "start" in detail(422, **_WX, start="2026-03-01T00:00:00")  # no offset
    assert "4 series" in detail(400, site="tanah-grogot", metric=["pm25", "pm10"])
    assert len(small_client.get(URL, params={"site": "tanah-grogot", "metric": "pm25", **WINDOW}
                                ).json()["items"]) == 50


def test_bad_filters_are_clear_errors(client: TestClient, seeded: list[ReadingRow]) -> None:
    missing = client.get(URL, params=WINDOW)
    assert missing.status_code == 400 and "device or site" in missing.json()["detail"]
    unknown = client.get(URL, params={"device": ["aq-grogot-01", "nope-01", "gone-02"]})
    assert unknown.status_code == 400
    assert unknown.json()["unknown"] == ["gone-02", "nope-01"]
    metric = client.get(URL, params={"device": "aq-grogot-01", "metric": "pm2.5"})
    assert metric.status_code == 422 and "known: pm25, pm10" in metric.json()["detail"]
    site = client.get(URL, params={"site": "jakarta"})
    assert site.status_code == 422 and "unknown site 'jakarta'" in site.json()["detail"]
    bad_id = client.get(URL, params={"device": "Not An Id"})
    assert bad_id.status_code == 422
    extra = client.get(URL, params={"devices": "aq-grogot-01"})
    assert extra.status_code == 422 and "devices" in extra.json()["detail"]


def test_a_silent_device_has_an_empty_last_page(client: TestClient, keys: dict[str, int]) -> None:
    response = client.get(URL, params={"device": "aq-grogot-01"})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None, "next": None}


def test_the_page_is_a_merge_of_range_scans_not_a_sort_of_the_range(
        db: psycopg.Connection, database_url: str, keys: dict[str, int]) -> None:
    # Enough readings (3 series × 20,000) for the planner to choose as it does on a large table.
    start = T0.timestamp()
    names = (("aq-grogot-01", "pm25"), ("aq-grogot-02", "pm25"), ("wx-kuaro-01", "rainfall"))
    write_readings(database_url, keys, [(device, metric, start + i * 10, float(i))
                                        for device, metric in names for i in range(20_000)])
    db.execute("ANALYZE readings")
    series = [Series(device, metric, keys[device], METRICS[metric].id) for device, metric in names]
    window = Window(T0, T0 + timedelta(days=3))
    params: list[Any] = []
    for one in series:
        params += [one.device_key, one.metric_key, *window.bounds(one), 1001]
    query = reading_sql.select_readings_page(len(series)).as_string(db)
    [[plan]] = db.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", [*params, 1001]).fetchall()

    def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    found = list(nodes(plan[0]["Plan"]))
    types = [node["Node Type"] for node in found]
    assert "Merge Append" in types, types
    assert "Sort" not in types, types  # an Incremental Sort of equal times is fine
    scans = [node for node in found if node["Node Type"].startswith("Index")]
    assert scans and all("readings_device_metric_time" in node["Index Name"] for node in scans)
    # Each series is read only as far as the page needs (a row or two past it for the merge and
    # the equal times), not over the whole range's 60,000 readings.
    assert sum(node["Actual Rows"] for node in scans) < 1100
