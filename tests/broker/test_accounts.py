"""Service accounts and device revocation in the registry, and the notifications the sync follows."""

from __future__ import annotations

import psycopg
import pytest

from smartcity.broker.accounts import (
    AccountError,
    AccountExists,
    AccountNotFound,
    DeviceNotFound,
    create_account,
    list_accounts,
    revoke_account,
    revoke_device,
    rotate_password,
)
from smartcity.credentials import verify_password
from smartcity.db.queries.broker import CHANNEL
from smartcity.devices import DeviceError, DeviceExists, get_device, register_device


def _hash(db: psycopg.Connection, username: str) -> str:
    return str(db.execute("SELECT password_hash FROM broker_accounts WHERE username = %s",
                          (username,)).fetchone()[0])


def test_an_account_is_created_with_a_password_shown_once_and_stored_hashed(db: psycopg.Connection) -> None:
    made = create_account(db, "smartcity-ingest-1", "ingest")
    assert (made.username, made.role) == ("smartcity-ingest-1", "ingest")
    stored = _hash(db, made.username)
    assert stored.startswith("$7$") and made.password not in stored and verify_password(made.password, stored)
    with pytest.raises(AccountExists, match="exists already"):
        create_account(db, "smartcity-ingest-1", "api")
    assert [a.role for a in list_accounts(db)] == ["ingest"]  # the refused call changed nothing


@pytest.mark.parametrize(("username", "role", "message"), [
    ("ingest-1", "ingest", "must match"),  # no prefix: it would be a device's name
    ("smartcity-", "ingest", "must match"),
    ("smartcity-Ingest", "ingest", "must match"),
    ("smartcity-ingest-1", "root", "unknown role 'root'"),
])
def test_bad_names_and_roles_are_refused_and_nothing_is_stored(
        db: psycopg.Connection, username: str, role: str, message: str) -> None:
    with pytest.raises(AccountError, match=message):
        create_account(db, username, role)
    assert list_accounts(db, include_revoked=True) == []


def test_rotate_and_revoke(db: psycopg.Connection) -> None:
    first = create_account(db, "smartcity-api-1", "api")
    second = rotate_password(db, "smartcity-api-1")
    assert second.role == "api" and second.password != first.password
    assert verify_password(second.password, _hash(db, "smartcity-api-1"))
    assert not verify_password(first.password, _hash(db, "smartcity-api-1"))
    revoked_at = revoke_account(db, "smartcity-api-1")
    assert list_accounts(db) == []
    [record] = list_accounts(db, include_revoked=True)
    assert record.revoked_at == revoked_at and record.to_dict()["revoked_at"] == revoked_at.isoformat()
    with pytest.raises(AccountNotFound):
        revoke_account(db, "smartcity-api-1")
    with pytest.raises(AccountNotFound):
        rotate_password(db, "smartcity-api-1")
    again = create_account(db, "smartcity-api-1", "monitor")  # a revoked name may be taken again
    assert [(a.role, a.revoked_at) for a in list_accounts(db)] == [("monitor", None)]
    assert verify_password(again.password, _hash(db, "smartcity-api-1"))


def test_revoking_a_device_keeps_it_and_its_id_taken(db: psycopg.Connection) -> None:
    register_device(db, "light-rev-01", "street_light", "kuaro")
    first = revoke_device(db, "light-rev-01")
    assert not first.already_revoked
    second = revoke_device(db, "light-rev-01")
    assert second.already_revoked and second.revoked_at == first.revoked_at
    assert get_device(db, "light-rev-01") is not None
    with pytest.raises(DeviceExists):
        register_device(db, "light-rev-01", "street_light", "kuaro")
    with pytest.raises(DeviceNotFound, match="no device 'light-rev-02'"):
        revoke_device(db, "light-rev-02")


def test_device_ids_with_the_service_prefix_are_refused(db: psycopg.Connection) -> None:
    with pytest.raises(DeviceError, match="reserved for the platform's service accounts"):
        register_device(db, "smartcity-ingest-1", "waste_bin", "kuaro")
    # The database refuses them too, whoever writes the row.
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO devices (device_id, kind, site_id, mqtt_username, mqtt_password_hash)"
                   " VALUES ('smartcity-x1', 'waste_bin', 'kuaro', 'smartcity-x1', '$7$x')")
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (0,)


def _notified(listener: psycopg.Connection) -> list[str]:
    return [n.payload for n in listener.notifies(timeout=0.3) if n.channel == CHANNEL]


def test_changes_the_broker_sees_notify_and_ingest_updates_do_not(
        database_url: str, db: psycopg.Connection) -> None:
    with psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        register_device(db, "bin-notify-01", "waste_bin", "kuaro")
        assert _notified(listener) == ["devices"]
        # What ingest writes on every message: no notification.
        db.execute("UPDATE devices SET status = 'online', last_seen = now(), status_changed_at = now()")
        assert _notified(listener) == []
        db.execute("UPDATE devices SET mqtt_password_hash = '$7$new'")
        assert _notified(listener) == ["devices"]
        revoke_device(db, "bin-notify-01")
        assert _notified(listener) == ["devices"]
        create_account(db, "smartcity-monitor-1", "monitor")
        assert _notified(listener) == ["broker_accounts"]
        db.execute("DELETE FROM devices")
        assert _notified(listener) == ["devices"]
