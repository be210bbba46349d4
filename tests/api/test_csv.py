"""CSV answers of /readings and /aggregates: negotiation, equal to the JSON, streamed, and the pooled
connection given back when the client leaves mid-stream (a real uvicorn server, the real database)."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import anyio
import httpx2 as httpx
import psycopg
import pytest
import uvicorn
from starlette.requests import ClientDisconnect
from starlette.types import Message

from api import create_app
from api.csv import start_csv_response
from api.negotiation import NotAcceptable, choose_representation
from smartcity.services import free_port
from smartcity.settings import Settings
from tests.api.client import TestClient
from tests.api.readings_seed import T0, register, write_readings
from tests.services import wait_until

READINGS = "/api/v1/readings"
AGGREGATES = "/api/v1/aggregates"
CSV = {"Accept": "text/csv"}
SPAN = timedelta(hours=4)
WINDOW = {"start": T0.isoformat(), "end": (T0 + SPAN).isoformat()}
DEVICES = ["aq-grogot-01", "aq-grogot-02", "wx-kuaro-01"]


@pytest.mark.parametrize(("accept", "chosen"), [
    (None, "application/json"),
    ("", "application/json"),
    ("*/*", "application/json"),
    ("application/json", "application/json"),
    ("text/csv", "text/csv"),
    ("TEXT/CSV; charset=utf-8", "text/csv"),
    ("text/*", "text/csv"),
    ("application/*", "application/json"),
    ("text/csv, application/json", "application/json"),  # a tie goes to JSON
    ("text/csv, application/json;q=0.5", "text/csv"),
    ("text/csv;q=0.4, */*;q=0.5", "application/json"),
    ("text/html, */*;q=0.1", "application/json"),
    ("application/json;q=0, text/csv;q=0.1", "text/csv"),
    ("text/csv;q=oops, application/json;q=0.2", "application/json"),  # a malformed q is 0
])
def test_the_representation_follows_the_accept_header(accept: str | None, chosen: str) -> None:
    assert choose_representation(accept) == chosen


@pytest.mark.parametrize("accept", ["image/png", "text/html, application/xml", "application/json;q=0",
                                    "*/*;q=0", "nonsense"])
def test_an_accept_header_that_takes_neither_type_is_refused(accept: str) -> None:
    with pytest.raises(NotAcceptable) as raised:
        choose_representation(accept)
    assert raised.value.extensions["supported"] == ["application/json", "text/csv"]


def test_a_response_cut_before_its_body_still_closes_its_source() -> None:
    closed: list[str] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            yield b"key,time,value,count\r\n"
            yield b"never sent\r\n"
        finally:
            closed.append("source")

    async def send(message: Message) -> None:
        raise OSError("the client has gone")  # as a server reports a closed socket

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def run() -> None:
        response = await start_csv_response(source())
        with pytest.raises(ClientDisconnect):
            await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
        # Closed by the response, not later by the event loop's finalisation of lost generators.
        assert closed == ["source"]

    anyio.run(run)


@pytest.fixture
def keys(db: psycopg.Connection) -> dict[str, int]:
    return register(db)


@pytest.fixture
def seeded(database_url: str, keys: dict[str, int]) -> int:
    """pm25 and pm10 of two stations and a temperature series: 1,120 readings in the window."""
    start = T0.timestamp()
    series = (("aq-grogot-01", "pm25", 60), ("aq-grogot-01", "pm10", 60), ("aq-grogot-02", "pm25", 90),
              ("wx-kuaro-01", "temperature", 30))
    return write_readings(database_url, keys, [
        (device, metric, start + offset, round(i * 0.37 % 30, 6) + 0.1 * (i % 3))
        for device, metric, step in series
        for i, offset in enumerate(range(-300, int(SPAN.total_seconds()) + 300, step))])


def _csv_rows(text: str) -> list[list[str]]:
    assert text.endswith("\r\n")
    return list(csv.reader(io.StringIO(text, newline="")))


def _json_readings(client: TestClient, params: dict[str, Any]) -> list[list[str]]:
    """Every page's readings as CSV would write them: the JSON's time text, repr of the value."""
    rows, url, query = [], READINGS, params
    while url is not None:
        body = client.get(url, params=query).json()
        rows += [[item["device_id"], item["metric"], item["time"], repr(item["value"]), item["unit"]]
                 for item in body["items"]]
        url, query = body["next"], None
    return rows


def test_readings_csv_is_the_json_answer_streamed(client: TestClient, seeded: int) -> None:
    params = {"device": DEVICES, **WINDOW}
    response = client.get(READINGS, params=params, headers=CSV)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "link" not in response.headers  # the window fits in one CSV answer
    header, *rows = _csv_rows(response.text)
    assert header == ["device_id", "metric", "time", "value", "unit"]
    assert rows == _json_readings(client, {**params, "limit": 333})
    assert 1000 < len(rows) < seeded
    assert all(float(row[3]) == float(repr(float(row[3]))) for row in rows)
    assert {row[4] for row in rows} == {"µg/m³", "°C"}


@pytest.fixture
def small_csv_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    """A client whose CSV answers hold at most 250 rows."""
    api = settings.api.model_copy(update={"readings_csv_max_rows": 250})
    with TestClient(create_app(settings.model_copy(update={"api": api})), headers=admin_headers) as client:
        yield client


def test_a_csv_answer_stops_at_its_row_limit_with_a_link_to_the_rest(
        small_csv_client: TestClient, client: TestClient, seeded: int) -> None:
    params = {"device": DEVICES, **WINDOW}
    chunks, url, query = [], READINGS, params
    while True:
        response = small_csv_client.get(url, params=query, headers=CSV)
        assert response.status_code == 200, response.text
        header, *rows = _csv_rows(response.text)
        chunks.append(rows)
        if "link" not in response.headers:
            break
        link = response.headers["link"]
        assert link.startswith("<") and link.endswith('>; rel="next"')
        url, query = link[1:-len('>; rel="next"')], None
    assert [len(rows) for rows in chunks[:-1]] == [250] * (len(chunks) - 1) and len(chunks) > 3
    assert [row for rows in chunks for row in rows] == _json_readings(client, {**params, "limit": 1000})
    # limit lowers the answer's rows, never raises them past the setting
    assert len(_csv_rows(small_csv_client.get(
        READINGS, params={**params, "limit": 7}, headers=CSV).text)) == 8
    too_many = small_csv_client.get(READINGS, params={**params, "limit": 251}, headers=CSV)
    assert too_many.status_code == 400
    assert too_many.headers["content-type"] == "application/problem+json"
    assert "250" in too_many.json()["detail"]


def test_aggregates_csv_is_the_json_answer(client: TestClient, seeded: int) -> None:
    for params in ({"metric": "pm25", "bucket": "15m", "group_by": "device"},
                   {"metric": "pm25", "bucket": "1h", "agg": "max", "group_by": "site"},
                   {"metric": "temperature", "bucket": "5m", "agg": "last", "group_by": "none"}):
        query = {**params, **WINDOW}
        body = client.get(AGGREGATES, params=query).json()
        expected = [[series["key"], point["time"], repr(point["value"]), str(point["count"])]
                    for series in body["series"] for point in series["points"]]
        response = client.get(AGGREGATES, params=query, headers=CSV)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        header, *rows = _csv_rows(response.text)
        assert header == ["key", "time", "value", "count"]
        assert rows == expected and len(rows) >= 4, params


def test_csv_refusals_are_problem_documents(client: TestClient, settings: Settings, seeded: int,
                                            admin_headers: dict[str, str]) -> None:
    unknown = client.get(AGGREGATES, params={"metric": "pm2.5"}, headers=CSV)
    assert unknown.status_code == 400 and "unknown metric" in unknown.json()["detail"]
    api = settings.api.model_copy(update={"aggregate_max_points": 3})
    with TestClient(create_app(settings.model_copy(update={"api": api})), headers=admin_headers) as small:
        too_big = small.get(AGGREGATES, params={"metric": "pm25", "bucket": "1h", **WINDOW}, headers=CSV)
    assert too_big.status_code == 400
    assert too_big.headers["content-type"] == "application/problem+json"
    assert "more than the limit of 3" in too_big.json()["detail"]
    for url, params in ((READINGS, {"device": "aq-grogot-01"}), (AGGREGATES, {"metric": "pm25"})):
        refused = client.get(url, params=params, headers={"Accept": "application/xml"})
        assert refused.status_code == 406, url
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["supported"] == ["application/json", "text/csv"]
        assert client.get(url, params=params, headers={"Accept": "*/*"}).headers[
            "content-type"] == "application/json"


@contextmanager
def _serving(settings: Settings) -> Iterator[tuple[str, uvicorn.Server]]:
    """Serve the app with uvicorn (as `smartcity api` does) on a free port, in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                          log_config=None, lifespan="on", http="httptools"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20, message="uvicorn started")
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive()


@pytest.fixture
def many(database_url: str, keys: dict[str, int]) -> int:
    """240,000 readings over a week (about 17 MB of CSV): more than the sockets between hold."""
    start = T0.timestamp()
    return write_readings(database_url, keys, [
        (device, metric, start + i * 10.0, i % 500 + 0.25)
        for device, metric in (("aq-grogot-01", "pm25"), ("aq-grogot-01", "pm10"),
                               ("aq-grogot-02", "pm25"), ("wx-kuaro-01", "temperature"))
        for i in range(60_000)])


def _stream_backends(db: psycopg.Connection) -> list[tuple[str, str]]:
    """(state, query) of the API's database sessions that hold the CSV cursor's transaction."""
    return db.execute(
        "SELECT state, query FROM pg_stat_activity"
        " WHERE application_name = 'smartcity-api' AND state <> 'idle'"
        " AND query LIKE '%%smartcity_stream%%'").fetchall()


def _pool_stats(server: uvicorn.Server) -> dict[str, int]:
    return dict(server.lifespan.state["pool"].get_stats())


@pytest.mark.slow
def test_csv_streams_from_a_server_side_cursor_and_gives_the_connection_back_on_disconnect(
        settings: Settings, db: psycopg.Connection, many: int, admin_headers: dict[str, str]) -> None:
    api = settings.api.model_copy(update={"pool_max_size": 1})
    params = {"device": DEVICES, "start": T0.isoformat(), "end": (T0 + timedelta(days=7)).isoformat()}
    with _serving(settings.model_copy(update={"api": api})) as (url, server), \
            httpx.Client(base_url=url, timeout=30, headers=admin_headers) as http:
        # 1. The first chunk arrives while the query is still being read in batches: the API's
        #    session is inside the stream's transaction, fetching from the server-side cursor.
        with http.stream("GET", READINGS, params=params, headers=CSV) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/csv; charset=utf-8"
            chunks = response.iter_bytes()
            first = next(chunks)
            assert first.startswith(b"device_id,metric,time,value,unit\r\n")
            held = wait_until(lambda: _stream_backends(db), timeout=10, message="the stream's cursor")
            assert any("FETCH" in query or "DECLARE" in query for _, query in held), held
            rest = b"".join(chunks)
        assert (first + rest).count(b"\r\n") == many + 1
        wait_until(lambda: not _stream_backends(db), timeout=10, message="the stream's end")

        # 2. A client that leaves after a few lines: the connection goes back to the pool (of one)…
        for _ in range(3):
            with http.stream("GET", READINGS, params=params, headers=CSV) as response:
                lines = response.iter_lines()
                assert [next(lines) for _ in range(5)][0] == "device_id,metric,time,value,unit"
            wait_until(lambda: not _stream_backends(db), timeout=10, message="the stream's transaction ended")
            wait_until(lambda: _pool_stats(server).get("pool_available") == 1, timeout=10,
                       message="the connection back in the pool")
            # …and the next request gets it at once.
            answer = http.get(READINGS, params={**params, "limit": 5}, timeout=3)
            assert answer.status_code == 200 and len(answer.json()["items"]) == 5
        # The same connection every time: given back whole, not closed and replaced.
        stats = _pool_stats(server)
        assert stats.get("connections_num") == 1 and stats.get("returns_bad", 0) == 0, stats
        # The week starts at 08:00 WITA: eight WITA days for each of the two pm25 stations.
        daily = {"metric": "pm25", "bucket": "1d", "start": params["start"], "end": params["end"]}
        aggregate = http.get(AGGREGATES, params=daily, headers=CSV)
        assert aggregate.status_code == 200 and aggregate.text.count("\r\n") == 1 + 2 * 8
