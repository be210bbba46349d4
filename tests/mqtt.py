"""A real MQTT publisher for tests (the same paho client devices would use)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt

from smartcity.services import EmbeddedMosquitto


@contextmanager
def mqtt_publisher(broker: EmbeddedMosquitto, client_id: str = "") -> Iterator[mqtt.Client]:
    """Yield a connected MQTT v5 client; ``publish(...).wait_for_publish()`` confirms delivery."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes | str, qos: int = 1,
            retain: bool = False) -> None:
    """Publish and wait until the broker has it (PUBACK for QoS 1)."""
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(timeout=5)
