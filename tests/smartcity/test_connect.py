"""One place opens database connections: the API's pool and the CLI's connections name themselves
(application_name smartcity-<purpose>) and work in UTC on a server whose default zone is not UTC."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import orjson
import psycopg
import pytest
from click.testing import CliRunner, Result

from api import create_app
from smartcity.cli import main
from smartcity.db.connect import connect
from smartcity.devices import register_device
from smartcity.settings import Settings
from tests.api.client import TestClient
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until


@pytest.fixture
def makassar_url(database_url: str) -> Iterator[str]:
    """The test database with its default TimeZone set to WITA (UTC+8) for new sessions."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        name = admin.info.dbname
        admin.execute(f'ALTER DATABASE "{name}" SET timezone TO \'Asia/Makassar\'')
        try:
            yield database_url
        finally:
            admin.execute(f'ALTER DATABASE "{name}" RESET timezone')


def _sessions(url: str, application_name: str) -> list[tuple[str, str | None]]:
    """Return (state, wait_event_type) of every other session that calls itself ``application_name``."""
    with psycopg.connect(url, autocommit=True) as observer:
        return [(row[0], row[1]) for row in observer.execute(
            "SELECT state, wait_event_type FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()", (application_name,),
        ).fetchall()]


def test_the_server_default_is_not_utc_but_connect_gives_utc(makassar_url: str) -> None:
    with psycopg.connect(makassar_url) as plain:
        assert plain.execute("SHOW TimeZone").fetchone() == ("Asia/Makassar",)
    with connect(makassar_url, purpose="cli") as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SHOW application_name").fetchone() == ("smartcity-cli",)
        assert _sessions(makassar_url, "smartcity-cli") == [("idle in transaction", "Client")]


def test_api_pool_connections_are_named_and_in_utc(
        makassar_url: str, db: psycopg.Connection, broker_login: BrokerLogins) -> None:
    register_device(db, "aq-kuaro-01", "air_quality_station", "kuaro")
    db.execute("UPDATE devices SET last_seen = '2026-11-27 10:00:00+08'")
    login = broker_login("api")
    settings = Settings(_env_file=None, database_url=makassar_url,  # type: ignore[call-arg]
                        mqtt_url=f"mqtt://127.0.0.1:{login.port}",
                        api={"public_read": True, "mqtt_url": login_url(login)})
    with TestClient(create_app(settings)) as client:
        device = client.get("/api/v1/devices/aq-kuaro-01").json()
        sessions = _sessions(makassar_url, "smartcity-api")
    # The same instant, written in UTC: the session zone, not the database's WITA default.
    assert device["last_seen"] in ("2026-11-27T02:00:00Z", "2026-11-27T02:00:00+00:00")
    assert sessions and all(state == "idle" for state, _ in sessions)


def test_cli_connections_are_named_and_in_utc(makassar_url: str, db: psycopg.Connection) -> None:
    runner = CliRunner()

    def cli(*args: str) -> Result:
        return runner.invoke(main, list(args), env={"SMARTCITY_DATABASE_URL": makassar_url},
                             catch_exceptions=False)

    # Hold the devices table so the CLI's INSERT waits, and look at its session meanwhile.
    result: list[Result] = []
    with psycopg.connect(makassar_url) as blocker:
        blocker.execute("LOCK TABLE devices IN ACCESS EXCLUSIVE MODE")
        adding = threading.Thread(target=lambda: result.append(
            cli("devices", "add", "--id", "aq-kuaro-02", "--kind", "air_quality_station",
                "--site", "kuaro", "--json")))
        adding.start()
        try:
            # Found by its name alone: the session that waits for the lock is the CLI's INSERT.
            wait_until(lambda: ("active", "Lock") in _sessions(makassar_url, "smartcity-cli"),
                       message="the CLI's session waiting for the lock")
        finally:
            blocker.rollback()
            adding.join(10)
    assert result and result[0].exit_code == 0, result and result[0].output

    listed = cli("devices", "list", "--json")
    assert listed.exit_code == 0, listed.output
    created = orjson.loads(listed.stdout)[0]["created_at"]
    assert created.endswith("+00:00")  # WITA would print +08:00
