"""The broker logins of a benchmark run with authentication on: one account per process.

The broker binds client ids to logins, so two connections with one login would kick each other:
every ingest worker gets its own account of role ``ingest`` and every publisher connection its own
of role ``gateway`` (it publishes for many devices), plus one for the subscription probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from smartcity.broker.accounts import create_account, revoke_account
from smartcity.broker.roles import Role
from smartcity.broker_url import BrokerAddress

__all__ = ["BenchLogins", "Login", "create_bench_logins", "revoke_bench_logins"]


@dataclass(frozen=True)
class Login:
    """A service account's name and password."""

    username: str
    password: str

    def at(self, broker: BrokerAddress) -> BrokerAddress:
        """Return ``broker`` reached with this login."""
        return broker.with_credentials(self.username, self.password)

    def url(self, broker: BrokerAddress) -> str:
        """Return the ``mqtt://user:password@host:port`` URL of ``broker`` with this login."""
        # The passwords are token_urlsafe, the names [a-z0-9_-]: nothing to quote.
        scheme = "mqtts" if broker.tls else "mqtt"
        return f"{scheme}://{self.username}:{self.password}@{broker.host}:{broker.port}"


@dataclass(frozen=True)
class BenchLogins:
    """The run's accounts: ingest worker N is ``workers[N-1]``, publisher N ``publishers[N-1]``."""

    workers: tuple[Login, ...]
    publishers: tuple[Login, ...]
    probe: Login

    def usernames(self) -> list[str]:
        """Return every account name of the run."""
        return [login.username for login in (*self.workers, *self.publishers, self.probe)]


def create_bench_logins(conn: psycopg.Connection[Any], workers: int, publishers: int,
                        prefix: str = "smartcity-") -> BenchLogins:
    """Create the run's accounts in the registry: ``{prefix}ingest-N``, ``{prefix}bench-pub-N``…

    On the bench's own database the prefix is the platform's (``smartcity-ingest-1`` …); on a
    database that other things use, a run-specific one keeps the run off real accounts.
    """
    def make(name: str, role: Role) -> Login:
        return Login(name, create_account(conn, name, role.value).password)

    return BenchLogins(
        workers=tuple(make(f"{prefix}ingest-{n}", Role.INGEST) for n in range(1, workers + 1)),
        publishers=tuple(make(f"{prefix}bench-pub-{n}", Role.GATEWAY) for n in range(1, publishers + 1)),
        probe=make(f"{prefix}bench-probe", Role.GATEWAY),
    )


def revoke_bench_logins(conn: psycopg.Connection[Any], logins: BenchLogins) -> None:
    """Revoke the run's accounts (on a database that outlives the run)."""
    for username in logins.usernames():
        revoke_account(conn, username)
