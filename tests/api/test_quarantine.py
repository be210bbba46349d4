"""GET /api/v1/quarantine against the real database, fed through ingest's real route + writer path."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
import pytest

from api.routes.quarantine import PAGE_BYTES_MAX, show_payload
from ingest.batch import InboundMessage
from ingest.pipeline import route_batch
from ingest.replay import list_quarantine, replay_unknown_devices
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.contract import Reason, telemetry_topic
from smartcity.db.queries import quarantine as quarantine_sql
from smartcity.devices import register_device
from tests.api.client import TestClient

WINDOW = TimeWindow(future_s=300, past_s=400 * 86400)
URL = "/api/v1/quarantine"
AQ = "aq-tanah-grogot-01"  # never registered before a test registers it
NOISE = "noise-kuaro-01"   # registered by ``seeded``
BASE = float(int(time.time()) - 3 * 3600)  # whole seconds: exact through timestamptz


def _receive(database_url: str, *messages: InboundMessage) -> None:
    """Store ``messages`` one batch each (ids follow their order), as an ingest worker does."""
    writer = Writer(database_url)
    try:
        for message in messages:
            rows = route_batch(writer, [message], WINDOW, threading.Event())
            assert rows is not None and writer.store(rows, threading.Event()) is not None
    finally:
        writer.close()


def _msg(device_id: str, minute: int, payload: bytes, topic: str | None = None) -> InboundMessage:
    return InboundMessage(topic or telemetry_topic(device_id), payload, BASE + 60 * minute)


def _at(minute: int) -> str:
    return datetime.fromtimestamp(BASE + 60 * minute, UTC).isoformat()


def _ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["items"]]


# id: (minute received, device, payload) — the ids are the insert order.
SEED = {
    1: (0, AQ, b'{"metrics": {"pm25": 12.5}}'),  # unknown_device
    2: (10, NOISE, b'{"metrics": {"noise_level": 500}}'),  # out_of_range
    3: (20, NOISE, b"{not json"),  # invalid_json
    4: (30, NOISE, b'{"metrics": {"noise_level": 900, "foo": 1, "bar": 2}}'),  # 3 parts
    5: (40, None, b'{"metrics": {"pm25": 1}}'),  # invalid_topic
    6: (50, AQ, b"\xff\xfe\x1b[2J\x00binary"),  # unknown_device
}


@pytest.fixture
def seeded(database_url: str, db: psycopg.Connection) -> None:
    register_device(db, NOISE, "noise_monitor", "kuaro")
    _receive(database_url, *(
        _msg(device or NOISE, minute, payload,
             None if device else "smartcity/v1/devices/noise-kuaro-01/telemetry/extra")
        for minute, device, payload in SEED.values()))
    assert [r[0] for r in db.execute("SELECT id FROM quarantine ORDER BY id")] == list(SEED)


def test_an_item_shows_every_part_its_payload_and_where_it_came_from(
        client: TestClient, seeded: None) -> None:
    response = client.get(URL, params={"device": NOISE, "reason": "unknown_metric"})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert (body["next_cursor"], body["next"]) == (None, None) and "link" not in response.headers
    [item] = body["items"]
    payload = SEED[4][2]
    assert item == {
        "id": 4, "received_at": item["received_at"], "topic": telemetry_topic(NOISE), "device_id": NOISE,
        "reason": item["parts"][0]["reason"], "reasons": {"out_of_range": 1, "unknown_metric": 2},
        "detail": f'{item["parts"][0]["detail"]} (and 2 more rejected parts)', "parts_total": 3,
        "parts": item["parts"],
        "content_type": None,
        "payload": {"encoding": "utf-8", "data": payload.decode(), "size": len(payload),
                    "stored": len(payload), "shown": len(payload), "capped": False},
        "replayed_at": None, "replay_of": None,
    }
    assert datetime.fromisoformat(item["received_at"]) == datetime.fromisoformat(_at(30))
    assert sorted(p["reason"] for p in item["parts"]) == ["out_of_range", "unknown_metric", "unknown_metric"]
    details = " | ".join(p["detail"] for p in item["parts"])
    assert "noise_level" in details and "foo" in details and "bar" in details


def test_binary_payloads_come_as_base64_text_as_text(client: TestClient, seeded: None) -> None:
    items = {i["id"]: i for i in client.get(URL, params={"state": "all"}).json()["items"]}

    binary = items[6]["payload"]
    assert binary["encoding"] == "base64" and base64.b64decode(binary["data"]) == SEED[6][2]
    assert (binary["size"], binary["shown"], binary["capped"]) == (len(SEED[6][2]),) * 2 + (False,)
    assert items[3]["payload"]["encoding"] == "utf-8" and items[3]["payload"]["data"] == "{not json"
    assert items[5]["reason"] == "invalid_topic" and items[5]["device_id"] is None


# Each filter alone, and combined; the expected ids are newest first. Pending is the default state.
@pytest.mark.parametrize(("query", "expected"), [
    ({}, [6, 5, 4, 3, 2, 1]),
    ({"reason": "out_of_range"}, [4, 2]),
    ({"reason": ["invalid_json", "invalid_topic"]}, [5, 3]),
    ({"reason": ["unknown_metric", "unknown_metric"]}, [4]),
    ({"device": NOISE}, [4, 3, 2]),
    ({"device": AQ, "reason": "unknown_device"}, [6, 1]),
    ({"device": "nobody-here"}, []),
    ({"since": _at(10)}, [6, 5, 4, 3, 2]),                  # inclusive
    ({"until": _at(20)}, [2, 1]),                           # exclusive
    ({"since": _at(10), "until": _at(40)}, [4, 3, 2]),
    ({"since": "2026-01-01T00:00:00+08:00", "until": "2026-01-02T00:00:00+08:00"}, []),
    ({"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"}, [6, 5, 4, 3, 2, 1]),
    ({"since": _at(10), "device": NOISE, "reason": "invalid_json"}, [3]),
    ({"state": "replayed"}, []),
    ({"state": "all"}, [6, 5, 4, 3, 2, 1]),
])
def test_each_filter_narrows_the_listing(client: TestClient, seeded: None, query: dict[str, Any],
                                         expected: list[int]) -> None:
    response = client.get(URL, params=query)

    assert response.status_code == 200, response.text
    assert _ids(response.json()) == expected


def test_the_state_filter_follows_replay(client: TestClient, seeded: None, database_url: str,
                                         db: psycopg.Connection) -> None:
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    # Item 6 is not JSON: replayed, it is quarantined again as a new row pointing at it.
    assert replay_unknown_devices(database_url, WINDOW).messages_replayed == 2

    assert _ids(client.get(URL, params={"state": "replayed"}).json()) == [6, 1]
    pending = client.get(URL).json()["items"]
    assert [(i["id"], i["reason"], i["replay_of"]) for i in pending[:1]] == [(7, "invalid_json", 6)]
    assert [i["id"] for i in pending] == [7, 5, 4, 3, 2]
    # A replay's row keeps no payload of its own; it shows its source's.
    assert base64.b64decode(pending[0]["payload"]["data"]) == SEED[6][2]
    replayed = client.get(URL, params={"state": "all", "device": AQ}).json()["items"]
    assert [(i["id"], i["replayed_at"] is not None) for i in replayed] == [(7, False), (6, True), (1, True)]


@pytest.mark.parametrize(("reason", "device", "state"), [
    (None, None, "pending"), ("out_of_range", None, "pending"), (None, NOISE, "all"),
    ("unknown_device", AQ, "all"), ("unknown_device", None, "replayed"),
])
def test_the_api_lists_what_the_cli_lists(client: TestClient, seeded: None, database_url: str,
                                          db: psycopg.Connection, reason: str | None,
                                          device: str | None, state: str) -> None:
    register_device(db, AQ, "air_quality_station", "tanah-grogot")
    replay_unknown_devices(database_url, WINDOW)
    query = {k: v for k, v in {"reason": reason, "device": device, "state": state}.items() if v}

    api = client.get(URL, params=query).json()["items"]

    # The CLI has no replayed-only view: its --all listing, less the pending items.
    cli = [r for r in list_quarantine(db, reason=reason, device_id=device, pending_only=state == "pending")
           if state != "replayed" or r.replayed_at is not None]
    assert api and [i["id"] for i in api] == [r.id for r in cli]
    assert [(i["reason"], i["reasons"], i["detail"], i["parts"], i["payload"]["size"]) for i in api] == [
        (r.reason, r.reasons, r.detail, r.parts, r.payload_size) for r in cli]


def test_pages_cover_every_item_once_newest_first_while_new_items_arrive(
        client: TestClient, database_url: str, db: psycopg.Connection) -> None:
    _receive(database_url, *(_msg(AQ, i, b'{"metrics": {"pm25": %d}}' % i) for i in range(23)))
    existing = [r[0] for r in db.execute("SELECT id FROM quarantine ORDER BY id DESC")]

    seen: list[int] = []
    response = client.get(URL, params={"limit": 5, "reason": "unknown_device", "device": AQ})
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        seen += _ids(body)
        if pages == 1:  # newer messages arrive while the operator reads the first page
            _receive(database_url, _msg(AQ, 100, b'{"metrics": {"pm25": 100}}'),
                     _msg(AQ, 101, b'{"metrics": {"pm25": 101}}'))
        if body["next_cursor"] is None:
            assert body["next"] is None and "link" not in response.headers
            break
        assert len(body["items"]) == 5
        assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        assert f"cursor={body['next_cursor']}" in body["next"]
        response = client.get(body["next"])  # the link keeps the filters and the page size

    assert seen == existing and pages == 5  # 5 + 5 + 5 + 5 + 3: no empty last page
    # The cursor also works as a parameter of its own, with the same filters.
    first = client.get(URL, params={"limit": 20, "device": AQ, "reason": "unknown_device"}).json()
    rest = client.get(URL, params={"limit": 20, "device": AQ, "reason": "unknown_device",
                                   "cursor": first["next_cursor"]}).json()
    assert _ids(first) + _ids(rest) == [existing[0] + 2, existing[0] + 1] + existing


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["instance"] == URL
    return body


@pytest.mark.parametrize(("query", "name", "words"), [
    ({"reason": "no_such_reason"}, "reason.0", "unknown reason code 'no_such_reason'; known: invalid_json"),
    ({"reason": ["out_of_range", "Out_Of_Range"]}, "reason.1", "storage_rejected"),
    ({"device": "Bad Device!"}, "device", "pattern"),
    ({"since": "yesterday"}, "since", "datetime"),
    ({"since": "2026-11-30T10:00:00"}, "since", "timezone"),
    ({"until": "2026-13-01T00:00:00Z"}, "until", "datetime"),
    ({"since": "2026-11-30T10:00:00Z", "until": "2026-11-30T10:00:00Z"}, "until", "later than since"),
    ({"since": "2026-11-30T11:00:00Z", "until": "2026-11-30T10:00:00Z"}, "until", "later than since"),
    ({"since": "0001-01-01T00:00:00+08:00"}, "since", "it has no UTC time"),
    ({"until": "9999-12-31T23:59:59-08:00"}, "until", "it has no UTC time"),
    ({"state": "done"}, "state", "'pending'"),
    ({"limit": 0}, "limit", "greater than or equal to 1"),
    ({"limit": 501}, "limit", "less than or equal to 500"),
    ({"limit": "ten"}, "limit", "integer"),
    ({"payload_bytes": 65537}, "payload_bytes", "less than or equal to 65536"),
    ({"payload_bytes": -1}, "payload_bytes", "greater than or equal to 0"),
    ({"cursor": "x" * 201}, "cursor", "at most 200"),
    ({"devices": NOISE}, "devices", "Extra inputs"),
])
def test_bad_filter_values_are_422_problems_naming_the_parameter(
        client: TestClient, seeded: None, query: dict[str, Any], name: str, words: str) -> None:
    body = _problem(client.get(URL, params=query), 422)

    assert any(e["name"] == name and words in e["message"] for e in body["errors"]), body


def test_an_unknown_reason_lists_the_known_codes(client: TestClient, seeded: None) -> None:
    body = _problem(client.get(URL, params={"reason": "unknown"}), 422)

    known = body["detail"].split("known: ", 1)[1].split(", ")
    assert known == [code.value for code in Reason]


@pytest.mark.parametrize("cursor", [
    "not base64!", "eyJ",  # not base64url / not JSON
    base64.urlsafe_b64encode(b'{"b": "7", "f": "x"}').decode(),  # wrong types
    base64.urlsafe_b64encode(b'{"b": -1, "f": "x"}').decode(),
    base64.urlsafe_b64encode(b"[1, 2]").decode(),
])
def test_a_malformed_cursor_is_a_400(client: TestClient, seeded: None, cursor: str) -> None:
    body = _problem(client.get(URL, params={"cursor": cursor}), 400)

    assert "cursor is malformed" in body["detail"]


def test_a_cursor_reused_with_other_filters_is_a_400(client: TestClient, seeded: None) -> None:
    first = client.get(URL, params={"limit": 2, "device": NOISE}).json()
    assert first["next_cursor"] is not None

    for other in ({"device": AQ}, {}, {"device": NOISE, "state": "all"},
                  {"device": NOISE, "reason": "out_of_range"}, {"device": NOISE, "since": _at(0)}):
        body = _problem(client.get(URL, params={**other, "cursor": first["next_cursor"]}), 400)
        assert "other filters" in body["detail"]
    # The same instant in another offset is the same filter.
    since = client.get(URL, params={"limit": 1, "since": "2020-01-01T08:00:00+08:00"}).json()
    again = client.get(URL, params={"since": "2020-01-01T00:00:00Z", "cursor": since["next_cursor"]})
    assert again.status_code == 200 and _ids(again.json()) == [5, 4, 3, 2, 1]
    # The page size and payload bytes may change between pages.
    rest = client.get(URL, params={"device": NOISE, "limit": 50, "payload_bytes": 3,
                                   "cursor": first["next_cursor"]})
    assert _ids(rest.json()) == [2]


def test_a_page_may_not_carry_more_payload_than_the_bound(client: TestClient, seeded: None) -> None:
    body = _problem(client.get(URL, params={"limit": 500, "payload_bytes": 65536}), 400)

    assert f"{PAGE_BYTES_MAX:,}" in body["detail"] and "fewer" in body["hint"]
    assert client.get(URL, params={"limit": 128, "payload_bytes": 65536}).status_code == 200


def test_a_payload_cut_to_64_kib_and_to_payload_bytes_says_so(
        client: TestClient, database_url: str) -> None:
    long_payload = b'{"metrics": {"pm25": 1}, "pad": "' + "é".encode() * 40_000 + b'"}'
    _receive(database_url, _msg(AQ, 0, long_payload))

    [whole] = client.get(URL, params={"payload_bytes": 65536}).json()["items"]
    [head] = client.get(URL, params={"payload_bytes": 36}).json()["items"]
    [nothing] = client.get(URL, params={"payload_bytes": 0}).json()["items"]

    assert (whole["payload"]["size"], whole["payload"]["stored"]) == (len(long_payload), 65536)
    assert whole["payload"]["capped"] and whole["payload"]["encoding"] == "utf-8"
    assert long_payload.startswith(whole["payload"]["data"].encode())
    # 33 ASCII bytes, then "é" is two bytes: the 36th byte would cut the second one in half.
    assert head["payload"] == {"encoding": "utf-8", "data": '{"metrics": {"pm25": 1}, "pad": "é',
                               "size": len(long_payload), "stored": 65536, "shown": 35, "capped": True}
    assert nothing["payload"] == {"encoding": "utf-8", "data": "", "size": len(long_payload),
                                  "stored": 65536, "shown": 0, "capped": True}


@pytest.mark.parametrize(("head", "size", "stored", "expected"), [
    (b"", 0, 0, ("utf-8", "", 0, False)),
    (b'{"a": 1}', 8, 8, ("utf-8", '{"a": 1}', 8, False)),
    ("aé".encode(), 3, 3, ("utf-8", "aé", 3, False)),
    ("aé".encode()[:2], 3, 3, ("utf-8", "a", 1, True)),             # cut inside é: stop before it
    ("a€".encode()[:3], 4, 4, ("utf-8", "a", 1, True)),             # …or inside € (3 bytes)
    (b"a\xc3", 2, 2, ("base64", "YcM=", 2, False)),                  # whole, and not UTF-8
    (b"a\xc3", 5, 2, ("utf-8", "a", 1, True)),                      # the quarantine's cap cut it
    (b"\xff\xfeab", 10, 10, ("base64", "//5hYg==", 4, True)),       # invalid before the cut
    (b"a\x00\x1b[2J", 6, 6, ("utf-8", "a\x00\x1b[2J", 6, False)),   # JSON escapes controls
    (b"\xed\xa0\x80", 3, 3, ("base64", "7aCA", 3, False)),          # a surrogate is not UTF-8
])
def test_show_payload(head: bytes, size: int, stored: int, expected: tuple[str, str, int, bool]) -> None:
    shown = show_payload(head, size, stored)

    assert (shown.encoding, shown.data, shown.shown, shown.capped) == expected
    assert (shown.size, shown.stored) == (size, stored)
    raw = orjson.loads(shown.model_dump_json())["data"]
    assert raw == shown.data


def test_a_device_filter_walks_the_device_index_not_the_table(db: psycopg.Connection) -> None:
    # 20,000 rows of 500 devices (written directly: this is about the plan, not the ingest path).
    db.execute(
        "INSERT INTO quarantine (received_at, topic, device_id, reason, reasons, detail, parts, payload,"
        " payload_size) SELECT now(), 'smartcity/v1/devices/dev-' || i % 500 || '/telemetry',"
        " 'dev-' || i % 500, 'out_of_range', ARRAY['out_of_range'], 'x',"
        " '{\"total\": 1, \"by_reason\": {\"out_of_range\": 1}, \"first\": []}', '\\x7b7d', 2"
        " FROM generate_series(1, 20000) i")
    db.execute("ANALYZE quarantine")
    params = quarantine_sql.list_params(head=1024, limit=51, device="dev-42", replayed=None)

    plan = "\n".join(row[0] for row in db.execute(f"EXPLAIN {quarantine_sql.LIST}", params))

    assert "quarantine_device_recent" in plan, plan


def test_a_cursor_with_an_id_beyond_bigint_is_a_400_not_a_database_error(
        client: TestClient, seeded: None) -> None:
    cursor = client.get(URL, params={"limit": 1}).json()["next_cursor"]
    fields = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    for last_id in (2**63, 0):
        forged = base64.urlsafe_b64encode(orjson.dumps([last_id, *fields[1:]])).decode()
        assert "cursor is malformed" in _problem(client.get(URL, params={"cursor": forged}), 400)["detail"]
    # Any id of the right type is only a position: an id past the newest lists from the newest.
    forged = base64.urlsafe_b64encode(orjson.dumps([2**63 - 1, *fields[1:]])).decode()
    assert _ids(client.get(URL, params={"cursor": forged}).json()) == [6, 5, 4, 3, 2, 1]
