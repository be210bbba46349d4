"""Run simulated devices as real MQTT devices: one connection per device, a few network threads.

Each device is its own paho client (client id = device id, MQTT v5) with a retained ``offline``
Last Will on its status topic. Once connected it publishes a retained ``online``, then one report
per round on its telemetry topic, at QoS 0 or 1, as a contract observation, batch or SenML pack
(`simulators.encode`), with faults injected on request (`simulators.faults`). At QoS 1 paho keeps
every unacknowledged message and sends it again after a reconnection. Actuators (street lights)
also hear their commands topic, obey (`simulators.actuators`) and report their new state at once.

Device connections are served by a few `simulators.network.NetworkLoop` threads, up to
``devices_per_thread`` sockets each, not by ``loop_start()`` and its thread per client: the
fleet grows to thousands of devices. Sampling and publishing happen on the caller's thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.actuators import CommandLog, obey, parse_command, takes_commands
from simulators.encode import FORMATS, Format, content_type
from simulators.faults import FaultInjector, Ledger, Message, Report
from simulators.fleet import DeviceSpec, SimulatedDevice
from simulators.network import MIN_BACKOFF_S, NetworkDevice, NetworkLoop
from smartcity.broker_url import BrokerAddress
from smartcity.contract import commands_topic, status_topic, telemetry_topic

__all__ = [
    "DeviceFactory",
    "FleetPublisher",
    "PublisherStats",
    "run_simulator",
]

log = logging.getLogger(__name__)

_QUEUED = (mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS, mqtt.MQTTErrorCode.MQTT_ERR_NO_CONN)
DeviceFactory = Callable[[DeviceSpec, int], SimulatedDevice]


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
    dropped: int  # refused by the client: its offline queue was full, or offline at QoS 0
    faults: Mapping[str, int] = field(default_factory=dict)  # reports each fault touched

    @property
    def published(self) -> int:
        """Return telemetry and status messages published together."""
        return self.telemetry_published + self.status_published


class FleetPublisher:
    """Run ``specs`` as MQTT devices against a broker; each device reports once per round.

    ``qos`` 0 or 1 applies to every message of the fleet (telemetry and status; the Last Will is
    always QoS 1). ``fmt`` is the payload format; ``faults`` maps fault names to probabilities
    per report; a ``ledger`` records what ingest should store and quarantine from what was sent.
    ``make_device`` builds each device's model (default `SimulatedDevice.create`).
    """

    def __init__(self, specs: Sequence[DeviceSpec], broker: BrokerAddress, *, seed: int,
                 interval_s: float = 10.0, qos: int = 1, fmt: Format = "json",
                 faults: Mapping[str, float] | None = None, ledger: Ledger | None = None,
                 future_window_s: float = 300.0, make_device: DeviceFactory | None = None,
                 keepalive_s: int = 60, devices_per_thread: int = 1000,
                 max_queued_per_device: int = 1000) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        if qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, not {qos}")
        if fmt not in FORMATS:
            raise ValueError(f"payload format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        ids = [spec.device_id for spec in specs]
        if len(set(ids)) != len(ids):
            raise ValueError("device ids in a fleet must be unique")
        self.broker = broker
        self.host, self.port = broker.host, broker.port
        self.interval_s, self.qos, self.fmt = interval_s, qos, fmt
        self.ledger = ledger
        self.injector = FaultInjector(faults, seed, fmt=fmt, expect=ledger is not None,
                                      future_window_s=future_window_s)
        self._cond = threading.Condition()  # counters, connection flags, pending messages
        # Orders each device's retained online/offline: a CONNACK racing stop() must not leave
        # "online" as the last word. Taken before paho's own locks, never inside _cond.
        self._status_lock = threading.Lock()
        self._counts = {"rounds": 0, "telemetry": 0, "status": 0, "acknowledged": 0,
                        "rejected": 0, "dropped": 0}
        self._unacked = 0  # QoS 1 messages not acknowledged yet
        self._waiting = 0  # messages held until their device is back from a dropout
        self._started = self._stopped = False
        # Held while models are sampled: a command is obeyed on a network thread, and a device's
        # generator and state must not be used by two threads at once.
        self._model_lock = threading.Lock()
        self.commands = CommandLog()
        self._actuators = 0  # devices that take commands
        self._listening: set[str] = set()  # those whose subscription is acknowledged, connected
        # One shared, read-only PUBLISH property set per content type: paho only reads it.
        self._properties: dict[str | None, Properties | None] = {None: None}
        if (ctype := content_type(fmt)) is not None:
            self._properties[ctype] = props = Properties(PacketTypes.PUBLISH)
            props.ContentType = ctype
        make = SimulatedDevice.create if make_device is None else make_device
        threads = max(1, math.ceil(len(specs) / max(1, devices_per_thread)))
        self._loops = [NetworkLoop(f"mqtt-sim-{i}", broker, on_resume=self._send_waiting)
                       for i in range(threads)]
        self._devices: list[NetworkDevice] = []
        for index, spec in enumerate(specs):
            device = self._loops[index % threads].add(
                make(spec, seed), status_topic(spec.device_id), keepalive_s=keepalive_s,
                max_queued=max_queued_per_device)
            device.client.on_connect = self._on_connect
            device.client.on_disconnect = self._on_disconnect
            if takes_commands(spec.kind):
                device.client.on_message = self._on_command
                device.client.on_subscribe = self._on_subscribed
                self._actuators += 1
            if qos:
                # Only at QoS 1: paho also reports a QoS 0 message as "published" once written,
                # and the two cannot be told apart there, so a QoS 0 fleet tracks no acks.
                device.client.on_publish = self._on_publish
            self._devices.append(device)
        self._topics = [telemetry_topic(device.device_id) for device in self._devices]

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the network threads; devices connect (and retry) in the background."""
        if self._started:
            return
        self._started = True
        log.info("simulating %d device(s) against %s on %d network thread(s), QoS %d, %s",
                 len(self._devices), self.broker, len(self._loops), self.qos, self.fmt)
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
                # Not to a device in a dropout: it may be cut off any moment, and what it was
                # sent would then wait for a reconnection that never comes. Its will speaks.
                if device.connected and not device.dropout:
                    self._publish(device, status_topic(device.device_id), b"offline", True,
                                  "status")
        with self._cond:  # devices not back from a dropout by now never send what they kept
            for device in self._devices:
                if device.pending:
                    self._counts["dropped"] += len(device.pending)
                    self._waiting -= len(device.pending)
                device.pending = None
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

    def wait_listening(self, timeout: float) -> bool:
        """Wait until every actuator's subscription to its commands topic is acknowledged."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._listening) >= self._actuators, timeout)

    def flush(self, timeout: float) -> bool:
        """Wait until every message published so far is with the broker; tell whether it is.

        At QoS 1 that means acknowledged; at QoS 0, written to the connection.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._unacked <= 0 and self._waiting <= 0, timeout):
                return False
        while self.qos == 0 and any(device.client.want_write() for device in self._devices):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)  # nothing to wait on: paho reports no write completion at QoS 0
        return True

    def stats(self) -> PublisherStats:
        """Return a snapshot of the counters."""
        with self._cond:
            c = self._counts
            return PublisherStats(len(self._devices), self.connected_count, c["rounds"],
                                  c["telemetry"], c["status"], c["acknowledged"], c["rejected"],
                                  c["dropped"], dict(self.injector.counts))

    # publishing --------------------------------------------------------------------------

    def publish_once(self, now: float | None = None) -> int:
        """Publish one report per device for ``now`` (default: the clock); return how many went out.

        A device that is offline keeps its QoS 1 messages queued (up to its limit) and sends them
        when it reconnects, as a real device with a buffer would; at QoS 0 they are dropped.

        Raises:
            RuntimeError: the publisher is not running.
        """
        if not self._started or self._stopped:
            raise RuntimeError("the publisher is not running: call start() first")
        now = time.time() if now is None else now
        times = np.array([now])
        # Sample and encode the whole fleet before publishing anything: while the network
        # threads sleep, numpy does not have to fight them for the GIL.
        with self._model_lock:
            reports = [self._report(device, now, times) for device in self._devices]
        published = 0
        for device, topic, outcome in zip(self._devices, self._topics, reports, strict=True):
            published += self._deliver(device, topic, outcome)
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
            # Short slices: a signal that lands on a network thread only reaches the main thread's
            # handler (which sets the event) once the main thread runs Python code again.
            while (left := min(next_round, deadline) - time.monotonic()) > 0:
                if stop_event.wait(min(0.5, left)):
                    break

    def _report(self, device: NetworkDevice, now: float, times: np.ndarray) -> Report:
        spec = device.sim.spec
        values = {name: float(series[0]) for name, series in device.sim.sample(times).items()}
        return self.injector.report(spec.device_id, spec.kind, now, values)

    def _deliver(self, device: NetworkDevice, topic: str, report: Report) -> int:
        """Carry out one device's report: drop or resume its connection, publish its messages."""
        if report.goes_offline:
            device.dropout = True
            device.loop.drop(device)
            return 0
        with self._cond:
            if report.reconnects or device.pending is not None:
                device.dropout = False
                # Back from a dropout: the backfill and the live report wait for the connection.
                device.pending = (device.pending or []) + report.messages
                self._waiting += len(report.messages)
                if report.reconnects:
                    device.loop.release(device)
                return len(report.messages)
        return sum(self._send(device, topic, message) for message in report.messages)

    def _send(self, device: NetworkDevice, topic: str, message: Message) -> bool:
        sent = self._publish(device, topic, message.payload, False, "telemetry",
                             self._properties[message.content_type])
        if sent and self.ledger is not None:
            self.ledger.record(device.device_id, message)
        return sent

    def _send_waiting(self, device: NetworkDevice) -> None:
        """Send what a device held back during its dropout, once connected (on its network thread)."""
        with self._cond:
            if not device.connected:
                return  # _on_connect sends them
            pending, device.pending = device.pending or [], None
        topic = telemetry_topic(device.device_id)
        for message in pending:
            self._send(device, topic, message)
            with self._cond:  # counted as waiting until _publish counted it as unacknowledged
                self._waiting -= 1
                self._cond.notify_all()

    def _publish(self, device: NetworkDevice, topic: str, payload: bytes, retain: bool,
                 counter: str, properties: Properties | None = None) -> bool:
        tracked = self.qos == 1
        if tracked:
            with self._cond:  # before publishing: the PUBACK may arrive before publish returns
                self._unacked += 1
                device.unacked += 1
        info = device.client.publish(topic, payload, qos=self.qos, retain=retain,
                                     properties=properties)
        # At QoS 1 paho queues what it cannot send now; at QoS 0 "no connection" means lost.
        sent = info.rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS or (tracked and info.rc in _QUEUED)
        with self._cond:
            if sent:
                self._counts[counter] += 1
                return True
            if tracked:
                self._unacked -= 1
                device.unacked -= 1
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
            if takes_commands(device.sim.spec.kind):
                client.subscribe(commands_topic(device.device_id), qos=1)
        if device.pending is not None:
            self._send_waiting(device)

    def _on_disconnect(self, client: mqtt.Client, device: NetworkDevice,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        with self._cond:
            self._listening.discard(device.device_id)  # it subscribes again when back
            was_connected, device.connected = device.connected, False
            self._cond.notify_all()
        if was_connected and not device.closing and not device.held:  # a dropout is no news
            device.loop.note_lost(str(reason_code))

    def _on_command(self, client: mqtt.Client, device: NetworkDevice,
                    message: mqtt.MQTTMessage) -> None:
        """Obey a command and report the new state at once; ignore (and log) a bad one."""
        spec = device.sim.spec
        command, reason, detail = parse_command(message.payload, spec.kind)
        if command is None:
            self.commands.ignored_command(spec.device_id, reason, detail)
            return
        if self._stopped:
            return
        now = time.time()
        with self._model_lock:
            obey(device.sim.state, command, spec.site_id, now)
            report = self._report(device, now, np.array([now]))
        self._deliver(device, telemetry_topic(spec.device_id), report)

    def _on_subscribed(self, client: mqtt.Client, device: NetworkDevice, mid: int,
                       reason_codes: list[mqtt.ReasonCode], properties: Properties | None) -> None:
        if any(code.is_failure for code in reason_codes):
            log.warning("device %s may not hear its commands: %s", device.device_id, reason_codes)
            return
        with self._cond:
            self._listening.add(device.device_id)
            self._cond.notify_all()

    def _on_publish(self, client: mqtt.Client, device: NetworkDevice, mid: int,
                    reason_code: mqtt.ReasonCode, properties: Properties) -> None:
        with self._cond:
            self._unacked -= 1
            device.unacked -= 1
            self._counts["acknowledged"] += 1
            if reason_code.is_failure:
                self._counts["rejected"] += 1
            self._cond.notify_all()


def run_simulator(specs: Sequence[DeviceSpec], broker: BrokerAddress, interval_s: float,
                  seed: int, duration_s: float | None = None,
                  stop_event: threading.Event | None = None, *, qos: int = 1,
                  fmt: Format = "json", faults: Mapping[str, float] | None = None,
                  ledger: Ledger | None = None, make_device: DeviceFactory | None = None,
                  ) -> PublisherStats:
    """Run ``specs`` against the broker until ``stop_event`` is set or ``duration_s`` passes.

    ``qos``, ``fmt``, ``faults``, ``ledger`` and ``make_device`` are `FleetPublisher`'s.
    """
    stop = threading.Event() if stop_event is None else stop_event
    publisher = FleetPublisher(specs, broker, seed=seed, interval_s=interval_s, qos=qos,
                               fmt=fmt, faults=faults, ledger=ledger, make_device=make_device)
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
    log.info("simulator published %d message(s), %d acknowledged; faults %s", stats.published,
             stats.acknowledged, {name: n for name, n in stats.faults.items() if n} or "none")
    return stats
