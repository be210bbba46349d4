"""A registry with two devices and a service account per role, and a real Mosquitto enforcing it.

The broker reads the password and ACL files rendered from the registry, binds client ids to logins
on its plain and its TLS listener, and a ``BrokerAuthSync`` thread follows the registry.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.broker.accounts import create_account
from smartcity.broker.authfiles import broker_group
from smartcity.broker.roles import Role
from smartcity.broker.sync import BrokerAuthSync, sync_once
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, MosquittoTls, free_port
from tests.services import TlsFiles, make_tls_files, scratch_dir, wait_until

DEVICE_A, DEVICE_B = "river-auth-a", "river-auth-b"
INGEST, API, MONITOR, GATEWAY, ALERTS = ("smartcity-ingest-1", "smartcity-api-1", "smartcity-monitor-1",
                                         "smartcity-gateway-1", "smartcity-alerts-1")
ACCOUNTS = {INGEST: Role.INGEST, API: Role.API, MONITOR: Role.MONITOR, GATEWAY: Role.GATEWAY,
            ALERTS: Role.ALERTS}


@dataclass
class SecuredPlatform:
    """The broker, its files, the sync, and every login's password (device id or account name)."""

    broker: EmbeddedMosquitto
    auth_dir: Path
    sync: BrokerAuthSync
    passwords: dict[str, str]
    tls: TlsFiles


@pytest.fixture(scope="module")
def tls_files() -> Iterator[TlsFiles]:
    with scratch_dir("smartcity-broker-tls-") as directory:
        yield make_tls_files(directory / "tls")


@pytest.fixture
def secured(database_url: str, db: psycopg.Connection, tls_files: TlsFiles) -> Iterator[SecuredPlatform]:
    """Devices A and B and one account per role, rendered into a broker that wants logins."""
    passwords = {}
    for device_id in (DEVICE_A, DEVICE_B):
        registration = register_device(db, device_id, "river_level_sensor", "tanah-grogot")
        passwords[device_id] = registration.mqtt_password
    for username, role in ACCOUNTS.items():
        passwords[username] = create_account(db, username, role.value).password
    with scratch_dir("smartcity-broker-auth-") as directory:
        auth_dir = directory / "auth"
        sync_once(db, auth_dir, broker_group())  # the broker refuses to start without its files
        tls = MosquittoTls(free_port(), tls_files.server_cert, tls_files.server_key, tls_files.ca_cert)
        broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), auth=auth_dir, tls=tls)
        broker.start()
        sync = BrokerAuthSync(database_url, auth_dir, broker.reload, gid=broker_group())
        sync.start()
        try:
            assert sync.wait_listening(10), "the sync did not start listening"
            yield SecuredPlatform(broker, auth_dir, sync, passwords, tls_files)
        finally:
            sync.stop()
            broker.stop()


@dataclass
class Session:
    """A paho v5 client with what the broker told it: CONNACK, PUBACK reasons, messages, disconnects."""

    client: mqtt.Client
    connack: list[mqtt.ReasonCode] = field(default_factory=list)
    session_present: list[bool] = field(default_factory=list)
    pubacks: dict[int, mqtt.ReasonCode] = field(default_factory=dict)
    messages: list[mqtt.MQTTMessage] = field(default_factory=list)
    disconnects: list[tuple[float, mqtt.ReasonCode]] = field(default_factory=list)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return wait_until(lambda: self.pubacks.get(info.mid), timeout=5, message=f"PUBACK for {topic}")

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for SUBACK."""
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5), "no SUBACK"

    def topics(self) -> list[str]:
        return [m.topic for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def open_session(port: int, username: str | None, password: str | None, *, client_id: str = "",
                 clean_start: bool = True, tls: TlsFiles | None = None, wait: bool = True,
                 reconnect: bool = False) -> Session:
    """Connect a paho v5 client and wait for the CONNACK (``session.connack[0]``, success or not)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=reconnect)
    session = Session(client)
    if username is not None:
        client.username_pw_set(username, password)
    if tls is not None:
        client.tls_set(ca_certs=str(tls.ca_cert), tls_version=ssl.PROTOCOL_TLS_CLIENT)

    def on_connect(c: mqtt.Client, u: object, flags: mqtt.ConnectFlags, reason: mqtt.ReasonCode,
                   props: Properties | None) -> None:
        session.connack.append(reason)
        session.session_present.append(flags.session_present)

    client.on_connect = on_connect
    client.on_publish = lambda c, u, mid, reason, props: session.pubacks.__setitem__(mid, reason)
    client.on_message = lambda c, u, message: session.messages.append(message)
    client.on_subscribe = lambda *args: session.subscribed.set()
    client.on_disconnect = lambda c, u, flags, reason, props: session.disconnects.append(
        (time.monotonic(), reason))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0 if clean_start else 600
    client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
    client.loop_start()
    if wait:
        wait_until(lambda: session.connack, timeout=10, message="CONNACK")
    return session
