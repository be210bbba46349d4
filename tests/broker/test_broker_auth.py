"""What a device, a service and a stranger can do at a real Mosquitto run from the registry.

Each test gets devices A and B and one service account per role (tests/broker/conftest.py), a
broker reading the files rendered from them, and the LISTEN/NOTIFY sync following the registry.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from ingest.pipeline import IngestWorker
from smartcity.broker.accounts import revoke_device
from smartcity.broker_url import BrokerAddress
from smartcity.cli import main
from smartcity.contract import alert_topic, commands_topic, status_topic, telemetry_topic
from smartcity.devices import register_device
from smartcity.settings import IngestSettings
from tests.broker.conftest import (
    ALERTS,
    API,
    DEVICE_A,
    DEVICE_B,
    GATEWAY,
    INGEST,
    MONITOR,
    SecuredPlatform,
    Session,
    open_session,
)
from tests.mqtt import TelemetryStream
from tests.services import wait_until

log = logging.getLogger(__name__)

NOT_AUTHORIZED = 0x87
HOUR_AGO = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def _login(platform: SecuredPlatform, username: str, **kwargs: object) -> Session:
    session = open_session(platform.broker.port, username, platform.passwords[username], **kwargs)  # type: ignore[arg-type]
    assert not session.connack[0].is_failure, (username, session.connack)
    return session


def _accepted(reason: object) -> bool:
    """Tell whether a PUBACK accepted the message (Success, or No matching subscribers)."""
    return not reason.is_failure  # type: ignore[attr-defined]


def _reading(value: float, minutes: int = 0) -> bytes:
    ts = (HOUR_AGO + timedelta(minutes=minutes)).isoformat()
    return b'{"ts": "%s", "metrics": {"water_level": %.2f}}' % (ts.encode(), value)


def _stored(db: psycopg.Connection, device_id: str) -> int:
    return int(db.execute(
        "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device WHERE d.device_id = %s",
        (device_id,)).fetchone()[0])


def _ingest_worker(platform: SecuredPlatform, database_url: str) -> IngestWorker:
    address = BrokerAddress("127.0.0.1", platform.broker.port, username=INGEST,
                            password=platform.passwords[INGEST])
    settings = IngestSettings(client_id=INGEST, share_group=f"g{uuid.uuid4().hex[:6]}",
                              batch_max_age_ms=20)
    worker = IngestWorker(database_url, address, settings)
    worker.start()
    wait_until(lambda: worker.subscriber.connected, message="ingest worker connected")
    return worker


def test_a_device_cannot_publish_as_another_and_nothing_is_stored_for_it(
        secured: SecuredPlatform, database_url: str, db: psycopg.Connection) -> None:
    worker = _ingest_worker(secured, database_url)
    device = _login(secured, DEVICE_A)
    try:
        assert device.publish(telemetry_topic(DEVICE_B), _reading(9.9)) == NOT_AUTHORIZED
        assert _accepted(device.publish(telemetry_topic(DEVICE_A), _reading(1.5)))
        # A's own reading, sent after the forged one, is the barrier: once it is stored, the
        # forged one would have been too.
        wait_until(lambda: _stored(db, DEVICE_A) == 1, message="A's own reading stored")
        assert _stored(db, DEVICE_B) == 0
        assert db.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
    finally:
        device.close()
        worker.stop()


def test_a_device_cannot_command_speak_for_another_or_raise_alerts(secured: SecuredPlatform) -> None:
    device = _login(secured, DEVICE_A)
    try:
        refused = {topic: device.publish(topic, b"x") for topic in (
            commands_topic(DEVICE_A), commands_topic(DEVICE_B), status_topic(DEVICE_B),
            alert_topic("tanah-grogot", "flood"), "smartcity/v1/devices/river-auth-b/other",
            "$SYS/broker/fake")}
        assert refused == dict.fromkeys(refused, NOT_AUTHORIZED)
        # Its own status (retained, as its Last Will would be) is allowed.
        assert _accepted(device.publish(status_topic(DEVICE_A), b"online", retain=True))
        assert _accepted(device.publish(status_topic(DEVICE_A), b"", retain=True))
    finally:
        device.close()


def test_each_service_role_has_its_rights_and_no_more(secured: SecuredPlatform) -> None:
    api, gateway, ingest, alerts = (_login(secured, name) for name in (API, GATEWAY, INGEST, ALERTS))
    try:
        assert _accepted(api.publish(commands_topic(DEVICE_A), b'{"action": "off"}'))
        assert api.publish(alert_topic("kuaro", "haze"), b"{}") == NOT_AUTHORIZED
        assert api.publish(telemetry_topic(DEVICE_A), _reading(1)) == NOT_AUTHORIZED
        assert _accepted(alerts.publish(alert_topic("kuaro", "haze"), b"{}"))
        assert alerts.publish(commands_topic(DEVICE_A), b"{}") == NOT_AUTHORIZED
        assert alerts.publish(telemetry_topic(DEVICE_A), _reading(1)) == NOT_AUTHORIZED
        assert _accepted(gateway.publish(telemetry_topic(DEVICE_B), _reading(1)))
        assert gateway.publish(commands_topic(DEVICE_B), b"{}") == NOT_AUTHORIZED
        assert ingest.publish(telemetry_topic(DEVICE_A), _reading(1)) == NOT_AUTHORIZED
    finally:
        for session in (api, gateway, ingest, alerts):
            session.close()


def test_no_anonymous_clients_no_wrong_password_no_strangers(secured: SecuredPlatform) -> None:
    port = secured.broker.port
    for username, password in ((None, None), (DEVICE_A, "wrong"), ("nobody-01", "x"),
                               (INGEST, secured.passwords[API])):
        session = open_session(port, username, password)
        assert session.connack[0] == NOT_AUTHORIZED, (username, session.connack)
        session.close()


def test_subscribing_to_everything_as_a_device_receives_only_its_own(secured: SecuredPlatform) -> None:
    spy, other, api, alerts = (_login(secured, name) for name in (DEVICE_A, DEVICE_B, API, ALERTS))
    try:
        spy.subscribe("#")  # granted (acl_file never refuses SUBSCRIBE); delivery is filtered
        spy.subscribe(commands_topic(DEVICE_B))
        assert _accepted(other.publish(telemetry_topic(DEVICE_B), _reading(2)))
        assert _accepted(other.publish(status_topic(DEVICE_B), b"online", retain=True))
        assert _accepted(api.publish(commands_topic(DEVICE_B), b'{"action": "on"}'))
        assert _accepted(alerts.publish(alert_topic("tanah-grogot", "flood"), b"{}"))
        # The barrier: a message A must get, sent last. Everything above reached the broker first.
        assert _accepted(api.publish(commands_topic(DEVICE_A), b'{"action": "off"}'))
        wait_until(lambda: commands_topic(DEVICE_A) in spy.topics(), message="A's own command")
        assert spy.topics() == [commands_topic(DEVICE_A)]
        assert _accepted(other.publish(status_topic(DEVICE_B), b"", retain=True))
    finally:
        for session in (spy, other, api, alerts):
            session.close()


def _takeover(platform: SecuredPlatform, username: str) -> Session:
    """Connect as ``username`` asking for the ingest worker's client id and its session."""
    return open_session(platform.broker.port, username, platform.passwords[username],
                        client_id=INGEST, clean_start=False)


@pytest.mark.slow
def test_no_other_account_gets_the_ingest_session_and_nothing_is_lost(
        secured: SecuredPlatform, database_url: str, db: psycopg.Connection) -> None:
    worker = _ingest_worker(secured, database_url)
    sessions_before = worker.subscriber.session
    gateway = BrokerAddress("127.0.0.1", secured.broker.port, GATEWAY, secured.passwords[GATEWAY])
    stream = TelemetryStream(gateway, [DEVICE_A, DEVICE_B], 1500, rate=500,
                             client_id="ignored-bound-to-login")
    intruders = [DEVICE_B, MONITOR, API, DEVICE_A]
    try:
        stream.start()
        for n in range(10):
            name = intruders[n % len(intruders)]
            intruder = _takeover(secured, name)
            assert not intruder.connack[0].is_failure
            # Bound to its login, it gets a session of its own (found again on its second visit),
            # never the worker's.
            assert intruder.session_present == [n >= len(intruders)]
            # Hold the id while the stream sends 75 more readings (0.15 s at 500/s).
            target = min(1500, stream.sent + 75)
            wait_until(lambda t=target: stream.sent >= t, timeout=10, message="stream moved on")
            intruder.close()
            assert not intruder.messages, (name, intruder.topics()[:3])
        # The ingest login itself with a guessed password.
        stranger = open_session(secured.broker.port, INGEST, "guess", client_id=INGEST)
        assert stranger.connack[0] == NOT_AUTHORIZED
        stranger.close()
        stream.finish(timeout=60)
        wait_until(lambda: _stored(db, DEVICE_A) + _stored(db, DEVICE_B) == 1500, timeout=60,
                   interval=0.2, message="all 1,500 PUBACKed readings stored")
        assert worker.subscriber.session == sessions_before  # never kicked off its session
    finally:
        worker.stop()


def _revoke_and_time(platform: SecuredPlatform, db: psycopg.Connection, device_id: str,
                     revoke: object) -> float:
    device = _login(platform, device_id)
    try:
        started = time.monotonic()
        revoke()  # type: ignore[operator]
        wait_until(lambda: device.disconnects, timeout=10, message=f"{device_id} disconnected")
        took = device.disconnects[0][0] - started
        again = open_session(platform.broker.port, device_id, platform.passwords[device_id])
        assert again.connack[0] == NOT_AUTHORIZED
        again.close()
        return took
    finally:
        device.close()


def test_revoking_a_device_disconnects_it_and_refuses_it(
        secured: SecuredPlatform, database_url: str, db: psycopg.Connection) -> None:
    took = _revoke_and_time(secured, db, DEVICE_A, lambda: revoke_device(db, DEVICE_A))
    log.warning("revoke_device → broker disconnect: %.1f ms (LISTEN/NOTIFY sync + SIGHUP)", took * 1000)
    runner = CliRunner()
    result: list[object] = []

    def by_cli() -> None:
        root = logging.getLogger()
        handlers, level = root.handlers[:], root.level  # the CLI configures logging afresh
        try:
            result.append(runner.invoke(main, ["devices", "revoke", DEVICE_B, "--json"],
                                        env={"SMARTCITY_DATABASE_URL": database_url},
                                        catch_exceptions=False))
        finally:
            root.handlers[:], root.level = handlers, level

    took_cli = _revoke_and_time(secured, db, DEVICE_B, by_cli)
    log.warning("smartcity devices revoke → broker disconnect: %.1f ms", took_cli * 1000)
    assert result[0].exit_code == 0, result[0].output  # type: ignore[attr-defined]
    assert orjson.loads(result[0].stdout)["device_id"] == DEVICE_B  # type: ignore[attr-defined]
    assert took < 5 and took_cli < 5
    # The revoked devices keep their rows and their ids stay taken.
    assert db.execute("SELECT count(*) FROM devices WHERE revoked_at IS NOT NULL").fetchone() == (2,)


def test_tls_listener_takes_clients_with_the_ca_and_binds_client_ids(secured: SecuredPlatform) -> None:
    assert secured.broker.tls is not None
    port = secured.broker.tls.port
    first = open_session(port, DEVICE_A, secured.passwords[DEVICE_A], client_id="a-1", tls=secured.tls)
    assert not first.connack[0].is_failure
    assert _accepted(first.publish(telemetry_topic(DEVICE_A), _reading(3)))
    assert first.publish(telemetry_topic(DEVICE_B), _reading(3)) == NOT_AUTHORIZED
    # Another connection with the same login, asking for another id, is the same client to the
    # broker: the first connection is taken over (use_username_as_clientid on this listener too).
    second = open_session(port, DEVICE_A, secured.passwords[DEVICE_A], client_id="a-2", tls=secured.tls)
    wait_until(lambda: first.disconnects, message="first connection taken over")
    second.close()
    first.close()
    wrong = open_session(port, DEVICE_A, "wrong", tls=secured.tls)
    assert wrong.connack[0] == NOT_AUTHORIZED
    wrong.close()


def test_a_plaintext_client_on_the_tls_port_fails(secured: SecuredPlatform) -> None:
    assert secured.broker.tls is not None
    # An MQTT CONNECT in clear text: the TLS listener never answers with a CONNACK.
    connect = bytes([0x10, 0x10, 0x00, 0x04]) + b"MQTT" + bytes([0x05, 0x02, 0x00, 0x3C, 0x00,
                                                                   0x00, 0x03]) + b"abc"
    with socket.create_connection(("127.0.0.1", secured.broker.tls.port), timeout=5) as sock:
        sock.sendall(connect)
        try:
            answer = sock.recv(4)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20"), answer  # 0x20: CONNACK
    session = open_session(secured.broker.tls.port, DEVICE_A, secured.passwords[DEVICE_A], wait=False)
    try:
        wait_until(lambda: session.disconnects or session.connack, timeout=10, message="an answer")
        assert not session.connack or session.connack[0].is_failure
    finally:
        session.close()


def test_a_reload_keeps_the_broker_and_its_persistent_sessions(
        secured: SecuredPlatform, db: psycopg.Connection) -> None:
    pid = secured.broker.pid
    ingest = open_session(secured.broker.port, INGEST, secured.passwords[INGEST], clean_start=False)
    ingest.subscribe("smartcity/v1/devices/+/telemetry")
    ingest.close()
    changes = secured.sync.changes
    register_device(db, "river-auth-c", "river_level_sensor", "kuaro")  # rewrite + SIGHUP
    wait_until(lambda: secured.sync.changes > changes, message="files rewritten")
    device = _login(secured, DEVICE_A)
    assert _accepted(device.publish(telemetry_topic(DEVICE_A), _reading(4)))
    device.close()
    back = open_session(secured.broker.port, INGEST, secured.passwords[INGEST], clean_start=False)
    try:
        assert back.session_present == [True]
        wait_until(lambda: back.topics() == [telemetry_topic(DEVICE_A)], message="queued reading delivered")
        assert secured.broker.is_running() and secured.broker.pid == pid
    finally:
        back.close()
