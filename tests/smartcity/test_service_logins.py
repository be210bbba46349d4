"""The services' own database logins: each service's URL setting and its fallback, the logins
`smartcity up` makes for the embedded cluster (members of the group roles, passwords new on every
start, kept 0600, sent as SCRAM verifiers), and the URLs it hands its children."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from smartcity.db.connect import DatabaseNotConfigured, service_database_url
from smartcity.db.roles import GROUP_ROLES, LOGIN_ROLES, Service, set_up_service_logins
from smartcity.launcher import service_login_environment
from smartcity.services import EmbeddedPostgres
from smartcity.settings import Settings, load_settings
from tests.roles import drop_login

OWNER = "postgresql://smartcity:owner@db.example:5432/smartcity"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("SMARTCITY_")]:
        monkeypatch.delenv(key)
    return monkeypatch


def test_a_service_uses_its_own_url_and_falls_back_to_the_database_url(
        clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SMARTCITY_DATABASE_URL", OWNER)
    clean_env.setenv("SMARTCITY_INGEST__DATABASE_URL", "postgresql://ingest_login:pw@db.example/smartcity")
    clean_env.setenv("SMARTCITY_API__DATABASE_URL", "")  # as .env.example leaves it: not given
    settings = load_settings()
    assert service_database_url(settings, "ingest") == "postgresql://ingest_login:pw@db.example/smartcity"
    assert settings.api.database_url is None and service_database_url(settings, "api") == OWNER


@pytest.mark.parametrize("key", ["SMARTCITY_INGEST__DATABASE_URL", "SMARTCITY_API__DATABASE_URL"])
def test_a_service_url_that_is_not_postgresql_fails_fast_naming_the_key(
        clean_env: pytest.MonkeyPatch, key: str) -> None:
    clean_env.setenv(key, "mysql://user:secret-pw@db.example/smartcity")
    with pytest.raises(ValidationError, match=f"{key} must start with postgresql://") as caught:
        load_settings()
    assert "secret-pw" not in str(caught.value)  # URLs carry passwords: never echoed


@pytest.fixture
def logins(postgres: EmbeddedPostgres, db: psycopg.Connection, tmp_path: Path) -> Iterator[Path]:
    """A folder for the password files; the logins `up` makes are dropped afterwards."""
    yield tmp_path / "postgres"
    for login in LOGIN_ROLES.values():
        drop_login(db, login)


def test_up_makes_a_login_per_service_with_a_new_password_on_every_start(
        postgres: EmbeddedPostgres, db: psycopg.Connection, logins: Path) -> None:
    first = set_up_service_logins(postgres.url, logins)
    assert set(first) == {"ingest", "api", "alerts"}
    for service, login in first.items():
        assert (login.login, login.group) == (LOGIN_ROLES[service], GROUP_ROLES[service])
        assert stat.S_IMODE(login.password_file.stat().st_mode) == 0o600
        password = login.password_file.read_text().strip()
        assert len(password) >= 32 and f":{password}@" in login.url
        with psycopg.connect(login.url) as conn:
            user, member = conn.execute("SELECT current_user, pg_has_role(current_user, %s, 'USAGE')",
                                        (login.group,)).fetchone()
        assert (user, member) == (login.login, True)
        # Only a SCRAM verifier reached the server, never the password.
        verifier, superuser, create_role = db.execute(
            "SELECT rolpassword, rolsuper, rolcreaterole FROM pg_authid WHERE rolname = %s",
            (login.login,)).fetchone()
        assert verifier.startswith("SCRAM-SHA-256$") and password not in verifier
        assert (superuser, create_role) == (False, False)
    # The next start: new passwords, the old ones refused, the files rewritten and still 0600.
    login_file = first["ingest"].password_file
    login_file.chmod(0o644)
    second = set_up_service_logins(postgres.url, logins)
    for service in ("ingest", "api", "alerts"):
        assert second[service].url != first[service].url
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(first[service].url).close()
        with psycopg.connect(second[service].url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (LOGIN_ROLES[service],)
    assert stat.S_IMODE(login_file.stat().st_mode) == 0o600
    assert login_file.read_text().strip() in second["ingest"].url


def test_the_children_get_each_service_its_own_url_and_keep_the_owner_url(
        clean_env: pytest.MonkeyPatch) -> None:
    service_urls: dict[Service, str] = {
        "ingest": "postgresql://smartcity_ingest_login:a@127.0.0.1:55432/smartcity",
        "api": "postgresql://smartcity_api_login:b@127.0.0.1:55432/smartcity",
        "alerts": "postgresql://smartcity_alerts_login:c@127.0.0.1:55432/smartcity"}
    env = service_login_environment(Settings(_env_file=None), service_urls)  # type: ignore[call-arg]
    assert env == {"SMARTCITY_INGEST__DATABASE_URL": service_urls["ingest"],
                   "SMARTCITY_API__DATABASE_URL": service_urls["api"],
                   "SMARTCITY_ALERTS__DATABASE_URL": service_urls["alerts"]}
    # What each child reads from up's environment: ingest and the API their logins, the rest the owner.
    for key, value in {**env, "SMARTCITY_DATABASE_URL": OWNER}.items():
        clean_env.setenv(key, value)
    child = load_settings()
    assert service_database_url(child, "ingest") == service_urls["ingest"]
    assert service_database_url(child, "api") == service_urls["api"]
    assert service_database_url(child, "alerts") == service_urls["alerts"]
    assert child.database_url == OWNER


def test_a_service_url_the_user_set_is_not_replaced(clean_env: pytest.MonkeyPatch) -> None:
    mine = "postgresql://my_api_login:pw@db.example/smartcity"
    settings = Settings(_env_file=None, api={"database_url": mine})  # type: ignore[call-arg]
    env = service_login_environment(settings, {"ingest": "postgresql://i@x/y", "api": "postgresql://a@x/y"})
    # The user's own stays in the environment the children inherit.
    assert env == {"SMARTCITY_INGEST__DATABASE_URL": "postgresql://i@x/y"}
    # An external database: `up` makes no logins, so it adds nothing.
    assert service_login_environment(settings, {}) == {}


def test_no_url_anywhere_is_an_error_naming_the_service_setting(clean_env: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    clean_env.setenv("SMARTCITY_EMBEDDED__DATA_DIR", str(tmp_path / "never-started"))
    settings = load_settings()
    for service in ("ingest", "api", "alerts"):
        with pytest.raises(DatabaseNotConfigured,
                           match=f"SMARTCITY_{service.upper()}__DATABASE_URL is not set either;"
                                 " SMARTCITY_DATABASE_URL is not set and no embedded cluster exists"):
            service_database_url(settings, service)
