"""Migration 003 on a database that already holds quarantine rows of the old shape."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from smartcity.db.migrate import apply_migrations, load_migrations
from smartcity.services import EmbeddedPostgres


@pytest.fixture
def old_db(postgres: EmbeddedPostgres) -> Iterator[psycopg.Connection]:
    """A database of the test's own at migration 002."""
    admin_url = postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS migrate_003_test")
        admin.execute("CREATE DATABASE migrate_003_test")
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/migrate_003_test", autocommit=True) as conn:
        apply_migrations(conn, [m for m in load_migrations() if m.version <= 2])
        yield conn


def test_old_rows_get_their_reasons_parts_and_size_and_keep_their_payload(
        old_db: psycopg.Connection) -> None:
    big = b"x" * 70_000  # kept whole by the old unknown-device path
    old_db.execute("INSERT INTO quarantine (topic, device_id, reason, detail, payload)"
                   " VALUES ('t', 'aq-01', 'unknown_device', 'device aq-01 is not registered', %s)", (big,))
    apply_migrations(old_db)

    row = old_db.execute("SELECT reason, reasons, parts, payload_size, length(payload), replay_of"
                         " FROM quarantine").fetchone()
    assert row == ("unknown_device", ["unknown_device"], {
        "total": 1, "by_reason": {"unknown_device": 1},
        "first": [{"reason": "unknown_device", "detail": "device aq-01 is not registered"}]},
        70_000, 70_000, None)

    insert = ("INSERT INTO quarantine (topic, reason, reasons, detail, parts, payload, payload_size)"
              " VALUES ('t', %s, %s, 'd', '{}', %s, 1)")
    old_db.execute(insert, ("storage_rejected", ["storage_rejected"], b"ok"))
    old_db.execute(insert, ("invalid_topic", ["invalid_topic"], b"ok"))
    with pytest.raises(psycopg.errors.CheckViolation, match="quarantine_payload_capped"):
        old_db.execute(insert, ("invalid_json", ["invalid_json"], big))
    with pytest.raises(psycopg.errors.CheckViolation, match="quarantine_reasons_check"):
        old_db.execute(insert, ("invalid_json", ["out_of_range"], b"ok"))
    with pytest.raises(psycopg.errors.CheckViolation, match="quarantine_payload_once"):
        old_db.execute(insert, ("invalid_json", ["invalid_json"], None))
