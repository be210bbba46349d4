"""The `smartcity` CLI against the real database: devices add/list/show, db migrate."""

from __future__ import annotations

import orjson
import psycopg
from click.testing import CliRunner

from smartcity.cli import main
from smartcity.credentials import verify_password


def _run(database_url: str, *args: str):  # noqa: ANN202 - click's Result
    runner = CliRunner()
    return runner.invoke(main, list(args), env={"SMARTCITY_DATABASE_URL": database_url},
                         catch_exceptions=False)


def test_devices_add_json_prints_the_contract_fields_and_a_working_password(
        database_url: str, db: psycopg.Connection) -> None:
    result = _run(database_url, "devices", "add", "--id", "river-kandilo-01",
                  "--kind", "river_level_sensor", "--site", "tanah-grogot",
                  "--lat", "-1.91", "--lon", "116.2", "--json")
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert set(out) == {"device_id", "kind", "site_id", "mqtt_username", "mqtt_password"}
    assert out["device_id"] == "river-kandilo-01" and out["site_id"] == "tanah-grogot"
    stored = db.execute("SELECT mqtt_password_hash, latitude FROM devices").fetchone()
    assert stored[0] != out["mqtt_password"] and verify_password(out["mqtt_password"], stored[0])
    assert stored[1] == -1.91


def test_devices_add_refuses_bad_input_with_a_clear_error(database_url: str,
                                                          db: psycopg.Connection) -> None:
    bad_id = _run(database_url, "devices", "add", "--id", "X!", "--kind", "waste_bin",
                  "--site", "kuaro")
    assert bad_id.exit_code == 1 and "must match" in bad_id.output
    bad_kind = _run(database_url, "devices", "add", "--id", "bin-01", "--kind", "toaster",
                    "--site", "kuaro")
    assert bad_kind.exit_code == 2 and "toaster" in bad_kind.output
    half_coords = _run(database_url, "devices", "add", "--id", "bin-01", "--kind", "waste_bin",
                       "--site", "kuaro", "--lat", "1")
    assert half_coords.exit_code == 1 and "--lon" in half_coords.output
    assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 0
    _run(database_url, "devices", "add", "--id", "bin-01", "--kind", "waste_bin", "--site", "kuaro")
    again = _run(database_url, "devices", "add", "--id", "bin-01", "--kind", "waste_bin",
                 "--site", "kuaro")
    assert again.exit_code == 1 and "registered already" in again.output


def test_devices_list_and_show(database_url: str) -> None:
    _run(database_url, "devices", "add", "--id", "bin-01", "--kind", "waste_bin", "--site", "kuaro")
    _run(database_url, "devices", "add", "--id", "noise-01", "--kind", "noise_monitor",
         "--site", "long-ikis")
    listed = orjson.loads(_run(database_url, "devices", "list", "--site", "kuaro", "--json").stdout)
    assert [d["device_id"] for d in listed] == ["bin-01"]
    shown = orjson.loads(_run(database_url, "devices", "show", "noise-01", "--json").stdout)
    assert shown["kind"] == "noise_monitor" and shown["status"] == "unknown"
    assert "mqtt_password_hash" not in shown
    missing = _run(database_url, "devices", "show", "nope-01")
    assert missing.exit_code == 1 and "no device" in missing.output


def test_db_migrate_is_idempotent(database_url: str) -> None:
    result = _run(database_url, "db", "migrate", "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {"applied": []}  # the fixture migrated already


def test_commands_without_a_database_say_how_to_get_one(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["devices", "list"], env={"SMARTCITY_DATABASE_URL": None})
    assert result.exit_code == 1
    assert "smartcity up" in result.output and "SMARTCITY_DATABASE_URL" in result.output


def test_ingest_without_a_reachable_database_fails_with_a_clear_message() -> None:
    from smartcity.services import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/smartcity"
    result = CliRunner().invoke(main, ["ingest"], env={"SMARTCITY_DATABASE_URL": url})
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output
