"""SQL injection through every parameter the OpenAPI document lists changes nothing and is a 4xx.

The walk covers every operation, every query and path parameter and every field of every JSON body,
so a parameter added later is attacked here too. Each classic payload goes in alone (the other
parameters as in the document's examples, which answer 2xx: the baseline test), with an admin key,
so every route is reached. Each case must be a 4xx — never a 2xx with someone else's rows, never a
5xx — and leave the database's fingerprint as it was: the tables of the public schema, and the row
count and md5 of devices, api_keys, readings, sites and metrics.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from api import create_app
from api.params import DeviceIn
from smartcity.apikeys import Scope, create_key
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from smartcity.settings import ApiSettings, Settings
from tests.api.alerts_seed import clear_alerts, insert_alert
from tests.api.client import TestClient
from tests.api.particulates import store_a_day_of_particulates
from tests.logins import create_login, login_url
from tests.services import DATA_TABLES

DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
EXAMPLE_DEVICE = "aq-tanah-grogot-01"  # the device the document's examples name
OTHER_DEVICE = "aq-kuaro-01"  # someone else's: an injection that widened a filter would return it

PAYLOADS = {
    "or-true": "' OR '1'='1",
    "drop-readings": "x'; DROP TABLE readings; --",
    "delete-devices": "1); DELETE FROM devices; --",
    "dollar-quote": "$$",
    "backslash": "\\",
    "union-api-keys": "' UNION SELECT key_id, encode(digest, 'hex'), scope FROM api_keys --",
    "numeric-or": "1 OR 1=1",
    "comment": "aq-kuaro-01'/*",
    "very-long": "' OR 1=1 -- " + "a" * 5000,
    "unicode": "ü' OR 'ü'='ü' -- 名前 🚀 \u202e",
    "nul": "aq\x00' OR 1=1",
}
# Parameters the baseline leaves out: a cursor is only valid as the API issued it.
_NOT_IN_BASELINE = {"cursor"}
_FINGERPRINTED = {
    "devices": "SELECT * FROM devices",
    # last_used_at is written when a key is presented (api.auth): the rest must not move.
    "api_keys": "SELECT key_id, name, scope, digest, created_at, revoked_at FROM api_keys",
    "readings": "SELECT * FROM readings",
    "sites": "SELECT * FROM sites",
    "metrics": "SELECT * FROM metrics",
    "alerts": "SELECT * FROM alerts",
}


@dataclass(frozen=True)
class Case:
    """One payload in one place of one operation."""

    method: str
    path: str
    where: str  # query, path or body
    name: str
    payload: str


def _example(holder: dict[str, Any]) -> Any:
    for item in (holder, holder.get("schema", {})):
        if "example" in item:
            return item["example"]
        if item.get("examples"):
            examples = item["examples"]
            return examples[0] if isinstance(examples, list) else next(iter(examples.values()))["value"]
    return None


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in DOCUMENT["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return None
    ref = content["schema"]["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = DOCUMENT["components"]["schemas"][ref]
    return schema


def _cases() -> list[Case]:
    cases = []
    for path, method, operation in _operations():
        places = [(p["in"], p["name"]) for p in operation.get("parameters", [])]
        body = _body_schema(operation)
        places += [("body", field) for field in (body or {}).get("properties", {})]
        cases += [Case(method, path, where, name, payload)
                  for where, name in places for payload in PAYLOADS.values()]
    return cases


CASES = _cases()
CASE_IDS = [f"{c.method.upper()} {c.path} {c.where}:{c.name} "
            f"{next(k for k, v in PAYLOADS.items() if v == c.payload)}" for c in CASES]


def _request(case_method: str, path: str, replace: tuple[str, str, str] | None = None
             ) -> dict[str, Any]:
    """The request of the document's examples for an operation, one place replaced by a payload."""
    operation = DOCUMENT["paths"][path][case_method]
    params: dict[str, Any] = {}
    url = path
    for parameter in operation.get("parameters", []):
        where, name = parameter["in"], parameter["name"]
        value = _example(parameter)
        if replace is not None and (where, name) == replace[:2]:
            value = replace[2]
        elif name in _NOT_IN_BASELINE or value is None:
            continue
        if where == "path":
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        else:
            params[name] = value
    request: dict[str, Any] = {"method": case_method.upper(), "url": url, "params": params}
    body = _body_schema(operation)
    if body is not None:
        document = copy.deepcopy(body["examples"][0])
        if replace is not None and replace[0] == "body":
            document[replace[1]] = replace[2]
        request["json"] = document
    return request


def _fingerprint(conn: psycopg.Connection) -> dict[str, Any]:
    tables = conn.execute("SELECT table_name FROM information_schema.tables"
                          " WHERE table_schema = 'public' ORDER BY 1").fetchall()
    prints: dict[str, Any] = {"tables": [row[0] for row in tables]}
    for table, select in _FINGERPRINTED.items():
        row = conn.execute(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
                           f" FROM ({select}) t").fetchone()
        prints[table] = row
    return prints


@dataclass
class World:
    client: TestClient
    conn: psycopg.Connection
    before: dict[str, Any]


@pytest.fixture(scope="module")
def world(postgres: EmbeddedPostgres, mosquitto: EmbeddedMosquitto) -> Iterator[World]:
    """One app and one database for every case (a case changes nothing, which each one checks):
    two devices with a day of readings, an admin key, a read key."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        for device_id, site in ((EXAMPLE_DEVICE, "tanah-grogot"), (OTHER_DEVICE, "kuaro")):
            register_device(conn, device_id, "air_quality_station", site)
            store_a_day_of_particulates(postgres.url, conn, device_id)
        # Seven alerts, so the examples' alert 7 exists; acknowledged already, so an acknowledgement
        # runs its UPDATE with the payload and is refused (409) without changing a row.
        clear_alerts(conn)
        for minutes in range(7):
            insert_alert(conn, "river-waspada", OTHER_DEVICE, "kuaro", fired_minutes=minutes,
                         resolved_minutes=minutes + 1 if minutes < 6 else None)
        conn.execute("UPDATE alerts SET acked_at = now(), acked_by = 'earlier' WHERE id = 7")
        admin = create_key(conn, Scope.ADMIN, "injection test").key
        create_key(conn, Scope.READ, "someone else's")
        # The limiter stays on, out of reach: a few hundred requests in seconds from one key.
        api_login = create_login(conn, "api", mosquitto)  # the module's: no test here empties the tables
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, database_url=postgres.url, mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
            api=ApiSettings(mqtt_url=login_url(api_login)))
        settings = settings.model_copy(update={"api": settings.api.model_copy(update={
            "rate_limit_key_per_s": 1e6, "rate_limit_key_burst": 1_000_000})})
        before = _fingerprint(conn)
        with TestClient(create_app(settings), headers={"Authorization": f"Bearer {admin}"}) as client:
            yield World(client, conn, before)
        assert _fingerprint(conn) == before


def test_every_place_is_attacked() -> None:
    places = {(c.method, c.path, c.where, c.name) for c in CASES}
    # Each operation's parameters and body fields, as the document lists them, and no fewer.
    for path, method, operation in _operations():
        for parameter in operation.get("parameters", []):
            assert (method, path, parameter["in"], parameter["name"]) in places
    assert ("post", "/api/v1/devices", "body", "id") in places
    assert len(places) >= 30


@pytest.mark.parametrize(("path", "method"), sorted({(c.path, c.method) for c in CASES if c.method == "get"}))
def test_the_baseline_of_each_operation_answers_2xx(world: World, path: str, method: str) -> None:
    """What the cases change is the payload alone: the examples they start from are answered."""
    request = _request(method, path)
    response = world.client.request(**request)
    assert 200 <= response.status_code < 300, (request, response.text)


def test_the_baseline_body_is_a_valid_registration() -> None:
    # Sent, it would register a device (which the cases must not): checked by the route's own model.
    example = _request("post", "/api/v1/devices")["json"]
    assert DeviceIn.model_validate(example).id == example["id"]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_an_injection_is_a_4xx_and_changes_nothing(world: World, case: Case) -> None:
    request = _request(case.method, case.path, (case.where, case.name, case.payload))
    response = world.client.request(**request)
    assert 400 <= response.status_code < 500, (
        f"{case.method.upper()} {case.path} {case.where} {case.name}={case.payload[:60]!r}:"
        f" {response.status_code} {response.text[:300]}")
    assert response.headers["content-type"] == "application/problem+json"
    # A refusal that lists what is wrong names the attacked place: the payload, not the rest, was refused.
    errors = response.json().get("errors")
    if errors:
        assert any(case.name in error["name"] for error in errors), errors
    assert _fingerprint(world.conn) == world.before
