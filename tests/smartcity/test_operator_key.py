"""`smartcity up`'s operator key: created once, private to its owner, replaced when revoked."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg

from smartcity.apikeys import is_active, parse_key, revoke_key
from smartcity.launcher import ensure_operator_key


def test_the_operator_key_is_kept_private_and_replaced_only_when_revoked(
        database_url: str, db: psycopg.Connection, tmp_path: Path) -> None:
    path = tmp_path / "state" / "api-key"
    assert ensure_operator_key(database_url, path) is True
    key = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert is_active(db, key)
    assert db.execute("SELECT scope FROM api_keys").fetchall() == [("admin",)]

    assert ensure_operator_key(database_url, path) is False
    assert path.read_text().strip() == key

    key_id = parse_key(key)
    assert key_id is not None
    revoke_key(db, key_id)
    assert ensure_operator_key(database_url, path) is True
    replacement = path.read_text().strip()
    assert replacement != key and is_active(db, replacement) and not is_active(db, key)
    assert not is_active(db, "garbage") and not is_active(db, replacement[:-1] + "?")
