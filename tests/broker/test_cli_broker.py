"""`smartcity broker accounts|sync` and `smartcity devices revoke`, against the real database and,
for the sync, a real Mosquitto that reads the files and is reloaded through its pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner, Result

from smartcity.broker.authfiles import ACL_FILE, PASSWORD_FILE
from smartcity.cli import main
from smartcity.credentials import verify_password
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, free_port
from tests.broker.conftest import open_session
from tests.services import scratch_dir, wait_until

NOT_AUTHORIZED = 0x87


def _run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"SMARTCITY_DATABASE_URL": database_url},
                              catch_exceptions=False)


def test_accounts_add_list_revoke(database_url: str, db: psycopg.Connection) -> None:
    added = _run(database_url, "broker", "accounts", "add", "smartcity-ingest-2", "--role", "ingest",
                 "--json")
    assert added.exit_code == 0, added.output
    out = orjson.loads(added.stdout)
    assert set(out) == {"username", "role", "password"} and out["role"] == "ingest"
    [(stored,)] = db.execute("SELECT password_hash FROM broker_accounts").fetchall()
    assert verify_password(out["password"], stored)

    text = _run(database_url, "broker", "accounts", "add", "smartcity-api-1", "--role", "api")
    assert text.exit_code == 0 and "(shown once)" in text.output
    rotated = _run(database_url, "broker", "accounts", "add", "smartcity-api-1", "--rotate", "--json")
    assert rotated.exit_code == 0 and orjson.loads(rotated.stdout)["role"] == "api"

    listed = orjson.loads(_run(database_url, "broker", "accounts", "list", "--json").stdout)
    assert [a["username"] for a in listed] == ["smartcity-api-1", "smartcity-ingest-2"]
    revoked = _run(database_url, "broker", "accounts", "revoke", "smartcity-api-1", "--json")
    assert revoked.exit_code == 0 and orjson.loads(revoked.stdout)["username"] == "smartcity-api-1"
    assert [a["username"] for a in orjson.loads(
        _run(database_url, "broker", "accounts", "list", "--json").stdout)] == ["smartcity-ingest-2"]
    every = orjson.loads(_run(database_url, "broker", "accounts", "list", "--all", "--json").stdout)
    assert [a["revoked_at"] is not None for a in every] == [True, False]


@pytest.mark.parametrize(("args", "status", "message"), [
    (("add", "smartcity-ingest-2"), 2, "give --role"),
    (("add", "smartcity-ingest-2", "--role", "ingest", "--rotate"), 2, "give --role"),
    (("add", "smartcity-ingest-2", "--role", "root"), 2, "'root' is not one of"),
    (("add", "ingest-2", "--role", "ingest"), 1, "must match"),
    (("add", "smartcity-nobody", "--rotate"), 1, "no active service account"),
    (("revoke", "smartcity-nobody"), 1, "no active service account"),
])
def test_account_commands_refuse_bad_input_clearly(database_url: str, db: psycopg.Connection,
                                                   args: tuple[str, ...], status: int, message: str) -> None:
    result = _run(database_url, "broker", "accounts", *args)
    assert result.exit_code == status and message in result.output, result.output
    assert db.execute("SELECT count(*) FROM broker_accounts").fetchone() == (0,)


def test_devices_revoke(database_url: str, db: psycopg.Connection) -> None:
    register_device(db, "bin-cli-01", "waste_bin", "kuaro")
    first = _run(database_url, "devices", "revoke", "bin-cli-01", "--json")
    assert first.exit_code == 0, first.output
    assert orjson.loads(first.stdout)["already_revoked"] is False
    again = _run(database_url, "devices", "revoke", "bin-cli-01")
    assert again.exit_code == 0 and "revoked already" in again.output
    unknown = _run(database_url, "devices", "revoke", "bin-cli-99")
    assert unknown.exit_code == 1 and "no device 'bin-cli-99'" in unknown.output
    reuse = _run(database_url, "devices", "add", "--id", "bin-cli-01", "--kind", "waste_bin",
                 "--site", "kuaro")
    assert reuse.exit_code == 1 and "registered already" in reuse.output


@pytest.fixture
def external_broker(database_url: str) -> Iterator[tuple[EmbeddedMosquitto, Path]]:
    """A broker the platform does not manage: it reads files `smartcity broker sync` writes."""
    with scratch_dir("smartcity-broker-cli-") as directory:
        auth = directory / "auth"
        assert _run(database_url, "broker", "sync", "--dir", str(auth)).exit_code == 0
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=auth)
        broker.start()
        try:
            wait_until(lambda: broker.pid_file.exists(), message="pid file")
            yield broker, auth
        finally:
            broker.stop()


def test_sync_writes_the_files_and_reloads_the_broker_by_its_pid_file(
        database_url: str, db: psycopg.Connection, external_broker: tuple[EmbeddedMosquitto, Path]) -> None:
    broker, auth = external_broker
    device = register_device(db, "bin-cli-02", "waste_bin", "kuaro")
    before = open_session(broker.port, device.mqtt_username, device.mqtt_password)
    assert before.connack[0] == NOT_AUTHORIZED  # not in the files yet
    before.close()
    synced = _run(database_url, "broker", "sync", "--dir", str(auth), "--pid-file", str(broker.pid_file),
                  "--json")
    assert synced.exit_code == 0, synced.output
    assert orjson.loads(synced.stdout) == {"directory": str(auth), "changed": True, "reloaded": True}
    after = open_session(broker.port, device.mqtt_username, device.mqtt_password)
    assert not after.connack[0].is_failure
    after.close()
    same = orjson.loads(_run(database_url, "broker", "sync", "--dir", str(auth), "--json").stdout)
    assert same["changed"] is False and (auth / PASSWORD_FILE).exists() and (auth / ACL_FILE).exists()
    missing = _run(database_url, "broker", "sync", "--dir", str(auth), "--pid-file", str(auth / "nope.pid"))
    assert missing.exit_code == 0  # nothing changed, so nothing to reload


def test_sync_watch_follows_the_registry_until_sigterm(
        database_url: str, db: psycopg.Connection, external_broker: tuple[EmbeddedMosquitto, Path],
        tmp_path: Path) -> None:
    broker, auth = external_broker
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env["SMARTCITY_DATABASE_URL"] = database_url
    with open(tmp_path / "sync.log", "wb") as log:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "smartcity", "broker", "sync", "--dir", str(auth),
             "--pid-file", str(broker.pid_file), "--watch"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        device = register_device(db, "bin-cli-03", "waste_bin", "kuaro")

        def logs_in() -> bool:
            session = open_session(broker.port, device.mqtt_username, device.mqtt_password)
            session.close()
            return not session.connack[0].is_failure

        wait_until(logs_in, timeout=20, interval=0.2, message="the watcher let the new device in")
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(10) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert "rewritten from the registry" in (tmp_path / "sync.log").read_text()
