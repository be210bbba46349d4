"""The pool's checkout check: a healthy idle connection passes without a round trip, a backend the
server terminated is caught, and the API answers the first request after its connections died."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from api.app import check_pooled_connection
from tests.api.client import TestClient

# The 5 s timeout makes pg_terminate_backend wait until the backend has gone, so the client's
# socket already holds the FATAL message and EOF when the next checkout polls it.
TERMINATE_API_BACKENDS = ("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
                          " WHERE application_name = 'smartcity-api'")


def test_the_first_request_after_the_servers_backends_died_is_answered(
    client: TestClient, db: psycopg.Connection,
) -> None:
    assert client.get("/api/v1/sites").status_code == 200
    row = db.execute(TERMINATE_API_BACKENDS).fetchone()
    assert row is not None and row[0] >= 1  # the pool's connections are gone on the server side

    response = client.get("/api/v1/sites")

    assert response.status_code == 200, response.text


async def _check_after(database_url: str, terminate: bool) -> str:
    """Check a connection whose last statement was a marker; return its last statement afterwards."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT 'marker'")
        with psycopg.connect(database_url, autocommit=True) as admin:
            if terminate:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (conn.info.backend_pid,))
            await check_pooled_connection(conn)
            row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s",
                                (conn.info.backend_pid,)).fetchone()
        assert row is not None
        return str(row[0])


def test_a_healthy_connection_passes_without_a_round_trip(database_url: str) -> None:
    # psycopg_pool's own check sends an empty query: the backend's last statement would change.
    assert asyncio.run(_check_after(database_url, terminate=False)) == "SELECT 'marker'"


def test_a_terminated_backend_is_refused(database_url: str) -> None:
    with pytest.raises(psycopg.OperationalError):
        asyncio.run(_check_after(database_url, terminate=True))
