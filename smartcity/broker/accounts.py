"""Service accounts of the broker (create, rotate, list, revoke) and the revocation of devices.

Passwords are generated here, shown once and stored only as Mosquitto's ``$7$`` hash. Every change
commits in the registry; the database then notifies a running ``BrokerAuthSync``, which rewrites
the broker's files and reloads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import psycopg

from smartcity.broker.roles import ROLES, Role, is_valid_account_name
from smartcity.credentials import generate_password, hash_password, verify_password
from smartcity.db.queries import broker as broker_sql
from smartcity.devices import DeviceError

__all__ = [
    "MIN_GIVEN_PASSWORD",
    "AccountChange",
    "AccountError",
    "AccountExists",
    "AccountNotFound",
    "AccountRecord",
    "DeviceNotFound",
    "DeviceRevocation",
    "NewAccount",
    "create_account",
    "ensure_account",
    "list_accounts",
    "revoke_account",
    "revoke_device",
    "rotate_password",
]


class AccountError(ValueError):
    """A service account cannot be created or changed as asked.

    AccountError
    ├── AccountExists    an active account has that name
    └── AccountNotFound  no active account has that name
    """


class AccountExists(AccountError):
    """An active service account has that name already."""


class AccountNotFound(AccountError):
    """No active service account has that name."""


class DeviceNotFound(DeviceError):
    """No device has that id."""


@dataclass(frozen=True)
class NewAccount:
    """A service account just created or given a new password (the password is shown once)."""

    username: str
    role: str
    password: str


@dataclass(frozen=True)
class AccountRecord:
    """A service account as stored."""

    username: str
    role: str
    created_at: datetime
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {"username": self.username, "role": self.role,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None}


@dataclass(frozen=True)
class DeviceRevocation:
    """A device cut off from the broker: when, and whether it had been revoked before."""

    device_id: str
    revoked_at: datetime
    already_revoked: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {"device_id": self.device_id, "revoked_at": self.revoked_at.isoformat(),
                "already_revoked": self.already_revoked}


def _check_name(username: str) -> None:
    if not is_valid_account_name(username):
        raise AccountError(f"service account {username!r} must match "
                           "^smartcity-[a-z0-9][a-z0-9_-]{0,53}$ (e.g. smartcity-ingest-1)")


def create_account(conn: psycopg.Connection[Any], username: str, role: str) -> NewAccount:
    """Create a service account with a new password; a revoked account's name may be reused.

    Raises:
        AccountError: the name or role is invalid.
        AccountExists: an active account has that name (rotate its password instead).
    """
    _check_name(username)
    if role not in {r.value for r in ROLES}:
        raise AccountError(f"unknown role {role!r}; known: {', '.join(r.value for r in Role)}")
    password = generate_password()
    with conn.transaction():
        row = conn.execute(broker_sql.INSERT_ACCOUNT,
                           (username, role, hash_password(password))).fetchone()
    if row is None:
        raise AccountExists(f"service account {username!r} exists already; "
                            "rotate its password or revoke it first")
    return NewAccount(username, role, password)


# A password given from outside (a deployment's secret) rather than generated here.
MIN_GIVEN_PASSWORD: Final = 12

AccountChange = Literal["created", "updated", "unchanged"]


def ensure_account(conn: psycopg.Connection[Any], username: str, role: str,
                   password: str) -> AccountChange:
    """Make the service account exist, active, with ``role`` and ``password``; tell what changed.

    For deployments that keep the password themselves (compose's secrets): run on every start, it
    changes nothing while the password and role are the same, so the broker files stay untouched
    and the broker is not reloaded. A new password or role takes effect at once (the account's
    connections are dropped at the next reload); a revoked account is made active again.

    Raises:
        AccountError: the name, role or password is invalid.
    """
    _check_name(username)
    if role not in {r.value for r in ROLES}:
        raise AccountError(f"unknown role {role!r}; known: {', '.join(r.value for r in Role)}")
    if len(password) < MIN_GIVEN_PASSWORD or any(c in password for c in "\r\n\0"):
        raise AccountError(f"the password of {username!r} must be at least {MIN_GIVEN_PASSWORD} "
                           "characters on one line")
    with conn.transaction():
        row = conn.execute(broker_sql.SELECT_LOGIN_FOR_UPDATE, (username,)).fetchone()
        if row is not None and row[0] == role and row[2] is None and verify_password(password, row[1]):
            return "unchanged"
        conn.execute(broker_sql.UPSERT_ACCOUNT, (username, role, hash_password(password)))
    return "created" if row is None or row[2] is not None else "updated"


def rotate_password(conn: psycopg.Connection[Any], username: str) -> NewAccount:
    """Give an active service account a new password; its connections are dropped on reload.

    Raises:
        AccountNotFound: no active account has that name.
    """
    password = generate_password()
    with conn.transaction():
        row = conn.execute(broker_sql.ROTATE_ACCOUNT, (hash_password(password), username)).fetchone()
        record = conn.execute(broker_sql.SELECT_ACCOUNT, (username,)).fetchone()
    if row is None or record is None:
        raise AccountNotFound(f"no active service account {username!r}")
    return NewAccount(username, record[1], password)


def list_accounts(conn: psycopg.Connection[Any], include_revoked: bool = False) -> list[AccountRecord]:
    """Return the service accounts by name (active ones, or all)."""
    rows = conn.execute(broker_sql.SELECT_ACCOUNTS, {"all": include_revoked}).fetchall()
    return [AccountRecord(*row) for row in rows]


def revoke_account(conn: psycopg.Connection[Any], username: str) -> datetime:
    """Revoke an active service account; return when. The broker drops it on the next sync.

    Raises:
        AccountNotFound: no active account has that name.
    """
    with conn.transaction():
        row = conn.execute(broker_sql.REVOKE_ACCOUNT, (username,)).fetchone()
    if row is None:
        raise AccountNotFound(f"no active service account {username!r}")
    revoked_at: datetime = row[0]
    return revoked_at


def revoke_device(conn: psycopg.Connection[Any], device_id: str) -> DeviceRevocation:
    """Cut a device off the broker for good; its readings stay and its id stays taken.

    Revoking a revoked device changes nothing and says so.

    Raises:
        DeviceNotFound: no device has that id.
    """
    with conn.transaction():
        row = conn.execute(broker_sql.REVOKE_DEVICE, (device_id,)).fetchone()
        if row is not None:
            return DeviceRevocation(device_id, row[0], already_revoked=False)
        known = conn.execute(broker_sql.SELECT_DEVICE_REVOCATION, (device_id,)).fetchone()
    if known is None:
        raise DeviceNotFound(f"no device {device_id!r}")
    return DeviceRevocation(device_id, known[0], already_revoked=True)
