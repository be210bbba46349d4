"""The password and ACL files: what they say, how they are written, and when they change."""

from __future__ import annotations

import grp
import os
import stat
import threading
from pathlib import Path

import psycopg
import pytest

from smartcity.broker.accounts import create_account, revoke_account, revoke_device
from smartcity.broker.authfiles import (
    ACL_FILE,
    PASSWORD_FILE,
    AuthFiles,
    broker_group,
    render_auth_files,
    write_auth_files,
)
from smartcity.broker.roles import DEVICE_RIGHTS, ROLES, Role
from smartcity.broker.sync import sync_once
from smartcity.credentials import verify_password
from smartcity.devices import register_device


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_files_hold_active_devices_and_accounts_with_their_roles(db: psycopg.Connection) -> None:
    device = register_device(db, "aq-files-01", "air_quality_station", "kuaro")
    register_device(db, "aq-files-02", "air_quality_station", "kuaro")
    revoke_device(db, "aq-files-02")
    accounts = {role: create_account(db, f"smartcity-{role.value}-1", role.value) for role in Role}
    create_account(db, "smartcity-ingest-9", "ingest")
    revoke_account(db, "smartcity-ingest-9")
    files = render_auth_files(db)

    logins = dict(line.split(":", 1) for line in _lines(files.passwords))
    assert set(logins) == {"aq-files-01", *(a.username for a in accounts.values())}
    assert verify_password(device.mqtt_password, logins["aq-files-01"])
    assert all(verify_password(a.password, logins[a.username]) for a in accounts.values())

    acl = _lines(files.acl)
    patterns = [f"pattern {r.access} {r.topic}" for r in DEVICE_RIGHTS]
    assert acl[:3] == patterns == ["pattern write smartcity/v1/devices/%u/telemetry",
                                   "pattern write smartcity/v1/devices/%u/status",
                                   "pattern read smartcity/v1/devices/%u/commands"]
    expected = []
    for role, account in sorted(accounts.items(), key=lambda item: item[1].username):
        expected += [f"user {account.username}",
                     *(f"topic {r.access} {r.topic}" for r in ROLES[role][0])]
    assert acl[3:] == expected
    assert "topic read smartcity/v1/devices/+/telemetry" in acl  # the ingest role, spelt out
    assert "smartcity-ingest-9" not in files.acl + files.passwords


def test_an_account_of_a_role_this_version_does_not_know_is_left_out(
        db: psycopg.Connection, caplog: pytest.LogCaptureFixture) -> None:
    db.execute("INSERT INTO broker_accounts (username, role, password_hash)"
               " VALUES ('smartcity-old-1', 'retired', '$7$101$c2FsdA==$aGFzaA==')")
    files = render_auth_files(db)
    assert "smartcity-old-1" not in files.passwords + files.acl
    assert "unknown role 'retired'" in caplog.text


def test_a_device_row_with_the_service_prefix_never_reaches_the_broker(db: psycopg.Connection) -> None:
    # Only possible for a row older than migration 013 (its check is NOT VALID); simulate one.
    db.execute("ALTER TABLE devices DROP CONSTRAINT devices_not_service_prefix")
    try:
        db.execute("INSERT INTO devices (device_id, kind, site_id, mqtt_username, mqtt_password_hash)"
                   " VALUES ('smartcity-ingest-1', 'waste_bin', 'kuaro', 'smartcity-ingest-1', '$7$x')")
        assert "smartcity-ingest-1" not in render_auth_files(db).passwords
        db.execute("DELETE FROM devices")
    finally:
        db.execute("ALTER TABLE devices ADD CONSTRAINT devices_not_service_prefix"
                   " CHECK (left(device_id, 10) <> 'smartcity-') NOT VALID")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private_or_readable_by_the_broker_group_only(tmp_path: Path) -> None:
    files = AuthFiles("dev-01:$7$x\n", "pattern read a/%u\n")
    assert write_auth_files(tmp_path / "own", files)
    assert _mode(tmp_path / "own") == 0o700
    assert {_mode(tmp_path / "own" / n) for n in (PASSWORD_FILE, ACL_FILE)} == {0o600}
    gid = broker_group()
    if gid is None:
        assert os.geteuid() != 0  # as root the mosquitto group exists on Debian
        return
    assert write_auth_files(tmp_path / "shared", files, gid)
    for path in (tmp_path / "shared" / PASSWORD_FILE, tmp_path / "shared" / ACL_FILE):
        assert _mode(path) == 0o640 and path.stat().st_gid == gid == grp.getgrnam("mosquitto").gr_gid
    assert _mode(tmp_path / "shared") == 0o750


def test_files_are_replaced_whole_and_only_when_their_text_changes(tmp_path: Path) -> None:
    small = AuthFiles("a:$7$1\n", "# small\n")
    big = AuthFiles("".join(f"dev-{n:05d}:$7$101${'s' * 16}${'h' * 88}\n" for n in range(20_000)),
                    "# big\n" * 50_000)
    write_auth_files(tmp_path, small)
    path = tmp_path / PASSWORD_FILE
    seen: set[str] = set()
    stop = threading.Event()

    def read_all_the_time() -> None:
        while not stop.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for n in range(30):
            assert write_auth_files(tmp_path, big if n % 2 == 0 else small)
    finally:
        stop.set()
        reader.join()
    # A reader saw the old file or the new one, never a truncated or half-written one.
    assert seen <= {small.passwords, big.passwords} and len(seen) == 2
    inode, mtime = path.stat().st_ino, path.stat().st_mtime_ns
    assert not write_auth_files(tmp_path, small)  # same text: nothing written
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (inode, mtime)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_sync_once_rewrites_when_the_registry_changes_and_not_otherwise(
        db: psycopg.Connection, tmp_path: Path) -> None:
    assert sync_once(db, tmp_path)  # first render
    assert not sync_once(db, tmp_path)
    register_device(db, "bin-files-01", "waste_bin", "kuaro")
    assert sync_once(db, tmp_path)
    # What ingest changes all the time does not concern the broker.
    db.execute("UPDATE devices SET status = 'online', last_seen = now()")
    assert not sync_once(db, tmp_path)
    revoke_device(db, "bin-files-01")
    assert sync_once(db, tmp_path)
    assert "bin-files-01" not in (tmp_path / PASSWORD_FILE).read_text()
