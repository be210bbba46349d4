"""A real MQTT publisher for tests (the same paho client devices would use)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.contract import STATUS_FILTER, status_topic, telemetry_topic
from tests.services import wait_until


@contextmanager
def mqtt_publisher(address: BrokerAddress) -> Iterator[mqtt.Client]:
    """Yield an MQTT v5 client logged in as ``address`` says (a ``gateway`` login publishes for any
    device, a device's own only for itself); ``publish(...).wait_for_publish()`` confirms delivery.

    With authentication the broker makes the login the client id.
    """
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, address)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def mqtt_subscriber(address: BrokerAddress, topic: str) -> Iterator[queue.Queue[mqtt.MQTTMessage]]:
    """Yield a queue of what ``topic`` delivers to the login ``address`` names, once subscribed
    (QoS 1, SUBACK awaited): a device hearing its commands, a monitor reading alerts."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, address)
    client.on_message = lambda _client, _userdata, message: received.put(message)
    client.on_subscribe = lambda _client, _userdata, mid, _codes, _props: subscribed.put(mid)
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        subscribed.get(timeout=5)
        yield received
    finally:
        client.disconnect()
        client.loop_stop()


def publish(client: mqtt.Client, topic: str, payload: bytes | str, qos: int = 1,
            retain: bool = False) -> None:
    """Publish and wait until the broker has it (PUBACK for QoS 1)."""
    client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(timeout=5)


class TelemetryStream:
    """Publish ``count`` messages (one reading each, unique timestamps) at QoS 1 from a thread, logged
    in as ``address`` (a ``gateway`` login, since it speaks for several devices).

    Survives broker restarts: paho keeps unconfirmed QoS 1 messages (unbounded queue) and sends
    them again after it reconnects; the database makes any resent duplicate a no-op.
    """

    def __init__(self, address: BrokerAddress, device_ids: list[str], count: int, rate: float,
                 client_id: str = "test-stream") -> None:
        self.address, self.device_ids, self.count, self.rate = address, device_ids, count, rate
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        apply_address(self.client, address)
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
        self.client.connect_async(self.address.host, self.address.port, clean_start=False, properties=props)
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


def clear_retained_statuses(gateway: BrokerAddress, listener: BrokerAddress) -> list[str]:
    """Clear every retained device status on the broker; return the topics cleared.

    A retained status outlives the test that left it, and a later worker would hear it on
    subscribing as the status of a device it does not know (and remember the miss for a while).
    ``listener`` must be allowed to read statuses (an ``ingest`` or ``monitor`` login).
    """
    marker = status_topic("zz-retained-marker")
    topics: list[str] = []
    seen_marker = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == marker:
            seen_marker.set()
        elif message.retain and message.payload:
            topics.append(message.topic)

    with mqtt_publisher(gateway) as publisher:
        listening = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        apply_address(listening, listener)
        subscribed = threading.Event()
        listening.on_message = on_message
        listening.on_subscribe = lambda *args: subscribed.set()
        listening.connect(listener.host, listener.port)
        listening.loop_start()
        try:
            listening.subscribe(STATUS_FILTER, qos=1)
            assert subscribed.wait(5), "no SUBACK"
            # Published after the SUBACK, so the broker delivers it after the retained ones.
            publish(publisher, marker, b"marker")
            assert seen_marker.wait(5), "the marker status did not come back"
        finally:
            listening.disconnect()
            listening.loop_stop()
        for topic in topics:
            publish(publisher, topic, b"", retain=True)
    return topics
