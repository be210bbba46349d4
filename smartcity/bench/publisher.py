"""A benchmark publisher process: one MQTT v5 client sending its share of weather-station telemetry.

Each payload is a contract single observation ``{"ts": <epoch ms>, "metrics": {...}}`` stamped at
publish time, so the worker's reading-delay histogram measures publish → commit. A device's
timestamps strictly increase (bumped by 1 ms when two messages would share one), so no reading is
a genuine duplicate. At most ``window`` messages are unacknowledged at once (ours, capped by the
broker's Receive Maximum: Mosquitto disconnects a client that exceeds it). The process talks to
its parent through a queue: ``("ready", index)`` once connected, then ``("done", PublisherReport)``.
"""

from __future__ import annotations

import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Literal

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from smartcity.bench.wire import RawPublisher, encode_publish
from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.contract import telemetry_topic

__all__ = ["PublisherJob", "PublisherReport", "publish_once", "run_publisher", "weather_metrics"]

Client = Literal["paho", "raw"]
_CONNECT_TIMEOUT_S = 15.0
_DRAIN_TIMEOUT_S = 60.0
_HALTED_DRAIN_S = 5.0
_BURST = 64  # messages between two reads of the broker's acks
_TICK = 0.002  # seconds: a paced publisher sends what is due at most this often


@dataclass(frozen=True, slots=True)
class PublisherJob:
    """What one publisher process sends, and where."""

    index: int
    broker: BrokerAddress  # with the login and TLS the publishers use
    client_id: str
    device_ids: tuple[str, ...]
    messages: int
    rate: float  # messages per second for this process; 0: as fast as possible
    qos: int
    max_inflight: int
    client: Client = "paho"
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PublisherReport:
    """What one publisher did; times are epoch seconds, CPU is the process's own."""

    index: int
    published: int
    acknowledged: int
    refused: int  # PUBACKs with a failure reason code
    first_publish: float
    last_publish: float
    cpu_seconds: float
    window: int  # messages allowed in flight: ours, capped by the broker's Receive Maximum
    error: str | None = None


def weather_metrics(rng: random.Random) -> dict[str, float]:
    """Return the six weather-station metrics with plausible values for Paser (inside the catalogue)."""
    return {
        "temperature": round(rng.uniform(23.0, 34.0), 2),
        "humidity": round(rng.uniform(55.0, 98.0), 1),
        "pressure": round(rng.uniform(1005.0, 1015.0), 1),
        "rainfall": round(rng.expovariate(2.0), 2),
        "wind_speed": round(rng.uniform(0.0, 12.0), 2),
        "wind_direction": round(rng.uniform(0.0, 359.9), 1),
    }


class _Messages:
    """The job's messages in order: (topic index, payload), each stamped when it is drawn."""

    def __init__(self, job: PublisherJob) -> None:
        self.topics = [telemetry_topic(d) for d in job.device_ids]
        self._rng = random.Random(job.seed * 1000 + job.index)
        self._last_ts = [0] * len(self.topics)

    def take(self, start: int, count: int) -> Iterator[tuple[int, bytes]]:
        now_ms = time.time_ns() // 1_000_000
        for i in range(start, start + count):
            d = i % len(self.topics)
            ts = self._last_ts[d] = max(now_ms, self._last_ts[d] + 1)
            yield d, orjson.dumps({"ts": ts, "metrics": weather_metrics(self._rng)})


class _PahoSession:
    """A paho client driven from this one thread (no ``loop_start``).

    With paho's network thread every publish wakes it through a socket pair and every PUBACK is a
    GIL hand-over; and paho's own inflight window rescans all unacked messages on each PUBACK
    (O(window) per ack). So paho's window is off and the sender enforces the same limit in O(1).
    """

    def __init__(self, job: PublisherJob, client_id: str | None = None) -> None:
        self.acked = self.refused = 0
        self.window = 1
        self._job = job
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or job.client_id,
                             protocol=mqtt.MQTTv5)
        client.max_inflight_messages_set(0)
        client.suppress_exceptions = False
        client.on_publish = self._on_publish
        client.on_connect = self._on_connect
        apply_address(client, job.broker)
        self._connected = False
        self._client = client
        client.connect(job.broker.host, job.broker.port, keepalive=60, clean_start=True)
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while not self._connected:
            if time.monotonic() > deadline:
                raise ConnectionError(f"publisher {job.index}: no CONNACK from {job.broker}")
            self.poll(0.1)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            raise ConnectionError(f"broker refused publisher {self._job.index}: {reason_code}")
        broker_limit = getattr(properties, "ReceiveMaximum", 65535) if properties else 65535
        self.window = max(1, min(self._job.max_inflight, broker_limit))
        self._connected = True

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        self.acked += 1
        self.refused += bool(reason_code.is_failure)

    def poll(self, timeout: float) -> None:
        rc = self._client.loop(timeout=timeout)
        if rc not in (mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode.MQTT_ERR_AGAIN):
            raise ConnectionError(f"connection to the broker lost: {mqtt.error_string(rc)}")

    def send(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=self._job.qos)
        if info.rc != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")

    def publish(self, messages: _Messages, start: int, count: int) -> None:
        for d, payload in messages.take(start, count):
            self.send(messages.topics[d], payload)
        self.poll(0)

    def close(self) -> None:
        self._client.disconnect()


class _RawSession:
    """The lean client of `smartcity.bench.wire`: one ``send`` per burst, PUBACKs parsed in bulk."""

    def __init__(self, job: PublisherJob) -> None:
        self._job = job
        self._conn = RawPublisher(job.broker, job.client_id)
        self.window = max(1, min(job.max_inflight, self._conn.receive_maximum))
        self._topics: list[bytes] = []
        self._sent = 0

    @property
    def acked(self) -> int:
        return self._conn.acked if self._job.qos else self._sent

    @property
    def refused(self) -> int:
        return self._conn.refused

    def poll(self, timeout: float) -> None:
        self._conn.poll(timeout)

    def publish(self, messages: _Messages, start: int, count: int) -> None:
        if not self._topics:
            self._topics = [t.encode() for t in messages.topics]
        qos = self._job.qos
        self._conn.send([
            encode_publish(self._topics[d], payload, qos, self._conn.next_packet_id() if qos else 0)
            for d, payload in messages.take(start, count)
        ])
        self._sent = start + count
        if qos:
            self.poll(0)

    def close(self) -> None:
        self._conn.close()


_Session = _PahoSession | _RawSession


def _publish_all(session: _Session, job: PublisherJob, halt: Event) -> tuple[int, float]:
    """Publish the job's messages in bursts inside the window and at the rate, until ``halt``.

    Returns how many were published and when the first was.
    """
    messages = _Messages(job)
    interval = 1.0 / job.rate if job.rate > 0 else 0.0
    first = time.time()
    started = time.perf_counter()
    sent = 0
    while sent < job.messages and not halt.is_set():
        due = job.messages
        if interval:
            due = min(job.messages, int((time.perf_counter() - started) / interval) + 1)
            if due <= sent:
                # Wake at most every _TICK and send what is due in one burst: a wake-up, a write and
                # a read per message would cost more CPU than the message (system calls in a VM).
                time.sleep(max(_TICK, started + sent * interval - time.perf_counter()))
                continue
        room = session.window - (sent - session.acked) if job.qos else _BURST
        if room <= 0:
            session.poll(0.01)
            continue
        count = min(due - sent, room, _BURST)
        session.publish(messages, sent, count)
        sent += count
    return sent, first


def _drain(session: _Session, sent: int, timeout: float) -> bool:
    """Read acks until ``sent`` publishes completed; tell whether they did within ``timeout``."""
    deadline = time.monotonic() + timeout
    while session.acked < sent:
        if time.monotonic() > deadline:
            return False
        session.poll(0.05)
    return True


def publish_once(broker: BrokerAddress, topic: str, payload: bytes, qos: int = 1) -> None:
    """Publish one message from a short-lived paho client and wait until the broker has it.

    Raises:
        ConnectionError: the broker did not accept the connection or the message in time.
    """
    job = PublisherJob(0, broker, f"bench-probe-{uuid.uuid4().hex[:8]}", (), 1, 0.0, qos, 1)
    session = _PahoSession(job)
    try:
        session.send(topic, payload)
        if not _drain(session, 1, _CONNECT_TIMEOUT_S):
            raise ConnectionError(f"broker {broker} did not acknowledge a message on {topic}")
    finally:
        session.close()


def run_publisher(job: PublisherJob, go: Event, halt: Event,
                  reports: Queue[tuple[str, int | PublisherReport]]) -> None:
    """Connect, report ready, wait for ``go``, publish the job (or until ``halt``), wait for acks, report."""
    # Ctrl-C reaches the whole process group; the parent decides when publishers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        session: _Session = _RawSession(job) if job.client == "raw" else _PahoSession(job)
    except (OSError, ConnectionError) as err:
        reports.put(("done", PublisherReport(job.index, 0, 0, 0, 0.0, 0.0, 0.0, 0, str(err))))
        return
    reports.put(("ready", job.index))
    go.wait()
    cpu_start = time.process_time()
    published, first, error = job.messages, time.time(), None
    try:
        published, first = _publish_all(session, job, halt)
        last = time.time()
        if not _drain(session, published, _HALTED_DRAIN_S if halt.is_set() else _DRAIN_TIMEOUT_S):
            error = f"publisher {job.index}: {published - session.acked} messages unacknowledged"
    except (OSError, ConnectionError) as err:
        published, last, error = session.acked, time.time(), f"publisher {job.index}: {err}"
    cpu = time.process_time() - cpu_start
    session.close()
    reports.put(("done", PublisherReport(
        job.index, published, session.acked, session.refused, first, last, cpu, session.window, error,
    )))
