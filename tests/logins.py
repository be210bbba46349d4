"""Broker logins for tests: service accounts and devices from the registry, handed out once the
broker accepts them.

The test brokers run their logins from the registry (``serve_broker_auth``), and every test starts
with no accounts and no devices, so a test that talks to a broker first gets a login here. A login
is returned only after the broker answered a CONNECT with it by a successful CONNACK: the sync
rewrites the files and reloads the broker within milliseconds of the commit, but not before it.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import paho.mqtt.client as mqtt
import psycopg

from simulators.fleet import DeviceSpec, with_credentials
from smartcity.broker.accounts import create_account
from smartcity.broker.roles import Role
from smartcity.broker_url import BrokerAddress
from smartcity.launcher import register_fleet
from smartcity.services import EmbeddedMosquitto
from tests.services import wait_until

__all__ = ["BrokerLogins", "anonymous", "connack", "create_login", "login_url", "wait_accepted"]


def login_url(address: BrokerAddress) -> str:
    """Return the address as a URL with its login in clear, as SMARTCITY_*MQTT_URL want it."""
    login = ""
    if address.username is not None:
        login = quote(address.username, safe="")
        login += f":{quote(address.password, safe='')}" if address.password is not None else ""
        login += "@"
    return f"{'mqtts' if address.tls else 'mqtt'}://{login}{address.host}:{address.port}"


def anonymous(broker: EmbeddedMosquitto) -> BrokerAddress:
    """Return the address of ``broker`` without a login (for brokers that take anonymous clients)."""
    return BrokerAddress("127.0.0.1", broker.port)


def connack(address: BrokerAddress, timeout: float = 2.0) -> mqtt.ReasonCode | None:
    """Connect once with the address's login; return the CONNACK's reason, or None if none came."""
    got: list[mqtt.ReasonCode] = []
    answered = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                         reconnect_on_failure=False)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)

    def on_connect(c: mqtt.Client, u: object, flags: object, reason: mqtt.ReasonCode,
                   props: object) -> None:
        got.append(reason)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError:
        return None
    client.loop_start()
    try:
        answered.wait(timeout)
        return got[0] if got else None
    finally:
        client.disconnect()
        client.loop_stop()


def wait_accepted(address: BrokerAddress, timeout: float = 10.0) -> BrokerAddress:
    """Wait until the broker accepts the address's login (a successful CONNACK); return the address.

    The probe asks for a clean start, so it leaves no session behind under the login's client id.
    """
    def accepted() -> bool:
        reason = connack(address)
        return reason is not None and not reason.is_failure
    wait_until(accepted, timeout=timeout, interval=0.02,
               message=f"broker on port {address.port} accepts {address.username}")
    return address


def create_login(conn: psycopg.Connection[Any], role: Role | str, broker: EmbeddedMosquitto) -> BrokerAddress:
    """Create a service account ``smartcity-<role>-<hex>``; return its login at ``broker`` once
    that broker accepts it (for fixtures wider than a test; ``broker_login`` otherwise)."""
    role = Role(role)
    account = create_account(conn, f"smartcity-{role.value}-{uuid.uuid4().hex[:8]}", role.value)
    return wait_accepted(BrokerAddress("127.0.0.1", broker.port, account.username, account.password))


class BrokerLogins:
    """Hands out logins of the test's registry: ``logins("ingest")``, ``logins.device(...)``."""

    def __init__(self, database_url: str, conn: psycopg.Connection[Any],
                 default_broker: Callable[[], EmbeddedMosquitto]) -> None:
        self._database_url = database_url
        self._conn = conn
        self._default_broker = default_broker

    def __call__(self, role: Role | str, broker: EmbeddedMosquitto | None = None) -> BrokerAddress:
        """Create a service account ``smartcity-<role>-<hex>`` and return its login at ``broker``
        (default: the session's) once that broker accepts it."""
        return create_login(self._conn, role, broker if broker is not None else self._default_broker())

    def device(self, device_id: str, password: str,
               broker: EmbeddedMosquitto | None = None) -> BrokerAddress:
        """Return a registered device's own login at ``broker`` once that broker accepts it."""
        target = broker if broker is not None else self._default_broker()
        return wait_accepted(BrokerAddress("127.0.0.1", target.port, device_id, password))

    def fleet(self, specs: Sequence[DeviceSpec], broker: EmbeddedMosquitto | None = None) -> list[DeviceSpec]:
        """Register ``specs`` as ``smartcity up`` registers its fleet, each device with credentials
        of its own; return them once ``broker`` accepts the last one registered (and so all)."""
        fleet = with_credentials(specs, secrets.token_bytes(32))
        register_fleet(self._database_url, fleet)
        if fleet:
            last = fleet[-1]
            assert last.mqtt_password is not None
            self.device(last.device_id, last.mqtt_password, broker)
        return fleet
