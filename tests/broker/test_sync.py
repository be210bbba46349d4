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
    assert sync.changes == 1 and reloads.count >= 1
    wait_until(lambda: sync.syncs >= 3, message="safety-net rounds")  # every 0.5 s here
    # One change: a reload, and one more a moment later (a SIGHUP landing during Mosquitto's
    # reload is lost); idle rounds ask for none.
    assert (sync.changes, reloads.count) == (1, 2)


def test_a_missed_notification_is_caught_by_the_safety_net(
        following: tuple[BrokerAuthSync, Reloads], database_url: str) -> None:
    sync, reloads = following
    with psycopg.connect(database_url, autocommit=True) as quiet:
        # Triggers off for this session only: the registration notifies nobody.
        quiet.execute("SET session_replication_role = replica")
        register_device(quiet, "bin-sync-01", "waste_bin", "kuaro")
    wait_until(lambda: _listed(sync, "bin-sync-01"), message="device rendered by the periodic sync")
    assert sync.changes == 2
    # A reload per change and one more after the last (a follow-up still pending merges into it).
    wait_until(lambda: reloads.count >= 3, message="a reload per change, one more after the last")


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
    assert sync.changes == 2
    # A reload per change and one more after the last (a follow-up still pending merges into it).
    wait_until(lambda: reloads.count >= 3, message="a reload per change, one more after the last")


def test_a_change_committed_while_a_render_runs_is_rendered_at_once(
        database_url: str, db: psycopg.Connection, tmp_path: Path) -> None:
    # The safety net is far away (60 s): only the notification can bring the second device in time.
    reloads = Reloads()
    sync = BrokerAuthSync(database_url, tmp_path / "auth", reloads, interval=60, retry_s=0.1)
    sync.start()
    try:
        assert sync.wait_listening(10)
        with psycopg.connect(database_url) as holder:
            # The render reads devices, then accounts: holding the accounts table stops a render
            # between the two, with the first device read and the sync's statement running.
            holder.execute("LOCK TABLE broker_accounts IN ACCESS EXCLUSIVE MODE")
            register_device(db, "bin-race-01", "waste_bin", "kuaro")
            wait_until(lambda: db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'smartcity-broker-sync'"
                " AND wait_event_type = 'Lock'").fetchone()[0] > 0, message="a render waiting on the lock")
            # Committed while the sync's statement runs: its notification must still wake the
            # sync (psycopg keeps it for the next notifies()).
            register_device(db, "bin-race-02", "waste_bin", "kuaro")
            holder.rollback()
        wait_until(lambda: _listed(sync, "bin-race-02"), timeout=5,
                   message="the device committed during a render, rendered by the next sync")
        assert _listed(sync, "bin-race-01")
    finally:
        sync.stop()
