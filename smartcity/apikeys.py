"""API keys: create, list and revoke them, and check a presented key against its stored digest.

A key reads ``sck_<key_id>_<secret>``. The id is public: listings, revocation and logs name a key by
it. Only a SHA-256 digest of the whole key is stored, and the key itself is shown once, by the
command that creates it. Shared by the CLI (``smartcity apikeys``) and the API's authentication.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from smartcity.db.queries import apikeys as key_sql

__all__ = [
    "ApiKeyRecord",
    "KeyNotFound",
    "NewApiKey",
    "Scope",
    "create_key",
    "digest",
    "is_active",
    "list_keys",
    "matches",
    "parse_key",
    "revoke_key",
]

_PREFIX = "sck"
_ID_ALPHABET = string.ascii_lowercase + string.digits
_ID_LENGTH = 12
_SECRET_BYTES = 32
_NAME_MAX = 200


class Scope(enum.IntEnum):
    """What a key may do; each scope includes the ones below it (read < write < admin)."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """The scope's name as stored and shown: ``read``, ``write`` or ``admin``."""
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Scope:
        """Return the scope called ``label``.

        Raises:
            ValueError: no such scope.
        """
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown scope {label!r}; known: read, write, admin") from None


class KeyNotFound(LookupError):
    """No API key has that id."""


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key as listings show it: never its secret or digest."""

    key_id: str
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {
            "id": self.key_id, "name": self.name, "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: the only time its full text exists outside the client."""

    key: str
    scope: str
    key_id: str
    name: str

    def __repr__(self) -> str:  # keep the secret out of tracebacks and debug logs
        return f"NewApiKey(key_id={self.key_id!r}, scope={self.scope!r}, name={self.name!r})"

    def to_dict(self) -> dict[str, str]:
        """Return the contract's ``{"key", "scope", "id"}`` (and the name)."""
        return {"key": self.key, "scope": self.scope, "id": self.key_id, "name": self.name}


def digest(key: str) -> bytes:
    """Return the SHA-256 digest stored for ``key``."""
    return hashlib.sha256(key.encode()).digest()


def matches(key: str, stored_digest: bytes) -> bool:
    """Tell, in constant time, whether ``key`` is the key whose digest is ``stored_digest``."""
    return hmac.compare_digest(digest(key), stored_digest)


def parse_key(key: str) -> str | None:
    """Return the id of a well-formed key, or None for text that cannot be a key."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if (prefix != _PREFIX or len(key_id) != _ID_LENGTH or not secret
            or any(c not in _ID_ALPHABET for c in key_id)):
        return None
    return key_id


def create_key(conn: psycopg.Connection, scope: Scope, name: str = "") -> NewApiKey:
    """Create a key with ``scope``; the returned key text is not stored anywhere.

    Raises:
        ValueError: the name is longer than 200 characters.
    """
    if len(name) > _NAME_MAX:
        raise ValueError(f"the name is longer than {_NAME_MAX} characters")
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))
    key = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    with conn.transaction():
        conn.execute(key_sql.INSERT_KEY, (key_id, name, scope.label, digest(key)))
    return NewApiKey(key, scope.label, key_id, name)


def list_keys(conn: psycopg.Connection, *, include_revoked: bool = False) -> list[ApiKeyRecord]:
    """Return the keys, oldest first; revoked ones only with ``include_revoked``."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(key_sql.SELECT_KEYS, {"all": include_revoked}).fetchall()
    return [ApiKeyRecord(**row) for row in rows]


def revoke_key(conn: psycopg.Connection, key_id: str) -> ApiKeyRecord:
    """Revoke the key ``key_id`` for good (revoking it again changes nothing).

    Raises:
        KeyNotFound: no key has that id.
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(key_sql.REVOKE_KEY, (key_id,)).fetchone()
    if row is None:
        raise KeyNotFound(f"no API key has the id {key_id!r}")
    return ApiKeyRecord(**row)


def is_active(conn: psycopg.Connection, key: str) -> bool:
    """Tell whether ``key`` is a stored key that has not been revoked."""
    key_id = parse_key(key)
    if key_id is None:
        return False
    row = conn.execute(key_sql.SELECT_KEY_FOR_CHECK, (key_id,)).fetchone()
    return row is not None and not row[2] and matches(key, bytes(row[0]))
