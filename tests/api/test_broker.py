"""The API's MQTT client against a real broker: connects, publishes, refuses when down."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest

from api.broker import Broker, BrokerUnavailable
from smartcity.services import EmbeddedMosquitto, free_port
from smartcity.settings import Settings
from tests.services import wait_until


@pytest.fixture
def broker(mosquitto: EmbeddedMosquitto) -> Iterator[Broker]:
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url)  # type: ignore[call-arg]
    client = Broker.from_settings(settings)
    client.start()
    try:
        wait_until(lambda: client.is_connected, timeout=10, message="broker connected")
        yield client
    finally:
        client.stop()


def test_publish_reaches_a_subscriber(broker: Broker, mosquitto: EmbeddedMosquitto) -> None:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = queue.Queue[int]()
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    listener.on_message = lambda client, userdata, message: received.put(message)
    listener.on_subscribe = lambda client, userdata, mid, codes, props: subscribed.put(mid)
    listener.connect("127.0.0.1", mosquitto.port)
    listener.loop_start()
    try:
        listener.subscribe("smartcity/v1/devices/sl-grogot-01/commands", qos=1)
        subscribed.get(timeout=5)
        broker.publish("smartcity/v1/devices/sl-grogot-01/commands", b'{"lamp_on": 1}')
        message = received.get(timeout=5)
    finally:
        listener.disconnect()
        listener.loop_stop()

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


def test_client_ids_differ_so_two_api_processes_can_share_a_broker(
    mosquitto: EmbeddedMosquitto,
) -> None:
    settings = Settings(_env_file=None, mqtt_url=mosquitto.url)  # type: ignore[call-arg]
    first, second = Broker.from_settings(settings), Broker.from_settings(settings)
    first.start()
    second.start()
    try:
        wait_until(lambda: first.is_connected and second.is_connected, timeout=10,
                   message="both connected")
        assert first.is_connected and second.is_connected
    finally:
        first.stop()
        second.stop()
