"""`smartcity broker accounts add NAME --role R --password-env VAR`: a deployment's own password for a
service account, created or re-set idempotently, never on the command line (compose's
broker-accounts job), against the real database."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from click.testing import CliRunner, Result

from smartcity.broker.authfiles import render_auth_files
from smartcity.cli import main
from smartcity.credentials import verify_password

NAME = "smartcity-ingest-1"


def _add(database_url: str, *args: str, password: str | None = None) -> Result:
    env = {"SMARTCITY_DATABASE_URL": database_url, "PASER_TEST_MQTT_PASSWORD": password}
    return CliRunner().invoke(main, ["broker", "accounts", "add", *args], env=env, catch_exceptions=False)


def _row(db: psycopg.Connection) -> tuple[str, str, object, object]:
    row = db.execute("SELECT role, password_hash, created_at, revoked_at FROM broker_accounts"
                     " WHERE username = %s", (NAME,)).fetchone()
    assert row is not None
    return row


def test_password_env_creates_then_leaves_alone_then_resets(database_url: str,
                                                             db: psycopg.Connection) -> None:
    first = _add(database_url, NAME, "--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD",
                 "--json", password="first-Secret_123")
    assert first.exit_code == 0, first.output
    assert orjson.loads(first.output) == {"username": NAME, "role": "ingest", "change": "created"}
    # The password is printed nowhere: the deployment has it already.
    assert "first-Secret_123" not in first.output
    role, hashed, created, _ = _row(db)
    assert role == "ingest" and verify_password("first-Secret_123", hashed)
    files = render_auth_files(db)

    again = _add(database_url, NAME, "--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD",
                 password="first-Secret_123")
    assert again.exit_code == 0 and f"{NAME} (role ingest): unchanged" in again.output
    # Same hash (same salt): the broker files do not change, so a restart reloads nothing.
    assert _row(db)[1] == hashed and render_auth_files(db) == files

    changed = _add(database_url, NAME, "--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD",
                   "--json", password="second-Secret_456")
    assert orjson.loads(changed.output)["change"] == "updated"
    role, new_hash, new_created, _ = _row(db)
    assert verify_password("second-Secret_456", new_hash)
    assert not verify_password("first-Secret_123", new_hash)
    assert new_created == created  # the same account, a new password
    assert render_auth_files(db).passwords != files.passwords

    # A new role is taken as given; the ACL file follows.
    monitor = _add(database_url, NAME, "--role", "monitor", "--password-env", "PASER_TEST_MQTT_PASSWORD",
                   "--json", password="second-Secret_456")
    assert orjson.loads(monitor.output)["change"] == "updated" and _row(db)[0] == "monitor"
    assert "# role monitor" in render_auth_files(db).acl


def test_password_env_brings_a_revoked_account_back(database_url: str, db: psycopg.Connection) -> None:
    _add(database_url, NAME, "--role", "api", "--password-env", "PASER_TEST_MQTT_PASSWORD",
         password="first-Secret_123")
    assert CliRunner().invoke(main, ["broker", "accounts", "revoke", NAME],
                              env={"SMARTCITY_DATABASE_URL": database_url}).exit_code == 0
    assert NAME not in render_auth_files(db).passwords
    back = _add(database_url, NAME, "--role", "api", "--password-env", "PASER_TEST_MQTT_PASSWORD", "--json",
                password="first-Secret_123")
    assert orjson.loads(back.output)["change"] == "created"
    assert _row(db)[3] is None and f"{NAME}:" in render_auth_files(db).passwords


@pytest.mark.parametrize(("args", "password", "status", "message"), [
    (("--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD"), None, 2,
     "PASER_TEST_MQTT_PASSWORD is unset or empty"),
    (("--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD"), "", 2, "unset or empty"),
    (("--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD"), "short", 1,
     "at least 12 characters"),
    (("--role", "ingest", "--password-env", "PASER_TEST_MQTT_PASSWORD"), "two\nlines-of-secret", 1,
     "on one line"),
    (("--rotate", "--password-env", "PASER_TEST_MQTT_PASSWORD"), "first-Secret_123", 2, "give --role"),
    (("--password-env", "PASER_TEST_MQTT_PASSWORD"), "first-Secret_123", 2, "give --role"),
])
def test_password_env_refuses_bad_input_and_stores_nothing(database_url: str, db: psycopg.Connection,
                                                          args: tuple[str, ...], password: str | None,
                                                          status: int, message: str) -> None:
    result = _add(database_url, NAME, *args, password=password)
    assert result.exit_code == status and message in result.output, result.output
    assert db.execute("SELECT count(*) FROM broker_accounts").fetchone() == (0,)


def test_password_env_refuses_a_bad_name_or_role(database_url: str, db: psycopg.Connection) -> None:
    bad_name = _add(database_url, "ingest-1", "--role", "ingest", "--password-env",
                    "PASER_TEST_MQTT_PASSWORD", password="first-Secret_123")
    assert bad_name.exit_code == 1 and "must match" in bad_name.output
    bad_role = _add(database_url, NAME, "--role", "root", "--password-env", "PASER_TEST_MQTT_PASSWORD",
                    password="first-Secret_123")
    assert bad_role.exit_code == 2 and "'root' is not one of" in bad_role.output
    assert db.execute("SELECT count(*) FROM broker_accounts").fetchone() == (0,)
