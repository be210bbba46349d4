"""BrokerAuthSync on its own: it follows notifications, catches up on a missed one, survives the
database dropping its connection, and reloads only when the files changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from smartcity.broker.authfiles import PASSWORD_FILE
from smartcity.broker.sync import BrokerAuthSync
from smartcity.devices import register_device
from tests.services import wait_until


class Reloads:
    """Counts the reloads the sync asks for (it would SIGHUP the broker)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def following(database_url: str, tmp_path: Path) -> Iterator[tuple[BrokerAuthSync, Reloads]]:
    reloads = Reloads()
    sync = BrokerAuthSync(database_url, tmp_path / "auth", reloads, interval=0.5, retry_s=0.1)
    sync.start()
    try:
        assert sync.wait_listening(10)
        yield sync, reloads
    finally:
        sync.stop()


def _listed(sync: BrokerAuthSync, device_id: str) -> bool:
    return f"{device_id}:" in (sync.directory / PASSWORD_FILE).read_text()


def test_the_first_render_reloads_and_idle_rounds_do_not(
        following: tuple[BrokerAuthSync, Reloads]) -> None:
    sync, reloads = following
    assert (sync.changes, reloads.count) == (1, 1)
    wait_until(lambda: sync.syncs >= 3, message="safety-net rounds")  # every 0.5 s here
    assert (sync.changes, reloads.count) == (1, 1)


def test_a_missed_notification_is_caught_by_the_safety_net(
        following: tuple[BrokerAuthSync, Reloads], database_url: str) -> None:
    sync, reloads = following
    with psycopg.connect(database_url, autocommit=True) as quiet:
        # Triggers off for this session only: the registration notifies nobody.
        quiet.execute("SET session_replication_role = replica")
        register_device(quiet, "bin-sync-01", "waste_bin", "kuaro")
    wait_until(lambda: _listed(sync, "bin-sync-01"), message="device rendered by the periodic sync")
    assert reloads.count == 2


def test_the_sync_reconnects_when_the_database_drops_it(
        following: tuple[BrokerAuthSync, Reloads], db: psycopg.Connection) -> None:
    sync, reloads = following
    # Every sync's connection, the session broker's included (it follows the same database).
    dropped = db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE application_name = 'smartcity-broker-sync'").fetchall()
    assert dropped and all(ok for (ok,) in dropped)
    wait_until(lambda: db.execute("SELECT count(*) FROM pg_stat_activity"
                                  " WHERE application_name = 'smartcity-broker-sync'").fetchone()
               == (len(dropped),), message="every sync connected again")
    register_device(db, "bin-sync-02", "waste_bin", "kuaro")
    wait_until(lambda: _listed(sync, "bin-sync-02"), message="device rendered after the reconnect")
    assert reloads.count == 2
