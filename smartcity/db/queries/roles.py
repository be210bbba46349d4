"""SQL of the service logins: LOGIN roles that are members of the group roles of migrations 011/012.

Role names and passwords cannot be bound parameters (CREATE/ALTER ROLE are utility statements), so
they are composed with ``psycopg.sql``: names as identifiers, the password as a literal, and that
literal is the password's SCRAM verifier computed by libpq, never the password itself.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

__all__ = ["ROLE_EXISTS", "alter_login", "create_login", "grant_group"]

# (role name,) → (1,) when the role exists, else no row.
ROLE_EXISTS: Final = "SELECT 1 FROM pg_roles WHERE rolname = %s"


def create_login(login: str) -> sql.Composed:
    """Return CREATE ROLE for a new login (its attributes and password come from ``alter_login``)."""
    return sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login))


def alter_login(login: str, verifier: str) -> sql.Composed:
    """Return ALTER ROLE making ``login`` a plain login with the password ``verifier`` stands for.

    Whatever the role was before, it becomes one that can only do what its groups can: no
    superuser, no role or database creation, no replication, no row-security bypass.
    """
    return sql.SQL(
        "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        " INHERIT PASSWORD {}"
    ).format(sql.Identifier(login), sql.Literal(verifier))


def grant_group(group: str, login: str) -> sql.Composed:
    """Return GRANT making ``login`` a member of the group role ``group``."""
    return sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login))
