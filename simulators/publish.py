"""Run simulated devices as real MQTT devices: one connection per device, a few network threads.

Each device is its own paho client (client id = device id, MQTT v5) with a retained ``offline``
Last Will on its status topic. Once connected it publishes a retained ``online``, then one
contract observation (``{"ts", "metrics"}``) per round at QoS 1 on its telemetry topic.

Device connections are served by a few `simulators.network.NetworkLoop` threads, up to
``devices_per_thread`` sockets each, not by ``loop_start()`` and its thread per client: the
fleet grows to thousands of devices. Sampling and publishing happen on the caller's thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from ingest.topics import status_topic, telemetry_topic
from simulators.fleet import DeviceSpec, SimulatedDevice
from simulators.network import MIN_BACKOFF_S, NetworkDevice, NetworkLoop

__all__ = [
    "FleetPublisher",
    "PublisherStats",
    "encode_observation",
    "run_simulator",
]

log = logging.getLogger(__name__)

# paho's TCP connect blocks the network thread; a short timeout bounds the stall an unreachable
# broker causes (a refused connection returns at once).
_CONNECT_TIMEOUT_S = 2.0
_QUEUED = (mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN)


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Counters of a publisher: messages handed to MQTT, acknowledged by the broker, dropped."""

    devices: int
    connected: int
    rounds: int
    telemetry_published: int
    status_published: int
    acknowledged: int
    rejected: int  # acknowledged with a failure reason code (e.g. not authorised)
    dropped: int  # refused by the client: its offline queue was full

    @property
    def published(self) -> int:
        """Return telemetry and status messages published together."""
        return self.telemetry_published + self.status_published


def encode_observation(ts: float, metrics: Mapping[str, float]) -> bytes:
    """Return the contract's single-observation JSON for epoch-second ``ts`` and ``metrics``."""
    return orjson.dumps({"ts": _rfc3339(ts), "metrics": {
        name: int(value) if name == "lamp_on" else round(value, 3)
        for name, value in metrics.items()
    }})


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FleetPublisher:
    """Run ``specs`` as MQTT devices against a broker; publish one observation each per round."""

    def __init__(self, specs: Sequence[DeviceSpec], host: str, port: int, *, seed: int,
                 interval_s: float = 10.0, keepalive_s: int = 60,
                 devices_per_thread: int = 1000, max_queued_per_device: int = 1000) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        ids = [spec.device_id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids in a fleet must be unique")
        self.host, self.port = host, port
        self.interval_s = interval_s
        self._cond = threading.Condition()  # counters and connection flags
        # Orders each device's retained online/offline: a CONNACK racing stop() must not leave
        # "online" as the last word. Taken before paho's own locks, never inside _cond.
        self._status_lock = threading.Lock()
        self._counts = {"rounds": 0, "telemetry": 0, "status": 0, "acknowledged": 0,
                        "rejected": 0, "dropped": 0}
        self._unacked = 0
        self._started = self._stopped = False
        threads = max(1, math.ceil(len(specs) / max(1, devices_per_thread)))
        self._loops = [NetworkLoop(f"mqtt-sim-{i}", host, port) for i in range(threads)]
        self._devices: list[NetworkDevice] = []
        for index, spec in enumerate(specs):
            loop = self._loops[index % threads]
            device = self._make_device(SimulatedDevice.create(spec, seed), loop, keepalive_s,
                                       max_queued_per_device)
            loop.devices.append(device)
            self._devices.append(device)

    def _make_device(self, sim: SimulatedDevice, loop: NetworkLoop, keepalive_s: int,
                     max_queued: int) -> NetworkDevice:
        spec = sim.spec
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=spec.device_id,
                             protocol=mqtt.MQTTv5)
        device = NetworkDevice(sim, client, loop)
        client.user_data_set(device)
        client.will_set(status_topic(spec.device_id), b"offline", qos=1, retain=True)
        if spec.mqtt_username is not None:
            client.username_pw_set(spec.mqtt_username, spec.mqtt_password)
        client.max_queued_messages_set(max_queued)
        client.connect_timeout = _CONNECT_TIMEOUT_S
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = loop.socket_opened
        client.on_socket_close = loop.socket_closed
        client.on_socket_register_write = loop.socket_wants_write
        client.connect_async(self.host, self.port, keepalive=keepalive_s)  # no I/O until reconnect
        return device

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the network threads; devices connect (and retry) in the background."""
        if self._started:
            return
        self._started = True
        log.info("simulating %d device(s) against mqtt://%s:%d on %d network thread(s)",
                 len(self._devices), self.host, self.port, len(self._loops))
        for loop in self._loops:
            loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish retained ``offline`` for every connected device, then disconnect them cleanly."""
        if self._stopped:
            return
        if not self._started:
            self._stopped = True
            for loop in self._loops:
                loop.close(timeout)
            return
        with self._status_lock:
            self._stopped = True
            for device in self._devices:
                if device.connected:
                    self._publish(device, status_topic(device.device_id), b"offline", True,
                                  "status")
        if not self.flush(timeout):
            log.warning("stopping with %d message(s) not acknowledged by the broker", self._unacked)
        for loop in self._loops:
            loop.close(timeout)
        log.info("simulator stopped: %s", self.stats())

    def __enter__(self) -> FleetPublisher:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # waiting -----------------------------------------------------------------------------

    @property
    def connected_count(self) -> int:
        """Return how many devices hold an accepted connection to the broker now."""
        return sum(device.connected for device in self._devices)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every device is connected; tell whether all made it within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self.connected_count == len(self._devices), timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until the broker acknowledged every message published so far; tell if it did."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unacked <= 0, timeout)

    def stats(self) -> PublisherStats:
        """Return a snapshot of the counters."""
        with self._cond:
            c = self._counts
            return PublisherStats(len(self._devices), self.connected_count, c["rounds"],
                                  c["telemetry"], c["status"], c["acknowledged"], c["rejected"],
                                  c["dropped"])

    # publishing --------------------------------------------------------------------------

    def publish_once(self, now: float | None = None) -> int:
        """Publish one observation per device for ``now`` (default: the clock); return how many.

        A device that is offline keeps its observations queued (up to its limit) and sends them
        when it reconnects, as a real device with a buffer would.

        Raises:
            RuntimeError: the publisher is not running.
        """
        if not self._started or self._stopped:
            raise RuntimeError("the publisher is not running: call start() first")
        now = time.time() if now is None else now
        times = np.array([now])
        # Sample the whole fleet before publishing anything: while the network threads sleep,
        # numpy does not have to fight them for the GIL.
        payloads = []
        for device in self._devices:
            readings = device.sim.sample(times)
            payloads.append(encode_observation(now, {name: float(values[0])
                                                     for name, values in readings.items()}))
        published = 0
        for device, payload in zip(self._devices, payloads, strict=True):
            if self._publish(device, telemetry_topic(device.device_id), payload, False,
                             "telemetry"):
                published += 1
        for loop in self._loops:
            loop.request_sweep()
        with self._cond:
            self._counts["rounds"] += 1
        return published

    def run(self, stop_event: threading.Event, duration_s: float | None = None) -> None:
        """Publish a round every ``interval_s`` until ``stop_event`` is set or time is up."""
        started = next_round = time.monotonic()
        deadline = math.inf if duration_s is None else started + duration_s
        next_report = started + 60.0
        while not (stop_event.is_set() or self._stopped) and time.monotonic() < deadline:
            self.publish_once()
            next_round += self.interval_s
            now = time.monotonic()
            if now > next_round:  # a round took longer than the interval: skip, do not burst
                missed = math.ceil((now - next_round) / self.interval_s)
                log.warning("simulator is %d round(s) behind; skipping them", missed)
                next_round += missed * self.interval_s
            if now >= next_report:
                log.info("simulator: %s", self.stats())
                next_report = now + 60.0
            stop_event.wait(max(0.0, min(next_round, deadline) - time.monotonic()))

    def _publish(self, device: NetworkDevice, topic: str, payload: bytes, retain: bool,
                 counter: str) -> bool:
        with self._cond:
            self._unacked += 1  # before publishing: the PUBACK may arrive before publish returns
        info = device.client.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            if info.rc in _QUEUED:
                self._counts[counter] += 1
                return True
            self._unacked -= 1
            self._counts["dropped"] += 1
            self._cond.notify_all()
        log.debug("device %s: message dropped (%s)", device.device_id, mqtt.error_string(info.rc))
        return False

    # paho callbacks, on the device's network thread --------------------------------------

    def _on_connect(self, client: mqtt.Client, device: NetworkDevice, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.warning("device %s: broker refused the connection: %s", device.device_id,
                        reason_code)
            return
        device.backoff = MIN_BACKOFF_S
        with self._status_lock:
            if self._stopped:
                return
            self._publish(device, status_topic(device.device_id), b"online", True, "status")
            with self._cond:
                device.connected = True
                self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, device: NetworkDevice,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        with self._cond:
            was_connected, device.connected = device.connected, False
            self._cond.notify_all()
        if was_connected and not device.closing:
            device.loop.note_lost(str(reason_code))

    def _on_publish(self, client: mqtt.Client, device: NetworkDevice, mid: int,
                    reason_code: mqtt.ReasonCode, properties: Properties) -> None:
        with self._cond:
            self._unacked -= 1
            self._counts["acknowledged"] += 1
            if reason_code.is_failure:
                self._counts["rejected"] += 1
            self._cond.notify_all()


def run_simulator(specs: Sequence[DeviceSpec], host: str, port: int, interval_s: float,
                  seed: int, duration_s: float | None = None,
                  stop_event: threading.Event | None = None) -> PublisherStats:
    """Run ``specs`` against the broker until ``stop_event`` is set or ``duration_s`` passes."""
    stop = threading.Event() if stop_event is None else stop_event
    publisher = FleetPublisher(specs, host, port, seed=seed, interval_s=interval_s)
    publisher.start()
    try:
        deadline = time.monotonic() + 10.0
        while not (stop.is_set() or publisher.wait_connected(0.2)):
            if time.monotonic() > deadline:
                log.warning("%d of %d simulated devices connected so far; the rest keep trying",
                            publisher.connected_count, len(specs))
                break
        publisher.run(stop, duration_s)
    finally:
        publisher.stop()
    stats = publisher.stats()
    log.info("simulator published %d message(s), %d acknowledged", stats.published,
             stats.acknowledged)
    return stats
