"""serve_broker_auth: a broker's logins rendered before it starts, then kept in step, and no longer
once the block ends; refused for a broker without auth or a database out of reach."""

from __future__ import annotations

import threading

import psycopg
import pytest

from smartcity.broker.accounts import create_account, revoke_account
from smartcity.broker.authfiles import PASSWORD_FILE, read_auth_files
from smartcity.broker.serve import serve_broker_auth
from smartcity.broker_url import BrokerAddress
from smartcity.services import EmbeddedMosquitto, free_port
from tests.logins import connack, wait_accepted
from tests.services import scratch_dir, wait_until

NOT_AUTHORIZED = 0x87


def _login(broker: EmbeddedMosquitto, username: str, password: str) -> BrokerAddress:
    return BrokerAddress("127.0.0.1", broker.port, username, password)


def _refused(address: BrokerAddress) -> bool:
    reason = connack(address)
    return reason is not None and reason == NOT_AUTHORIZED


def _sync_threads() -> int:
    return sum(t.name == "broker-auth-sync" for t in threading.enumerate())


def test_the_broker_starts_with_the_registrys_logins_and_follows_it_until_the_block_ends(
        database_url: str, db: psycopg.Connection) -> None:
    before = create_account(db, "smartcity-ingest-serve", "ingest")
    threads = _sync_threads()  # the session broker's sync may be running
    with scratch_dir("smartcity-serve-") as directory:
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=directory / "auth")
        try:
            with serve_broker_auth(database_url, broker) as sync:
                # Rendered on entry: the broker can start at once and lets the account in.
                files = read_auth_files(directory / "auth")
                assert files is not None and files.passwords.startswith(f"{before.username}:$7$")
                broker.start()
                wait_accepted(_login(broker, before.username, before.password))
                # Followed: a new account is let in, a revoked one refused, with no restart.
                during = create_account(db, "smartcity-api-serve", "api")
                wait_accepted(_login(broker, during.username, during.password))
                revoke_account(db, before.username)
                wait_until(lambda: _refused(_login(broker, before.username, before.password)),
                           message="revoked account refused")
                assert sync.changes >= 2
            assert _sync_threads() == threads
            # Ended: the registry changes, the files and the broker do not.
            text = (directory / "auth" / PASSWORD_FILE).read_text()
            after = create_account(db, "smartcity-gateway-serve", "gateway")
            assert connack(_login(broker, after.username, after.password)) == NOT_AUTHORIZED
            assert (directory / "auth" / PASSWORD_FILE).read_text() == text
            assert not connack(_login(broker, during.username, during.password)).is_failure
        finally:
            broker.stop()


def test_a_broker_without_auth_is_refused_and_nothing_is_written(database_url: str) -> None:
    threads = _sync_threads()
    with scratch_dir("smartcity-serve-") as directory:
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port())
        with pytest.raises(ValueError, match="anonymous clients.*auth=DIR"), \
                serve_broker_auth(database_url, broker):
            pass
        assert not (directory / "auth").exists() and _sync_threads() == threads


def test_a_database_out_of_reach_is_an_error_before_the_broker_starts() -> None:
    threads = _sync_threads()
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1"
    with scratch_dir("smartcity-serve-") as directory:
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=directory / "auth")
        with pytest.raises(psycopg.OperationalError), serve_broker_auth(nowhere, broker):
            pass
        assert not broker.is_running() and _sync_threads() == threads
        assert read_auth_files(directory / "auth") is None
