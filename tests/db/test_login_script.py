"""docker/db-logins.sh, compose's `db-logins` job, run with psql against the real cluster: it makes
ingest's and the API's logins in their group roles (and Grafana's, tests/dashboards/test_grafana_role.py),
updates them on every run, makes a login that existed a plain one, and refuses without every password."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from smartcity.db.roles import login_url
from smartcity.services import EmbeddedPostgres
from tests.roles import drop_login, run_login_script

PASSWORDS = ("INGEST_DB_PASSWORD", "API_DB_PASSWORD", "ALERTS_DB_PASSWORD", "GRAFANA_DB_PASSWORD")


@pytest.fixture
def names(db: psycopg.Connection) -> Iterator[dict[str, str]]:
    """Login names of this test's own for the three logins; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    chosen = {"INGEST_DB_USER": f"ingest_{tag}", "API_DB_USER": f"api_{tag}",
              "ALERTS_DB_USER": f"alerts_{tag}", "GRAFANA_DB_USER": f"graf_{tag}"}
    yield chosen
    for login in chosen.values():
        drop_login(db, login)


def _passwords(suffix: str) -> dict[str, str]:
    return {key: f"{key.lower()}'s \"{suffix}\" $HOME ;--" for key in PASSWORDS}


def test_the_script_makes_the_service_logins_and_updates_them(
        postgres: EmbeddedPostgres, db: psycopg.Connection, names: dict[str, str]) -> None:
    # A login that existed with more than a service needs (a DBA's leftover) is made a plain one.
    db.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE").format(
        sql.Identifier(names["API_DB_USER"])))
    first = _passwords("first")
    result = run_login_script(postgres.url, {**names, **first})
    assert result.returncode == 0, result.stderr
    for service, group in (("INGEST", "smartcity_ingest"), ("API", "smartcity_api"),
                           ("ALERTS", "smartcity_alerts")):
        login = names[f"{service}_DB_USER"]
        assert f"role {login} is a member of {group}" in result.stdout
        with psycopg.connect(login_url(postgres.url, login, first[f"{service}_DB_PASSWORD"]),
                             autocommit=True) as conn:
            assert conn.execute("SELECT current_user, pg_has_role(current_user, %s, 'USAGE')",
                                (group,)).fetchone() == (login, True)
            # Writes are theirs to make where granted: no read-only default as Grafana's has.
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DELETE FROM readings")
        attributes = db.execute("SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles"
                                " WHERE rolname = %s", (login,)).fetchone()
        assert attributes == (False, False, False, True)
    with psycopg.connect(login_url(postgres.url, names["API_DB_USER"], first["API_DB_PASSWORD"])) as conn:
        assert conn.execute("SELECT count(*) FROM sites").fetchone() == (10,)
    # Every compose start runs it again: a changed password takes effect, the old one stops working.
    second = _passwords("second")
    result = run_login_script(postgres.url, {**names, **second})
    assert result.returncode == 0, result.stderr
    ingest = names["INGEST_DB_USER"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(login_url(postgres.url, ingest, first["INGEST_DB_PASSWORD"])).close()
    with psycopg.connect(login_url(postgres.url, ingest, second["INGEST_DB_PASSWORD"])) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ingest,)


@pytest.mark.parametrize("missing", PASSWORDS)
def test_the_script_refuses_without_every_password_and_makes_nothing(
        postgres: EmbeddedPostgres, db: psycopg.Connection, names: dict[str, str], missing: str) -> None:
    variables = {**names, **_passwords("x"), missing: ""}
    result = run_login_script(postgres.url, variables)
    assert result.returncode != 0 and f"set {missing}" in result.stderr
    made = db.execute("SELECT count(*) FROM pg_roles WHERE rolname = ANY(%s)",
                      (list(names.values()),)).fetchone()
    assert made == (0,)
