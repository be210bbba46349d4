"""Versioned schema migrations: plain SQL files ``migrations/NNN_name.sql`` applied in order.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with a checksum,
so an edited, already-applied file is refused instead of silently diverging. An advisory lock
lets several processes (workers starting together) call ``apply_migrations`` safely.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import psycopg

__all__ = ["Migration", "MigrationError", "apply_migrations", "load_migrations"]

_LOCK_KEY = 0x5C17_0001  # arbitrary, constant: one lock for everyone migrating this database
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """The migration files or the database's migration record are inconsistent."""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Read the migration files of ``directory`` (default: the packaged ones), in order.

    Raises:
        MigrationError: a file is misnamed or two share a version.
    """
    root = directory or Path(str(resources.files("smartcity.db") / "migrations"))
    migrations: dict[int, Migration] = {}
    for path in sorted(root.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file {path.name} is not named NNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(f"two migration files have version {version:03d}")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


def apply_migrations(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the migrations not yet applied; return the versions applied now.

    Raises:
        MigrationError: an applied migration's file changed or disappeared.
    """
    migrations = load_migrations() if migrations is None else migrations
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied: dict[int, str] = dict(
            conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
        )
        known = {m.version for m in migrations}
        missing = sorted(set(applied) - known)
        if missing:
            raise MigrationError(f"database has migrations {missing} that no file provides")
        done: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                if applied[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:03d}_{migration.name} was changed after "
                        "it was applied; add a new migration instead"
                    )
                continue
            with conn.transaction():
                conn.execute(migration.sql)  # trusted file content, not a parameterised statement
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            done.append(migration.version)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
