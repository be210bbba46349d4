"""Fixtures: a real PostgreSQL + TimescaleDB cluster and a real Mosquitto, on free ports.

The brokers run with authentication as the platform runs them: logins and ACLs rendered from the
registry, kept in step by ``serve_broker_auth``. Tests get their logins from ``broker_login``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

import smartcity.broker.sync as broker_sync
from ingest.pipeline import IngestWorker
from smartcity.apikeys import Scope, create_key
from smartcity.broker.serve import serve_broker_auth
from smartcity.broker_url import BrokerAddress
from smartcity.db import apply_migrations, seed_catalog
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, free_port
from tests.ingest.processes import ingest_settings, running_worker
from tests.logins import BrokerLogins
from tests.services import DATA_TABLES, scratch_dir


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    """A private cluster with timescaledb preloaded, migrated and seeded once per session."""
    with scratch_dir("smartcity-pg-") as directory:
        server = EmbeddedPostgres(directory / "postgres", free_port())
        server.start()
        try:
            with psycopg.connect(server.url) as conn:
                apply_migrations(conn)
                seed_catalog(conn)
            yield server
        finally:
            server.stop("immediate")


@pytest.fixture
def database_url(postgres: EmbeddedPostgres) -> str:
    """The URL of a database whose data tables are empty at the start of the test."""
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
    return postgres.url


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the clean test database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def admin_key(database_url: str) -> str:
    """A fresh admin API key (the tables are emptied per test, keys included)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return create_key(conn, Scope.ADMIN, "tests").key


@pytest.fixture
def admin_headers(admin_key: str) -> dict[str, str]:
    """Request headers that carry ``admin_key``."""
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture
def broker_login(database_url: str, db: psycopg.Connection, request: pytest.FixtureRequest) -> BrokerLogins:
    """Logins for this test: ``broker_login("ingest")`` → a fresh service account's address at the
    session broker (or ``broker_login(role, fresh_mosquitto)``), returned once the broker accepts it;
    ``broker_login.device(id, password)`` for a registered device, ``broker_login.fleet(specs)`` to
    register simulated devices with credentials of their own. The next test's clean tables revoke
    them all."""
    return BrokerLogins(database_url, db, lambda: request.getfixturevalue("mosquitto"))


@pytest.fixture
def gateway(broker_login: BrokerLogins) -> BrokerAddress:
    """A ``gateway`` login at the session broker: publishes telemetry and status for any device."""
    return broker_login("gateway")


@pytest.fixture
def worker(database_url: str, broker_login: BrokerLogins) -> Iterator[IngestWorker]:
    """A running ingest worker (in this process) with an ``ingest`` account, so a session and
    client id, of its own and a share group of its own."""
    address = broker_login("ingest")
    with running_worker(database_url, address, ingest_settings(address, batch_max_age_ms=20)) as worker:
        yield worker


class _RoutineSyncLines(logging.Filter):
    """Drop the routine lines ("files rewritten") of one fixture broker's sync; warnings pass.

    The sync runs in this process for the whole session and renders after every test's registry
    changes, so without this its lines land in whatever captures logs at that moment: a CLI test's
    output (the CLI logs to the stderr CliRunner captures) most of all.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or self.directory not in (record.args or ())


@contextmanager
def _authenticated_broker(postgres: EmbeddedPostgres) -> Iterator[EmbeddedMosquitto]:
    """A private broker with persistence on that takes only the registry's logins."""
    with scratch_dir("smartcity-mqtt-") as directory:
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=directory / "auth")
        assert broker.auth is not None
        with _quiet_routine_lines(broker.auth), serve_broker_auth(postgres.url, broker):
            broker.start()
            try:
                yield broker
            finally:
                broker.stop()


@contextmanager
def _quiet_routine_lines(directory: Path) -> Iterator[None]:
    logger, quiet = logging.getLogger(broker_sync.__name__), _RoutineSyncLines(directory)
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


@pytest.fixture(scope="session")
def mosquitto(postgres: EmbeddedPostgres) -> Iterator[EmbeddedMosquitto]:
    """The session's broker, with authentication, shared by the session's tests."""
    with _authenticated_broker(postgres) as broker:
        yield broker


@pytest.fixture
def fresh_mosquitto(postgres: EmbeddedPostgres) -> Iterator[EmbeddedMosquitto]:
    """A broker with authentication of the test's own, for tests that stop and restart it."""
    with _authenticated_broker(postgres) as broker:
        yield broker


@pytest.fixture
def anonymous_mosquitto() -> Iterator[EmbeddedMosquitto]:
    """A broker that takes anonymous clients, for tests about the platform without authentication."""
    with scratch_dir("smartcity-mqtt-anon-") as directory:
        broker = EmbeddedMosquitto(directory, free_port())
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
