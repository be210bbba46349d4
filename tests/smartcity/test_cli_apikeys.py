"""`smartcity apikeys create|list|revoke` against the real database."""

from __future__ import annotations

import orjson
import psycopg
from click.testing import CliRunner, Result

from smartcity.apikeys import digest, parse_key
from smartcity.cli import main


def _run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["apikeys", *args], env={"SMARTCITY_DATABASE_URL": database_url},
                              catch_exceptions=False)


def test_create_prints_the_key_once_and_stores_only_its_digest(
        database_url: str, db: psycopg.Connection) -> None:
    result = _run(database_url, "create", "--scope", "write", "--name", "bpbd bridge", "--json")
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert set(out) == {"key", "scope", "id", "name"}
    assert (out["scope"], out["name"], parse_key(out["key"])) == ("write", "bpbd bridge", out["id"])
    row = db.execute("SELECT key_id, scope, digest FROM api_keys").fetchone()
    assert row == (out["id"], "write", digest(out["key"]))
    listed = orjson.loads(_run(database_url, "list", "--json").stdout)
    assert [k["id"] for k in listed] == [out["id"]]
    assert "key" not in listed[0] and out["key"] not in _run(database_url, "list").output


def test_revoke_hides_the_key_from_the_default_listing(database_url: str) -> None:
    first = orjson.loads(_run(database_url, "create", "--scope", "read", "--json").stdout)
    second = orjson.loads(_run(database_url, "create", "--scope", "admin", "--json").stdout)
    revoked = _run(database_url, "revoke", first["id"], "--json")
    assert revoked.exit_code == 0, revoked.output
    assert orjson.loads(revoked.stdout)["revoked_at"] is not None
    assert [k["id"] for k in orjson.loads(_run(database_url, "list", "--json").stdout)] == [second["id"]]
    every = orjson.loads(_run(database_url, "list", "--all", "--json").stdout)
    assert {k["id"]: k["revoked_at"] is not None for k in every} == {first["id"]: True,
                                                                      second["id"]: False}
    # Revoking again keeps the first revocation's time.
    again = orjson.loads(_run(database_url, "revoke", first["id"], "--json").stdout)
    assert again["revoked_at"] == orjson.loads(revoked.stdout)["revoked_at"]


def test_bad_input_gets_a_clear_error_and_changes_nothing(
        database_url: str, db: psycopg.Connection) -> None:
    bad_scope = _run(database_url, "create", "--scope", "root")
    assert bad_scope.exit_code == 2 and "'root' is not one of 'read', 'write', 'admin'" in bad_scope.output
    long_name = _run(database_url, "create", "--scope", "read", "--name", "x" * 201)
    assert long_name.exit_code == 2 and "longer than 200 characters" in long_name.output
    unknown = _run(database_url, "revoke", "nosuchkey000")
    assert unknown.exit_code == 1 and "no API key has the id 'nosuchkey000'" in unknown.output
    assert db.execute("SELECT count(*) FROM api_keys").fetchone() == (0,)
