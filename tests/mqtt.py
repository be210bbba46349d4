"""A real MQTT publisher for tests (the same paho client devices would use)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.contract import telemetry_topic
from smartcity.services import EmbeddedMosquitto
from tests.services import wait_until


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


class TelemetryStream:
    """Publish ``count`` messages (one reading each, unique timestamps) at QoS 1 from a thread.

    Survives broker restarts: paho keeps unconfirmed QoS 1 messages (unbounded queue) and sends
    them again after it reconnects; the database makes any resent duplicate a no-op.
    """

    def __init__(self, port: int, device_ids: list[str], count: int, rate: float,
                 client_id: str = "test-stream") -> None:
        self.port, self.device_ids, self.count, self.rate = port, device_ids, count, rate
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.2, 2)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(100)
        self.messages: list[tuple[str, bytes]] = []
        self.sent = 0
        self.confirmed: set[int] = set()
        self.client.on_publish = lambda client, userdata, mid, rc, props: self.confirmed.add(mid)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TelemetryStream:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect_async("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        base_ms = int(time.time() * 1000) - self.count  # unique, increasing, inside the window
        infos = []
        for i in range(self.count):
            device = self.device_ids[i % len(self.device_ids)]
            payload = b'{"ts": %d, "metrics": {"water_level": %.3f}}' % (base_ms + i, 1 + i % 1000 / 1000)
            topic = telemetry_topic(device)
            self.messages.append((topic, payload))
            infos.append(self.client.publish(topic, payload, qos=1))
            self.sent += 1
            delay = start + (i + 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self._infos = infos

    def finish(self, timeout: float = 60) -> None:
        """Wait for the stream to end and for the broker to confirm every message."""
        self._thread.join(timeout)
        # Not wait_for_publish: it gives up at once on a message queued while disconnected,
        # which paho still sends after reconnecting; PUBACKs are counted instead.
        mids = {info.mid for info in self._infos}
        wait_until(lambda: mids <= self.confirmed, timeout=timeout, interval=0.1,
                   message="broker confirmed every message")
        self.client.disconnect()
        self.client.loop_stop()
