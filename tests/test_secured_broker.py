"""Every client against a real Mosquitto that wants a login (password file, no anonymous access),
and against one that also speaks only TLS with a CA made for the test: ingest, the API's broker
client, the simulated fleet and the bench's raw publisher."""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from api import create_app
from ingest.pipeline import IngestWorker
from simulators.fleet import build_fleet
from simulators.publish import FleetPublisher
from smartcity.bench.wire import RawPublisher, encode_publish
from smartcity.broker_url import BrokerAddress, apply_address, parse_broker_url
from smartcity.contract import status_topic, telemetry_topic
from smartcity.devices import register_device
from smartcity.services import free_port
from smartcity.settings import IngestSettings, Settings
from tests.api.client import TestClient
from tests.services import SecuredMosquitto, TlsFiles, make_tls_files, scratch_dir, wait_until

# A password that only survives the URL when percent-encoded (@ : / % and a space).
INGEST_USER, INGEST_PASSWORD = "ingest", "p@ss:w/rd% 1"
DEVICE_USER, DEVICE_PASSWORD = "river-login-01", "device-own-secret"
USERS = {INGEST_USER: INGEST_PASSWORD, DEVICE_USER: DEVICE_PASSWORD}
HOUR_AGO = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


@pytest.fixture(scope="module")
def tls_files() -> Iterator[TlsFiles]:
    with scratch_dir("smartcity-tls-") as directory:
        yield make_tls_files(directory / "tls")


@pytest.fixture(scope="module")
def login_broker() -> Iterator[SecuredMosquitto]:
    """Mosquitto with ``allow_anonymous false`` and a password file."""
    with scratch_dir("smartcity-mqtt-login-") as directory:
        broker = SecuredMosquitto(directory, free_port(), USERS)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


@pytest.fixture(scope="module")
def tls_broker(tls_files: TlsFiles) -> Iterator[SecuredMosquitto]:
    """The same, listening with TLS only (certificate signed by the test's CA)."""
    with scratch_dir("smartcity-mqtt-tls-") as directory:
        broker = SecuredMosquitto(directory, free_port(), USERS, tls=tls_files)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


@contextmanager
def logged_in_client(address: BrokerAddress) -> Iterator[mqtt.Client]:
    """Yield a connected paho v5 client that logged in with ``address``'s credentials."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, address)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        wait_until(client.is_connected, message="test client connected")
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def running_worker(database_url: str, address: BrokerAddress) -> Iterator[IngestWorker]:
    tag = uuid.uuid4().hex[:8]
    worker = IngestWorker(database_url, address,
                          IngestSettings(client_id=f"test-login-{tag}", batch_max_age_ms=20))
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def _stored_pm25(db: psycopg.Connection, device_id: str) -> list[float]:
    return [row[0] for row in db.execute(
        "SELECT r.value FROM readings r JOIN devices d ON d.id = r.device"
        " JOIN metrics m ON m.metric_id = r.metric WHERE d.device_id = %s AND m.name = 'pm25'",
        (device_id,),
    ).fetchall()]


def _publish_pm25(address: BrokerAddress, device_id: str, value: float) -> None:
    with logged_in_client(address) as client:
        payload = b'{"ts": "%s", "metrics": {"pm25": %.1f}}' % (HOUR_AGO.isoformat().encode(), value)
        client.publish(telemetry_topic(device_id), payload, qos=1).wait_for_publish(timeout=5)


def test_ingest_logs_in_with_the_url_credentials_and_stores(
        database_url: str, db: psycopg.Connection, login_broker: SecuredMosquitto) -> None:
    register_device(db, "aq-login-01", "air_quality_station", "kuaro")
    address = parse_broker_url(login_broker.login_url(INGEST_USER, INGEST_PASSWORD))
    assert address.password == INGEST_PASSWORD  # decoded from p%40ss%3Aw%2Frd%25%201
    with running_worker(database_url, address) as worker:
        wait_until(lambda: worker.subscriber.connected, message="worker connected")
        _publish_pm25(address, "aq-login-01", 12.5)
        wait_until(lambda: _stored_pm25(db, "aq-login-01") == [12.5], message="reading stored")
        assert worker.subscriber.refused == 0


def test_ingest_with_a_wrong_password_is_refused_and_says_so(
        database_url: str, login_broker: SecuredMosquitto, caplog: pytest.LogCaptureFixture) -> None:
    address = parse_broker_url(login_broker.login_url(INGEST_USER, "wrong-password"))
    with caplog.at_level(logging.ERROR, logger="ingest.subscribe"), \
            running_worker(database_url, address) as worker:
        wait_until(lambda: worker.subscriber.refused >= 1, message="connection refused")
        assert not worker.subscriber.connected
    refusals = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
    assert refusals and "Not authorized" in refusals[0] and "SMARTCITY_MQTT_URL" in refusals[0]
    assert "wrong-password" not in caplog.text  # the log names the broker, never the password
    assert f"mqtt://{INGEST_USER}:***@127.0.0.1:{login_broker.port}" in refusals[0]


def test_ingest_without_credentials_is_refused(
        database_url: str, login_broker: SecuredMosquitto) -> None:
    with running_worker(database_url, BrokerAddress("127.0.0.1", login_broker.port)) as worker:
        wait_until(lambda: worker.subscriber.refused >= 1, message="anonymous connection refused")
        assert not worker.subscriber.connected


def test_api_broker_health_is_ok_with_the_right_login(
        database_url: str, login_broker: SecuredMosquitto) -> None:
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        mqtt_url=login_broker.login_url(INGEST_USER, INGEST_PASSWORD))
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/api/v1/health").status_code == 200, message="healthy")
        assert client.get("/api/v1/health").json() == {"status": "ok", "database": "ok", "broker": "ok"}


def test_api_broker_health_reports_a_refused_login(
        database_url: str, login_broker: SecuredMosquitto, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        mqtt_url=login_broker.login_url(INGEST_USER, "wrong"))
    with caplog.at_level(logging.ERROR, logger="api.broker"), TestClient(create_app(settings)) as client:
        wait_until(lambda: "refused the connection" in caplog.text, message="refusal logged")
        response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json()["broker"] == "error" and response.json()["database"] == "ok"
    assert "Not authorized" in caplog.text and "wrong" not in caplog.text


def test_simulated_devices_log_in_as_themselves_or_with_the_url(
        login_broker: SecuredMosquitto) -> None:
    own, shared = (replace(spec, device_id=f"sim-login-{n}-{uuid.uuid4().hex[:4]}")
                   for n, spec in enumerate(build_fleet(2, seed=4)))
    own = replace(own, mqtt_username=DEVICE_USER, mqtt_password=DEVICE_PASSWORD)
    # The URL's login is wrong, so the device with credentials of its own can only connect with
    # those; the one without connects with the URL's (right) login in the second fleet.
    wrong_url = parse_broker_url(login_broker.login_url(INGEST_USER, "wrong"))
    right_url = parse_broker_url(login_broker.login_url(INGEST_USER, INGEST_PASSWORD))
    received: list[str] = []
    with logged_in_client(right_url) as listener:
        listener.on_message = lambda client, userdata, message: received.append(message.topic)
        listener.subscribe("smartcity/v1/devices/+/telemetry", qos=1)
        with FleetPublisher([own], wrong_url, seed=1) as publisher:
            assert publisher.wait_connected(10)
            assert publisher.publish_once() == 1 and publisher.flush(10)
        with FleetPublisher([shared], right_url, seed=1) as publisher:
            assert publisher.wait_connected(10)
            assert publisher.publish_once() == 1 and publisher.flush(10)
        with FleetPublisher([replace(shared, device_id=shared.device_id + "x")], wrong_url,
                            seed=1) as refused:
            assert not refused.wait_connected(2)
        wait_until(lambda: len(received) == 2, message="both devices' telemetry received")
    assert sorted(received) == sorted([telemetry_topic(own.device_id), telemetry_topic(shared.device_id)])
    with logged_in_client(right_url) as cleaner:  # leave no retained statuses behind
        for device_id in (own.device_id, shared.device_id, shared.device_id + "x"):
            cleaner.publish(status_topic(device_id), b"", qos=1, retain=True).wait_for_publish(5)


def test_bench_raw_publisher_sends_the_login(login_broker: SecuredMosquitto) -> None:
    address = parse_broker_url(login_broker.login_url(INGEST_USER, INGEST_PASSWORD))
    publisher = RawPublisher(address, f"bench-login-{uuid.uuid4().hex[:6]}")
    try:
        publisher.send([encode_publish(b"smartcity/v1/bench/probe", b"x", 1, publisher.next_packet_id())])
        wait_until(lambda: publisher.poll(0.05) or publisher.acked == 1, message="PUBACK")
        assert publisher.refused == 0
    finally:
        publisher.close()
    # Mosquitto answers a wrong password with 0x87 "not authorized" (not 0x86).
    with pytest.raises(ConnectionError, match="reason code 0x87"):
        RawPublisher(replace(address, password="wrong"), "bench-login-wrong")


def test_ingest_over_tls_with_the_test_ca(
        database_url: str, db: psycopg.Connection, tls_broker: SecuredMosquitto,
        tls_files: TlsFiles) -> None:
    register_device(db, "aq-tls-01", "air_quality_station", "kuaro")
    url = tls_broker.login_url(INGEST_USER, INGEST_PASSWORD)
    settings = Settings(_env_file=None, mqtt_url=url,  # type: ignore[call-arg]
                        mqtt_ca_file=tls_files.ca_cert)
    address = settings.broker
    assert address.tls and address.port == tls_broker.port and address.ca_file == tls_files.ca_cert
    with running_worker(database_url, address) as worker:
        wait_until(lambda: worker.subscriber.connected, message="worker connected over TLS")
        _publish_pm25(address, "aq-tls-01", 7.5)
        wait_until(lambda: _stored_pm25(db, "aq-tls-01") == [7.5], message="reading stored")


def test_tls_clients_check_the_broker_certificate(tls_broker: SecuredMosquitto,
                                                  tls_files: TlsFiles) -> None:
    url = tls_broker.login_url(INGEST_USER, INGEST_PASSWORD)
    trusted = parse_broker_url(url, tls_files.ca_cert)
    publisher = RawPublisher(trusted, f"bench-tls-{uuid.uuid4().hex[:6]}")  # the bench over TLS
    try:
        publisher.send([encode_publish(b"smartcity/v1/bench/probe", b"x" * 70_000, 1,
                                       publisher.next_packet_id())])
        wait_until(lambda: publisher.poll(0.05) or publisher.acked == 1, message="PUBACK over TLS")
    finally:
        publisher.close()
    # Without the test CA, the system trust store does not know the broker's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        RawPublisher(parse_broker_url(url), "bench-tls-untrusted")
    # A plain client cannot talk to a TLS-only listener.
    with pytest.raises((ConnectionError, OSError)):
        RawPublisher(replace(trusted, tls=False, ca_file=None), "bench-plain-on-tls")


def test_settings_accept_a_ca_file_from_the_environment(
        tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from smartcity.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMARTCITY_MQTT_URL", "mqtts://u:p@broker.example")
    monkeypatch.setenv("SMARTCITY_MQTT_CA_FILE", str(tls_files.ca_cert))
    assert load_settings().broker.ca_file == tls_files.ca_cert
