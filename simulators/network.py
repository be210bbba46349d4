"""Drive many MQTT client connections from one thread, through paho's external-event-loop API.

``loop_start()`` costs a thread per client; a simulated fleet of thousands needs thousands of
connections (the broker ties credentials, ACLs and the Last Will to a connection) but not
thousands of threads. A `NetworkLoop` serves many clients with one selector: it registers each
socket paho opens, reads when readable, writes when paho has output queued, runs ``loop_misc``
for keepalives, and (re)connects with jittered exponential backoff. Connection state changes
(connect, reconnect, disconnect) happen only on the loop's thread; other threads may only
publish, which queues packets (paho allows it), and the socket callback wakes the loop, or ask
for a dropout (`drop`, `release`), which the loop carries out.
"""

from __future__ import annotations

import logging
import math
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt

from simulators.fleet import SimulatedDevice
from smartcity.broker_url import BrokerAddress, apply_address

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

    from simulators.faults import Message

__all__ = ["MIN_BACKOFF_S", "NetworkDevice", "NetworkLoop"]

log = logging.getLogger(__name__)

# paho's TCP connect blocks the network thread; a short timeout bounds the stall an unreachable
# broker causes (a refused connection returns at once).
_CONNECT_TIMEOUT_S = 2.0
_TICK_S = 0.2  # how often the thread looks for devices due a (re)connection attempt
_MISC_S = 1.0  # keepalive bookkeeping (loop_misc) period
_CONNECTS_PER_TICK = 200  # spread a big fleet's connects so the broker is not hit all at once
MIN_BACKOFF_S, _MAX_BACKOFF_S = 1.0, 30.0
_FAILURE_LOG_S = 30.0
_DROP_WAIT_S = 5.0  # longest a dropout waits for the device's messages to be acknowledged
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class NetworkDevice:
    """One simulated device and its MQTT client, owned by one network thread."""

    __slots__ = ("backoff", "client", "closing", "connected", "dropout", "events", "held", "loop",
                 "next_attempt", "pending", "sim", "sock", "unacked")

    def __init__(self, sim: SimulatedDevice, client: mqtt.Client, loop: NetworkLoop) -> None:
        self.sim = sim
        self.client = client
        self.loop = loop
        self.sock: SocketLike | None = None
        self.events = 0  # what the selector watches the socket for
        self.connected = False
        self.closing = False
        self.next_attempt = 0.0
        self.backoff = MIN_BACKOFF_S
        self.dropout = False  # the publisher put it in a dropout (set and read by the publisher)
        self.held = False  # cut off for a dropout: stay offline until released
        self.unacked = 0  # QoS 1 messages the broker has not acknowledged yet
        self.pending: list[Message] | None = None  # what to send once back from a dropout

    @property
    def device_id(self) -> str:
        """Return the device's id (also its MQTT client id)."""
        return self.sim.spec.device_id


class NetworkLoop:
    """A thread that drives the sockets of many MQTT clients with one selector."""

    def __init__(self, name: str, broker: BrokerAddress,
                 on_resume: Callable[[NetworkDevice], None] = lambda device: None) -> None:
        self.devices: list[NetworkDevice] = []
        # Called on this thread when a dropout ends before its connection was cut: the device
        # never went away, so no CONNACK will announce its return.
        self._on_resume = on_resume
        self._commands: deque[tuple[bool, NetworkDevice]] = deque()  # (drop?, device)
        self._dropping: dict[NetworkDevice, float] = {}  # device → when to cut it even if busy
        self._broker = broker
        self._host, self._port = broker.host, broker.port
        self._selector = selectors.DefaultSelector()
        # The self-pipe that wakes select(); opened by start(): an unstarted loop holds no sockets.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        # One wake-up byte in flight is enough: a publishing round queues thousands of packets,
        # and a syscall per packet would cost more than the publishing itself.
        self._wake_pending = False
        self._ready: deque[NetworkDevice] = deque()
        self._sweep = False
        self._closing = False
        self._close_deadline = math.inf
        self._last_failure_log = -math.inf
        self._lost, self._lost_reason = 0, ""  # lost connections since the last report
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def add(self, sim: SimulatedDevice, will_topic: str, *, keepalive_s: int,
            max_queued: int) -> NetworkDevice:
        """Serve ``sim`` as an MQTT v5 client with a retained ``offline`` will on ``will_topic``.

        It connects once the thread runs; the caller sets the client's message callbacks.
        """
        spec = sim.spec
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=spec.device_id,
                             protocol=mqtt.MQTTv5)
        device = NetworkDevice(sim, client, self)
        client.user_data_set(device)
        client.will_set(will_topic, b"offline", qos=1, retain=True)
        # A registered device logs in as itself (the broker may bind its topics to that login);
        # one without credentials of its own uses the URL's. TLS comes from the URL either way.
        if spec.mqtt_username is not None:
            client.username_pw_set(spec.mqtt_username, spec.mqtt_password)
        apply_address(client, self._broker, credentials=spec.mqtt_username is None)
        client.max_queued_messages_set(max_queued)
        client.connect_timeout = _CONNECT_TIMEOUT_S
        client.on_socket_open = self.socket_opened
        client.on_socket_close = self.socket_closed
        client.on_socket_register_write = self.socket_wants_write
        client.connect_async(self._host, self._port, keepalive=keepalive_s)  # no I/O until reconnect
        self.devices.append(device)
        return device

    def start(self) -> None:
        """Open the wake-up socket pair and start the thread; it connects the devices."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, _READ, None)
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Disconnect every device cleanly (no Last Will) within ``timeout``; end the thread."""
        if self._wake_r is None or self._wake_w is None:  # never started
            self._selector.close()
            return
        self._close_deadline = time.monotonic() + timeout
        self._closing = True
        self.wake()
        self._thread.join(timeout + 1.0)
        if self._thread.is_alive():
            log.error("network thread %s did not stop", self._thread.name)
            return
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def wake(self, device: NetworkDevice | None = None) -> None:
        """Make the thread look at ``device`` (it has packets to send), or just loop once more."""
        if device is not None:
            self._ready.append(device)  # before the flag test: see _drain_wake
        if self._wake_pending or self._wake_w is None:
            return
        self._wake_pending = True
        with suppress(OSError):  # closed: we are stopping
            self._wake_w.send(b"\0")

    def drop(self, device: NetworkDevice) -> None:
        """Cut ``device``'s connection without a DISCONNECT (its Last Will fires); keep it offline.

        The cut waits until the device has sent what it was holding back, and its messages are
        written and acknowledged (up to ``_DROP_WAIT_S``): a cut with a QoS 1 message in flight
        would make paho send it again after reconnecting, and ingest would see it twice.
        """
        self._commands.append((True, device))
        self.wake()

    def release(self, device: NetworkDevice) -> None:
        """End ``device``'s dropout: it reconnects (or, never cut, resumes at once)."""
        self._commands.append((False, device))
        self.wake()

    def request_sweep(self) -> None:
        """Make the thread check every device for pending output (after a publishing round)."""
        self._sweep = True
        self.wake()

    # paho socket callbacks; paho calls open/close from this thread (connect, read, write).
    def socket_opened(self, client: mqtt.Client, device: NetworkDevice, sock: SocketLike) -> None:
        """Watch a device's new socket for reading."""
        self._selector.register(sock, _READ, device)
        device.sock, device.events = sock, _READ

    def socket_closed(self, client: mqtt.Client, device: NetworkDevice, sock: SocketLike) -> None:
        """Stop watching a socket paho is about to close."""
        with suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        device.sock, device.events = None, 0

    def socket_wants_write(self, client: mqtt.Client, device: NetworkDevice,
                           sock: SocketLike) -> None:
        """Schedule a device with queued output for writing."""
        self.wake(device)  # may run on the publishing thread: hand over, touch no selector here

    def _run(self) -> None:
        next_tick = next_misc = 0.0
        while True:
            now = time.monotonic()
            if self._closing and self._close_devices(now):
                break
            if now >= next_tick:
                self._connect_due(now)
                next_tick = now + _TICK_S
            for key, mask in self._selector.select(timeout=_TICK_S):
                if key.data is None:
                    self._drain_wake()
                else:
                    self._service(key.data, mask)
            while self._ready:
                # Write at once rather than wait for select to report the socket writable: it
                # nearly always is, and that spares two epoll changes per device and round.
                self._service(self._ready.popleft(), _WRITE)
            while self._commands:
                self._command(*self._commands.popleft())
            if self._dropping:
                self._cut_quiet(now)
            misc = now >= next_misc
            if misc or self._sweep:
                self._sweep = False
                for device in self.devices:
                    if misc and device.sock is not None:
                        self._guarded(device, device.client.loop_misc)
                    self._watch(device)
                if misc:
                    next_misc = now + _MISC_S

    def _service(self, device: NetworkDevice, mask: int) -> None:
        if mask & _READ and device.sock is not None:
            self._guarded(device, device.client.loop_read)
        if mask & _WRITE and device.sock is not None:
            self._guarded(device, device.client.loop_write)
        self._watch(device)

    def _command(self, drop: bool, device: NetworkDevice) -> None:
        if drop:
            self._dropping[device] = time.monotonic() + _DROP_WAIT_S
            return
        device.held = False
        if self._dropping.pop(device, None) is not None:  # never cut: it is still online
            self._on_resume(device)
        else:
            device.next_attempt, device.backoff = 0.0, MIN_BACKOFF_S

    def _cut_quiet(self, now: float) -> None:
        for device, deadline in list(self._dropping.items()):
            busy = device.pending is not None or device.unacked > 0 \
                or (device.sock is not None and device.client.want_write())
            if busy and now < deadline:
                continue
            self._cut(device)

    def _cut(self, device: NetworkDevice) -> None:
        del self._dropping[device]
        device.held = True
        if isinstance(device.sock, socket.socket):  # paho's plain TCP socket, as the devices use
            # shutdown, not close: paho reads end-of-file on its next read and cleans up as
            # for any lost connection; the broker sees no DISCONNECT and sends the Last Will.
            with suppress(OSError):
                device.sock.shutdown(socket.SHUT_RDWR)

    def _guarded(self, device: NetworkDevice, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # one device's failure must not stop the others on this thread
            log.exception("device %s: MQTT client error", device.device_id)

    def _watch(self, device: NetworkDevice) -> None:
        """Watch the device's socket for writability exactly when paho has output queued."""
        if device.sock is None:
            return
        wanted = _READ | (_WRITE if device.client.want_write() else 0)
        if wanted != device.events:
            self._selector.modify(device.sock, wanted, device)
            device.events = wanted

    def note_lost(self, reason: str) -> None:
        """Count a device's lost connection (paho calls on_disconnect on this thread)."""
        self._lost, self._lost_reason = self._lost + 1, reason

    def _connect_due(self, now: float) -> None:
        budget, failed, reason = _CONNECTS_PER_TICK, 0, ""
        for device in self.devices:
            if device.sock is not None or device.closing or device.held or now < device.next_attempt:
                continue
            if budget == 0:
                break
            budget -= 1
            # Jittered exponential backoff, so a restarted broker is not hit by the whole fleet
            # in the same instant.
            device.next_attempt = now + device.backoff * random.uniform(0.5, 1.0)
            device.backoff = min(device.backoff * 2.0, _MAX_BACKOFF_S)
            try:
                device.client.reconnect()
            except OSError as err:
                failed, reason = failed + 1, str(err)
        # One line per thread and period, not one per device: a fleet of thousands fails together.
        if (failed or self._lost) and now - self._last_failure_log >= _FAILURE_LOG_S:
            self._last_failure_log = now
            if self._lost:
                log.warning("%d simulated device(s) lost the broker at %s:%d (%s); reconnecting",
                            self._lost, self._host, self._port, self._lost_reason)
                self._lost = 0
            if failed:
                log.warning("%d simulated device(s) cannot reach the broker at %s:%d (%s); "
                            "retrying", failed, self._host, self._port, reason)

    def _close_devices(self, now: float) -> bool:
        """Ask every device to disconnect; tell whether all sockets are closed or time is up."""
        for device in self.devices:
            if not device.closing:
                device.closing = True
                if device in self._dropping:  # a dropout under way ends as one: the will fires
                    self._cut(device)
                elif device.sock is not None:
                    self._guarded(device, device.client.disconnect)
                    self._watch(device)
        if all(device.sock is None for device in self.devices):
            return True
        if now < self._close_deadline:
            return False
        for device in self.devices:
            if device.sock is not None:  # the broker did not take the DISCONNECT in time
                log.warning("device %s: closing its connection without a clean disconnect",
                            device.device_id)
                sock = device.sock
                self.socket_closed(device.client, device, sock)
                sock.close()
        return True

    def _drain_wake(self) -> None:
        # Cleared before the ready queue is read (after select), so a device queued after this
        # point either is seen in this pass or sends a fresh wake-up byte.
        self._wake_pending = False
        if self._wake_r is None:
            return
        with suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
