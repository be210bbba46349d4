"""What the database-role tests share: statements run with a role's rights (SET ROLE), every table
with its chunks, and throwaway logins of a group role."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from smartcity.db.roles import ensure_login, login_url
from tests.services import wait_until

__all__ = ["LOGIN_SCRIPT", "all_tables", "as_role", "drop_login", "row_counts", "run_login_script",
           "temporary_login"]

LOGIN_SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "db-logins.sh"


@contextmanager
def as_role(conn: psycopg.Connection, role: str) -> Iterator[psycopg.Connection]:
    """Run the block's statements with ``role``'s rights (SET ROLE: privileges, not a login)."""
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    try:
        yield conn
    finally:
        conn.execute("RESET ROLE")


def all_tables(db: psycopg.Connection) -> list[str]:
    """Every table of schema public, and every chunk of every hypertable (quoted names)."""
    tables = [name for (name,) in db.execute(
        "SELECT format('%I', c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1")]
    chunks = [name for (name,) in db.execute(
        "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks ORDER BY 1")]
    return tables + chunks


def row_counts(db: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    """Return each table's row count (names as ``all_tables`` gives them)."""
    return {t: db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(t))).fetchone()[0]
            for t in tables}


@contextmanager
def temporary_login(db: psycopg.Connection, owner_url: str, group: str) -> Iterator[str]:
    """Yield the URL of a new login that is a member of ``group``; drop it afterwards."""
    login = f"{group}_t{uuid.uuid4().hex[:8]}"
    password = f"pw'{uuid.uuid4().hex}\" ;--"  # quotes and a comment: composed, never formatted
    ensure_login(db, login, group, password)
    try:
        yield login_url(owner_url, login, password)
    finally:
        drop_login(db, login)


def drop_login(db: psycopg.Connection, login: str) -> None:
    """End ``login``'s sessions and drop it, if it exists."""
    # Its sessions first: a session's temporary tables (ingest's staging) belong to the login,
    # and DROP ROLE refuses while something does.
    db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (login,))
    wait_until(lambda: db.execute("SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = %s",
                                  (login,)).fetchone()[0], message=f"{login}'s sessions ended")
    db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def run_login_script(owner_url: str, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run docker/db-logins.sh as compose's `db-logins` job does: as the owner of ``owner_url``, with
    ``variables`` (INGEST_DB_USER, INGEST_DB_PASSWORD, …) as its only other environment."""
    url = urlsplit(owner_url)
    env = {"PATH": os.environ["PATH"], "PGHOST": url.hostname or "", "PGPORT": str(url.port),
           "PGUSER": unquote(url.username or ""), "PGPASSWORD": unquote(url.password or ""),
           "PGDATABASE": url.path.lstrip("/"), **variables}
    return subprocess.run(["sh", str(LOGIN_SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
