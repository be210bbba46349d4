"""The API's MQTT client against a real broker with authentication: connects with an api account,
publishes a command the device receives, refuses when down."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from api.broker import Broker, BrokerUnavailable
from smartcity.broker_url import BrokerAddress
from smartcity.devices import register_device
from smartcity.services import free_port
from smartcity.settings import ApiSettings, Settings
from tests.logins import BrokerLogins, login_url
from tests.mqtt import mqtt_subscriber
from tests.services import wait_until


def _api_settings(login: BrokerAddress) -> Settings:
    return Settings(_env_file=None, mqtt_url=f"mqtt://127.0.0.1:{login.port}",  # type: ignore[call-arg]
                    api=ApiSettings(mqtt_url=login_url(login)))


@pytest.fixture
def broker(broker_login: BrokerLogins) -> Iterator[Broker]:
    client = Broker.from_settings(_api_settings(broker_login("api")))
    client.start()
    try:
        wait_until(lambda: client.is_connected, timeout=10, message="broker connected")
        yield client
    finally:
        client.stop()


def test_a_command_reaches_its_device(broker: Broker, broker_login: BrokerLogins,
                                      db: psycopg.Connection) -> None:
    # The street light logs in as itself, as a real one would, and hears its own commands.
    registration = register_device(db, "sl-grogot-01", "street_light", "tanah-grogot")
    device = broker_login.device("sl-grogot-01", registration.mqtt_password)
    with mqtt_subscriber(device, "smartcity/v1/devices/sl-grogot-01/commands") as received:
        broker.publish("smartcity/v1/devices/sl-grogot-01/commands", b'{"lamp_on": 1}')
        message = received.get(timeout=5)

    assert message.payload == b'{"lamp_on": 1}'
    assert message.qos == 1


def test_publish_without_a_broker_raises_and_stop_returns() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, mqtt_url=f"mqtt://127.0.0.1:{free_port()}"
    )
    client = Broker.from_settings(settings)
    client.start()
    try:
        assert not client.is_connected
        with pytest.raises(BrokerUnavailable):
            client.publish("smartcity/v1/devices/sl-grogot-01/commands", b"{}")
    finally:
        client.stop()


def test_two_api_processes_with_an_account_each_share_a_broker(broker_login: BrokerLogins) -> None:
    # The broker binds the client id to the login: each API process needs an api account of its
    # own, or the second would take the first's connection over (and back, again and again).
    first, second = (Broker.from_settings(_api_settings(broker_login("api"))) for _ in range(2))
    first.start()
    second.start()
    try:
        wait_until(lambda: first.is_connected and second.is_connected, timeout=10,
                   message="both connected")
        assert first.is_connected and second.is_connected
    finally:
        first.stop()
        second.stop()
