"""The alerts routes, served by a login of smartcity_api (migration 014's grants): listing with
filters and keyset pages, one alert with its transitions, acknowledgement (once, by a write key,
with who and when), the rules as loaded at start, and clear errors that change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from api import create_app
from smartcity.alerts.rulefile import RuleFileError, load_rules
from smartcity.apikeys import Scope, create_key
from smartcity.services import EmbeddedPostgres
from smartcity.settings import ApiSettings, Settings
from smartcity.settings.alerts import AlertsSettings
from tests.api.alerts_seed import T0, clear_alerts, insert_alert
from tests.api.client import TestClient
from tests.logins import BrokerLogins, login_url
from tests.roles import temporary_login
from tests.services import wait_until

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"  # the owner's URL is never used: the role's is


@pytest.fixture
def api_url(postgres: EmbeddedPostgres, db: psycopg.Connection) -> Iterator[str]:
    with temporary_login(db, postgres.url, "smartcity_api") as url:
        yield url


@pytest.fixture
def alerts(db: psycopg.Connection) -> dict[str, int]:
    """Five alerts: two firing, three resolved, in three sites, of four rules."""
    clear_alerts(db)
    return {
        "grogot-waspada": insert_alert(db, "river-waspada", "river-tanah-grogot-01", "tanah-grogot",
                                       fired_minutes=0, resolved_minutes=90, severity="info"),
        "ikis-waspada": insert_alert(db, "river-waspada", "river-long-ikis-01", "long-ikis",
                                     fired_minutes=30, severity="info"),
        "grogot-haze": insert_alert(db, "pm25-24h-tidak-sehat", "tanah-grogot", "tanah-grogot",
                                    fired_minutes=60, device=False, value=80.0),
        "kuaro-silent": insert_alert(db, "silent-river-level-sensor", "river-kuaro-01", "kuaro",
                                     fired_minutes=120, resolved_minutes=150),
        "old-rule": insert_alert(db, "river-retired", "river-kuaro-01", "kuaro",
                                 fired_minutes=-600, resolved_minutes=-500),
    }


def _settings(api_url: str, broker_login: BrokerLogins, rules_file: Path | None = None) -> Settings:
    login = broker_login("api")
    return Settings(_env_file=None, database_url=NOWHERE,  # type: ignore[call-arg]
                    mqtt_url=f"mqtt://127.0.0.1:{login.port}",
                    api=ApiSettings(database_url=api_url, key_cache_s=0, mqtt_url=login_url(login)),
                    alerts=AlertsSettings(rules_file=rules_file))


@pytest.fixture
def keys(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return {scope.label: create_key(conn, scope, f"{scope.label} key").key
                for scope in (Scope.READ, Scope.WRITE)}


@pytest.fixture
def client(api_url: str, broker_login: BrokerLogins, keys: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(api_url, broker_login)),
                    headers={"Authorization": f"Bearer {keys['read']}"}) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, message="API healthy")
        yield client


def _ids(answer: dict[str, object], alerts: dict[str, int]) -> list[str]:
    names = {v: k for k, v in alerts.items()}
    return [names[item["id"]] for item in answer["items"]]  # type: ignore[attr-defined, index]


def test_alerts_are_listed_newest_first_and_filtered(client: TestClient, alerts: dict[str, int]) -> None:
    every = client.get("/api/v1/alerts")
    assert every.status_code == 200, every.text
    assert _ids(every.json(), alerts) == ["kuaro-silent", "grogot-haze", "ikis-waspada", "grogot-waspada",
                                          "old-rule"]
    assert every.json()["next_cursor"] is None and every.json()["next"] is None
    cases = [
        ({"active": "true"}, ["grogot-haze", "ikis-waspada"]),
        ({"active": "false"}, ["kuaro-silent", "grogot-waspada", "old-rule"]),
        ({"site": "tanah-grogot"}, ["grogot-haze", "grogot-waspada"]),
        ({"rule": "river-waspada"}, ["ikis-waspada", "grogot-waspada"]),
        ({"site": "kuaro", "active": "false"}, ["kuaro-silent", "old-rule"]),
        # Active at or after T0 + 100 min: the firing ones, and the one that resolved at 150 min.
        ({"since": (T0 + timedelta(minutes=100)).isoformat()},
         ["kuaro-silent", "grogot-haze", "ikis-waspada"]),
        # The bound is inclusive, in any offset: resolved at T0 + 90 min exactly (10:30 WITA).
        ({"since": "2026-11-30T11:30:00+09:00"}, ["kuaro-silent", "grogot-haze", "ikis-waspada",
                                                  "grogot-waspada"]),
    ]
    for params, expected in cases:
        answer = client.get("/api/v1/alerts", params=params)
        assert answer.status_code == 200, (params, answer.text)
        assert _ids(answer.json(), alerts) == expected, params


def test_an_alert_reads_as_stored_with_its_rule_title(client: TestClient, alerts: dict[str, int]) -> None:
    item = client.get("/api/v1/alerts", params={"site": "tanah-grogot", "active": "true"}).json()["items"][0]
    assert item == {
        "id": alerts["grogot-haze"], "rule_id": "pm25-24h-tidak-sehat",
        "title": load_rules().rules[4].title, "subject": "tanah-grogot", "site_id": "tanah-grogot",
        "device_id": None, "severity": "warning", "state": "firing",
        "fired_at": "2026-11-30T03:00:00Z", "resolved_at": None, "value": 80.0, "last_value": 80.1,
        "summary": "tanah-grogot: pm25-24h-tidak-sehat at 80.0", "acked_at": None, "acked_by": None,
        "ack_note": None}
    assert load_rules().rules[4].id == "pm25-24h-tidak-sehat"
    retired = client.get(f"/api/v1/alerts/{alerts['old-rule']}").json()
    assert retired["rule_id"] == "river-retired" and retired["title"] is None  # no longer in the file


def test_pages_follow_the_cursor_without_gaps_or_repeats(client: TestClient, alerts: dict[str, int]) -> None:
    seen: list[str] = []
    params: dict[str, str] | None
    url, params = "/api/v1/alerts", {"limit": "2"}  # then the next URL as given
    pages = 0
    while True:
        answer = client.get(url, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        seen += _ids(body, alerts)
        pages += 1
        if body["next"] is None:
            assert "Link" not in answer.headers
            break
        assert answer.headers["Link"] == f'<{body["next"]}>; rel="next"'
        url, params = body["next"], None
    assert pages == 3
    assert seen == ["kuaro-silent", "grogot-haze", "ikis-waspada", "grogot-waspada", "old-rule"]
    # A cursor is bound to its filters, and a made-up one is refused.
    first = client.get("/api/v1/alerts", params={"limit": "1"}).json()
    other = client.get("/api/v1/alerts",
                       params={"limit": "1", "site": "kuaro", "cursor": first["next_cursor"]})
    assert other.status_code == 400 and "other filters" in other.json()["detail"]
    junk = client.get("/api/v1/alerts", params={"cursor": "not-a-cursor"})
    assert junk.status_code == 400 and "malformed" in junk.json()["detail"]


def test_one_alert_comes_with_its_transitions(client: TestClient, alerts: dict[str, int]) -> None:
    answer = client.get(f"/api/v1/alerts/{alerts['grogot-waspada']}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["fired_at"], body["resolved_at"]) == (
        "resolved", "2026-11-30T02:00:00Z", "2026-11-30T03:30:00Z")
    assert [(t["transition"], t["at"], t["value"], t["published_at"]) for t in body["transitions"]] == [
        ("firing", "2026-11-30T02:00:00Z", 3.2, None), ("resolved", "2026-11-30T03:30:00Z", 2.7, None)]
    missing = client.get("/api/v1/alerts/999999")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "no alert has id 999999"


@pytest.mark.parametrize(("params", "name", "fragment"), [
    ({"site": "paris"}, "site", "unknown site 'paris'; known: tanah-grogot, kuaro"),
    ({"rule": "River Waspada"}, "rule", "pattern"),
    ({"active": "maybe"}, "active", "boolean"),
    ({"since": "yesterday"}, "since", "RFC 3339"),
    ({"limit": "0"}, "limit", "greater than or equal to 1"),
    ({"sites": "kuaro"}, "sites", "not permitted"),
])
def test_bad_parameters_are_422_naming_the_parameter(
        client: TestClient, alerts: dict[str, int], params: dict[str, str], name: str, fragment: str) -> None:
    answer = client.get("/api/v1/alerts", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert fragment in answer.text and name in answer.text


def test_a_write_key_acknowledges_once_with_who_when_and_note(
        client: TestClient, alerts: dict[str, int], keys: dict[str, str], db: psycopg.Connection) -> None:
    alert_id = alerts["ikis-waspada"]
    write = {"Authorization": f"Bearer {keys['write']}"}
    write_key_id = keys["write"].split("_")[1]
    read_only = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "seen"})
    assert read_only.status_code == 403
    before = datetime.now(UTC)
    acked = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "Crew sent to the bridge"},
                        headers=write)
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["id"], body["acked_by"], body["ack_note"], body["state"]) == (
        alert_id, write_key_id, "Crew sent to the bridge", "firing")
    acked_at = datetime.fromisoformat(body["acked_at"])
    assert before - timedelta(seconds=1) <= acked_at <= datetime.now(UTC) + timedelta(seconds=1)
    stored = db.execute("SELECT acked_at, acked_by, ack_note FROM alerts WHERE id = %s",
                        (alert_id,)).fetchone()
    assert stored == (acked_at, write_key_id, "Crew sent to the bridge")
    # A second acknowledgement names the first and changes nothing.
    again = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "me too"}, headers=write)
    assert again.status_code == 409, again.text
    problem = again.json()
    assert problem["acked_by"] == write_key_id and f"by key {write_key_id}" in problem["detail"]
    assert datetime.fromisoformat(problem["acked_at"]) == acked_at
    assert db.execute("SELECT ack_note FROM alerts WHERE id = %s", (alert_id,)).fetchone() == (
        "Crew sent to the bridge",)
    # Without a note it is stored as none; the listing shows the acknowledgement.
    plain = client.post(f"/api/v1/alerts/{alerts['grogot-haze']}/ack", json={}, headers=write)
    assert plain.status_code == 200 and plain.json()["ack_note"] is None
    listed = client.get("/api/v1/alerts", params={"active": "true"}).json()["items"]
    assert [item["acked_by"] for item in listed] == [write_key_id, write_key_id]


def test_a_bad_acknowledgement_is_refused_and_changes_nothing(
        client: TestClient, alerts: dict[str, int], keys: dict[str, str], db: psycopg.Connection) -> None:
    write = {"Authorization": f"Bearer {keys['write']}"}
    alert_id = alerts["ikis-waspada"]
    too_long = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "x" * 2001}, headers=write)
    assert too_long.status_code == 422 and "2000" in too_long.text
    extra = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "ok", "by": "me"}, headers=write)
    assert extra.status_code == 422 and "by" in extra.text
    not_json = client.post(f"/api/v1/alerts/{alert_id}/ack", content=b"ok", headers=write)
    assert not_json.status_code == 422
    missing = client.post("/api/v1/alerts/424242/ack", json={"note": "?"}, headers=write)
    assert missing.status_code == 404 and missing.json()["detail"] == "no alert has id 424242"
    assert db.execute("SELECT count(*) FROM alerts WHERE acked_at IS NOT NULL").fetchone() == (0,)
    at_limit = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "é" * 2000}, headers=write)
    assert at_limit.status_code == 200 and len(at_limit.json()["ack_note"]) == 2000


def test_the_rules_are_those_loaded_at_start(client: TestClient, alerts: dict[str, int]) -> None:
    answer = client.get("/api/v1/alerts/rules")
    assert answer.status_code == 200, answer.text
    assert answer.json() == load_rules().model_dump(mode="json", by_alias=True)
    assert answer.json()["rules"][0]["for"] == "10m"


def test_the_rule_file_setting_is_read_once_at_start(api_url: str, broker_login: BrokerLogins,
                                                     keys: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - {id: gauge-high, kind: threshold, title: High,"
                    " metric: water_level, window: 5m, value: 2.5}\n")
    with TestClient(create_app(_settings(api_url, broker_login, path)),
                    headers={"Authorization": f"Bearer {keys['read']}"}) as client:
        path.write_text("version: 1\nrules: []\n")  # changed after the start: not seen until a restart
        rules = client.get("/api/v1/alerts/rules").json()["rules"]
    assert [(rule["id"], rule["value"], rule["window"]) for rule in rules] == [("gauge-high", 2.5, "5m")]


def test_a_bad_rule_file_stops_the_api_with_every_problem_logged(
        api_url: str, broker_login: BrokerLogins, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - id: gauge-high\n    kind: threshold\n    title: High\n"
                    "    metric: water_levl\n    window: 5 min\n    value: 2.5\n")
    with pytest.raises(RuleFileError), TestClient(create_app(_settings(api_url, broker_login, path))):
        pass
    logged = [r.getMessage() for r in caplog.records if r.name == "api.routes.alerts"]
    known = logged[0].split("known: ")[1]
    assert logged == [f"alert rules: {path}:6: rules[0] (gauge-high).metric: unknown metric 'water_levl';"
                      f" known: {known}",
                      f"alert rules: {path}:7: rules[0] (gauge-high).window: '5 min' is not a duration: write"
                      " a whole number and s, m, h or d (10m, 24h)"]
