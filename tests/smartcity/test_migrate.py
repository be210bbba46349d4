"""The migration runner: order, idempotence, and refusal of edited or unknown migrations."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from smartcity.db.migrate import Migration, MigrationError, apply_migrations, load_migrations


@pytest.fixture
def scratch_db(postgres) -> psycopg.Connection:  # noqa: ANN001
    """A connection to an empty database of the test's own."""
    admin_url = postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS migrate_test")
        admin.execute("CREATE DATABASE migrate_test")
    with psycopg.connect(admin_url.rsplit("/", 1)[0] + "/migrate_test") as conn:
        yield conn


def test_packaged_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_applies_in_order_once(scratch_db: psycopg.Connection) -> None:
    migrations = [Migration(1, "a", "CREATE TABLE a (x int)"),
                  Migration(2, "b", "INSERT INTO a VALUES (1)")]
    assert apply_migrations(scratch_db, migrations) == [1, 2]
    assert apply_migrations(scratch_db, migrations) == []
    assert scratch_db.execute("SELECT count(*) FROM a").fetchone()[0] == 1


def test_a_failing_migration_leaves_nothing_behind(scratch_db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error):
        apply_migrations(scratch_db, [Migration(1, "bad", "CREATE TABLE t (x int); SELECT nope")])
    assert scratch_db.execute("SELECT to_regclass('t')").fetchone()[0] is None
    assert scratch_db.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0


def test_an_edited_migration_is_refused(scratch_db: psycopg.Connection) -> None:
    apply_migrations(scratch_db, [Migration(1, "a", "CREATE TABLE a (x int)")])
    with pytest.raises(MigrationError, match="changed after"):
        apply_migrations(scratch_db, [Migration(1, "a", "CREATE TABLE a (y int)")])
    with pytest.raises(MigrationError, match="no file provides"):
        apply_migrations(scratch_db, [])


def test_misnamed_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "1_init.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match="NNN_name.sql"):
        load_migrations(tmp_path)
