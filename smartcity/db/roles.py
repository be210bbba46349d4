"""The services' database logins: LOGIN roles in the group roles smartcity_ingest, smartcity_api and
smartcity_alerts.

Migrations 012 and 014 make the NOLOGIN group roles and their grants; a deployment logs in through roles
of its own that are members. ``smartcity up`` makes those for the embedded cluster on every start
with fresh random passwords, kept in files (mode 0600) beside the cluster's own password, and hands
the children their URLs; compose does the same with docker/db-logins.sh (README "Database roles").
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg

from smartcity.db.connect import connect
from smartcity.db.queries import roles as role_sql

__all__ = ["GROUP_ROLES", "LOGIN_ROLES", "Service", "ServiceLogin", "ensure_login", "login_url",
           "set_up_service_logins"]

Service = Literal["ingest", "api", "alerts"]

# The group role each service's login is a member of (migrations 012, 014), and the login's name.
GROUP_ROLES: Final[dict[Service, str]] = {"ingest": "smartcity_ingest", "api": "smartcity_api",
                                          "alerts": "smartcity_alerts"}
LOGIN_ROLES: Final[dict[Service, str]] = {"ingest": "smartcity_ingest_login", "api": "smartcity_api_login",
                                          "alerts": "smartcity_alerts_login"}


@dataclass(frozen=True)
class ServiceLogin:
    """A service's login: its role, the file its password is kept in, and the URL to connect with."""

    service: Service
    login: str
    group: str
    password_file: Path
    url: str


def ensure_login(conn: psycopg.Connection[Any], login: str, group: str, password: str) -> None:
    """Create ``login`` if missing and make it a plain member of ``group`` with ``password``.

    The password reaches the server as the SCRAM (or md5, per the server's password_encryption)
    verifier libpq computes, so it appears in no statement text or server log.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), login.encode()).decode()
    with conn.transaction():
        if conn.execute(role_sql.ROLE_EXISTS, (login,)).fetchone() is None:
            conn.execute(role_sql.create_login(login))
        conn.execute(role_sql.alter_login(login, verifier))
        conn.execute(role_sql.grant_group(group, login))


def login_url(url: str, login: str, password: str) -> str:
    """Return ``url`` with its user and password replaced by ``login`` and ``password``."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = f"{quote(login, safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def _write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, whatever mode the file had."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to new files only
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")


def set_up_service_logins(owner_url: str, directory: Path) -> dict[Service, ServiceLogin]:
    """Give each service a login with a new random password; return where each connects.

    Run by the database owner after the migrations (the group roles must exist) on every start,
    so a password copied out of ``directory`` stops working at the next one. The passwords are
    kept in ``directory/<login>.password`` (mode 0600), for an operator's psql session.
    """
    logins: dict[Service, ServiceLogin] = {}
    with connect(owner_url, purpose="setup", autocommit=True) as conn:
        for service, group in GROUP_ROLES.items():
            login = LOGIN_ROLES[service]
            password = secrets.token_urlsafe(24)
            ensure_login(conn, login, group, password)
            password_file = directory / f"{login}.password"
            _write_secret(password_file, password)
            logins[service] = ServiceLogin(service, login, group, password_file,
                                           login_url(owner_url, login, password))
    return logins
