"""The API as a login of smartcity_api (migration 012): built with settings whose only usable database
URL is that login's, it answers every read route as the owner-connected API does, checks a key (and
records its use), registers a device, and cannot do what the role may not."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from api import create_app
from smartcity.devices import register_device
from smartcity.services import EmbeddedPostgres
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient
from tests.api.readings_seed import T0, write_readings
from tests.logins import BrokerLogins, login_url
from tests.roles import temporary_login
from tests.services import wait_until

# Nothing listens there: any connection the API opened with the owner's URL would fail.
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
WINDOW = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=30)).isoformat()}
READS = [
    ("/api/v1/sites", {}),
    ("/api/v1/devices", {}),
    ("/api/v1/devices", {"site": "tanah-grogot", "kind": "air_quality_station"}),
    ("/api/v1/devices/aq-grogot-01", {}),
    ("/api/v1/devices/aq-grogot-01/latest", {}),
    ("/api/v1/readings", {"device": "aq-grogot-01", "metric": "pm25", "limit": "50", **WINDOW}),
    ("/api/v1/aggregates", {"metric": "pm25", "bucket": "1h", "agg": "avg", "group_by": "site", **WINDOW}),
    ("/api/v1/aggregates", {"metric": "pm25", "bucket": "1d", "agg": "max", "group_by": "device", **WINDOW}),
    ("/api/v1/ispu", {"site": "tanah-grogot", "at": (T0 + timedelta(hours=26)).isoformat()}),
    ("/api/v1/quarantine", {}),
]


@pytest.fixture
def api_url(postgres: EmbeddedPostgres, db: psycopg.Connection) -> Iterator[str]:
    with temporary_login(db, postgres.url, "smartcity_api") as url:
        yield url


def _client(settings: Settings, key: str) -> TestClient:
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})


def test_the_api_role_answers_every_read_as_the_owner_does(
        api_url: str, seeded: str, database_url: str, db: psycopg.Connection,
        broker_login: BrokerLogins) -> None:
    assert db.execute("SELECT count(*) FROM rollup_pending").fetchone()[0] > 0  # both paths planned
    login = broker_login("api")  # one API at a time: they may share the account
    broker = f"mqtt://127.0.0.1:{login.port}"
    as_role = Settings(_env_file=None, database_url=NOWHERE, mqtt_url=broker,  # type: ignore[call-arg]
                       api=ApiSettings(database_url=api_url, key_cache_s=0, mqtt_url=login_url(login)))
    as_owner = Settings(_env_file=None, database_url=database_url, mqtt_url=broker,  # type: ignore[call-arg]
                        api=ApiSettings(mqtt_url=login_url(login)))
    answers = {}
    for name, settings in (("role", as_role), ("owner", as_owner)):
        with _client(settings, seeded) as client:
            wait_until(lambda c=client: c.get("/api/v1/health").status_code == 200, message="API healthy")
            answers[name] = [client.get(path, params=params) for path, params in READS]
            answers[name].append(client.get("/api/v1/readings", headers={"Accept": "text/csv"},
                                            params={"device": "aq-grogot-02", "metric": "pm10", **WINDOW}))
            if name == "role":
                login = api_url.split("://")[1].split(":")[0]
                users = db.execute("SELECT DISTINCT usename FROM pg_stat_activity"
                                   " WHERE application_name = 'smartcity-api'").fetchall()
                assert users == [(login,)]
    for (path, params), role, owner in zip([*READS, ("csv", {})], answers["role"], answers["owner"],
                                           strict=True):
        assert role.status_code == 200, (path, params, role.text)
        assert role.content == owner.content, (path, params)
    # And the answers hold the data, not the same emptiness twice.
    assert [len(answers["role"][i].json()) for i in range(3)] == [10, 3, 2]
    assert len(answers["role"][5].json()["items"]) == 50
    assert answers["role"][8].json()["ispu"] is not None
    assert len(answers["role"][9].json()["items"]) == 1
    series = answers["role"][6].json()["series"]
    assert [s["key"] for s in series] == ["tanah-grogot"] and len(series[0]["points"]) == 30
    assert answers["role"][-1].text.count("\n") == 1 + 144 + 36  # header, day one, 6 h of day two
    # The key check wrote when the key was last used, with the role's rights.
    assert db.execute("SELECT last_used_at IS NOT NULL FROM api_keys").fetchall() == [(True,)]


def test_the_api_role_registers_a_device(api_url: str, seeded: str, db: psycopg.Connection,
                                         broker_login: BrokerLogins) -> None:
    login = broker_login("api")
    settings = Settings(_env_file=None, database_url=NOWHERE,  # type: ignore[call-arg]
                        mqtt_url=f"mqtt://127.0.0.1:{login.port}",
                        api=ApiSettings(database_url=api_url, mqtt_url=login_url(login)))
    body = {"id": "river-kuaro-09", "kind": "river_level_sensor", "site": "kuaro", "lat": -1.9, "lon": 116.1}
    with _client(settings, seeded) as client:
        created = client.post("/api/v1/devices", json=body)
        again = client.post("/api/v1/devices", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["mqtt_username"] == "river-kuaro-09" and created.json()["mqtt_password"]
    assert again.status_code == 409  # ON CONFLICT with the role's rights: still a clean conflict
    row = db.execute("SELECT kind, site_id, length(mqtt_password_hash) > 0 FROM devices"
                     " WHERE device_id = 'river-kuaro-09'").fetchone()
    assert row == ("river_level_sensor", "kuaro", True)


def test_the_api_role_sends_settles_and_lists_commands(api_url: str, seeded: str, database_url: str,
                                                       db: psycopg.Connection,
                                                       broker_login: BrokerLogins) -> None:
    # Migration 015's grants are enough for the whole path: store, mark published (PUBACK),
    # settle (FOR UPDATE, the level function), list; a timed-out one is settled too.
    register_device(db, "light-kuaro-01", "street_light", "kuaro")
    login = broker_login("api")
    settings = Settings(_env_file=None, database_url=NOWHERE,  # type: ignore[call-arg]
                        mqtt_url=f"mqtt://127.0.0.1:{login.port}",
                        api=ApiSettings(database_url=api_url, mqtt_url=login_url(login),
                                        command_timeout_s=1))
    with _client(settings, seeded) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, timeout=10,
                   message="API healthy")
        sent = client.post("/api/v1/devices/light-kuaro-01/commands",
                           json={"action": "schedule", "schedule": [{"at": "18:00", "action": "on"}]})
        assert sent.status_code == 202, sent.text
        issued = datetime.fromisoformat(sent.json()["issued_at"])
        write_readings(database_url, dict(db.execute("SELECT device_id, id FROM devices").fetchall()),
                       [("light-kuaro-01", "lamp_on", issued.timestamp() + 0.5, 1.0)])
        listed = client.get("/api/v1/devices/light-kuaro-01/commands")
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["outcome"], item["published_at"] is not None) == ("acknowledged", True)
    assert datetime.fromisoformat(item["outcome_at"]) == issued + timedelta(seconds=0.5)
