"""Fixtures: a real PostgreSQL + TimescaleDB cluster and a real Mosquitto, on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from ingest.pipeline import IngestWorker
from smartcity.apikeys import Scope, create_key
from smartcity.db import apply_migrations, seed_catalog
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, free_port
from smartcity.settings import IngestSettings
from tests.ingest.processes import running_worker
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
def worker(database_url: str, mosquitto: EmbeddedMosquitto) -> Iterator[IngestWorker]:
    """A running ingest worker (in this process) with a session and share group of its own."""
    tag = uuid.uuid4().hex[:8]
    settings = IngestSettings(client_id=f"test-ingest-{tag}", share_group=f"g{tag}",
                              batch_max_age_ms=20)
    with running_worker(database_url, mosquitto.url, settings) as worker:
        yield worker


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[EmbeddedMosquitto]:
    """A private Mosquitto broker, persistence on, shared by the session's tests."""
    with scratch_dir("smartcity-mqtt-") as directory:
        broker = EmbeddedMosquitto(directory, free_port())
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture
def fresh_mosquitto() -> Iterator[EmbeddedMosquitto]:
    """A broker of the test's own, for tests that stop and restart it."""
    with scratch_dir("smartcity-mqtt-") as directory:
        broker = EmbeddedMosquitto(directory, free_port())
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
