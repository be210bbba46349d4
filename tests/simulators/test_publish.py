"""The fleet publisher against a real Mosquitto: status, telemetry, QoS, formats, clean stop,
reconnection with resend, and dropouts that fire the Last Will.

The broker wants logins: every simulated device is registered with credentials of its own, as
`smartcity up` registers the demo fleet, and the recorder listens with an ingest account.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime

import orjson
import paho.mqtt.client as mqtt
import pytest

from ingest.decode import decode_payload
from simulators.encode import Format
from simulators.faults import Ledger
from simulators.fleet import DeviceSpec, build_fleet
from simulators.publish import FleetPublisher, run_simulator
from smartcity.broker_url import BrokerAddress, apply_address, parse_broker_url
from smartcity.catalog import DEVICE_KINDS, METRICS
from smartcity.contract import (
    SENML_CONTENT_TYPE,
    STATUS_FILTER,
    TELEMETRY_FILTER,
    classify_topic,
    status_topic,
)
from smartcity.services import EmbeddedMosquitto
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until

KINDS = ["air_quality_station", "weather_station", "river_level_sensor", "street_light",
         "water_meter"]


class Recorder:
    """A real MQTT subscriber that keeps every device message it receives."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client
        self._lock = threading.Lock()
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()

    def on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def telemetry(self) -> dict[str, list[dict[str, object]]]:
        """Return the decoded telemetry payloads received, per device."""
        received: dict[str, list[dict[str, object]]] = {}
        with self._lock:
            for msg in self.messages:
                ref = classify_topic(msg.topic)
                if ref is not None and ref.channel == "telemetry":
                    received.setdefault(ref.device_id, []).append(orjson.loads(msg.payload))
        return received

    def raw_telemetry(self) -> list[tuple[str, bytes, str | None, int]]:
        """Return (device id, payload, content type, QoS) of each telemetry message received."""
        with self._lock:
            messages = list(self.messages)
        received = []
        for msg in messages:
            ref = classify_topic(msg.topic)
            if ref is not None and ref.channel == "telemetry":
                ctype = getattr(msg.properties, "ContentType", None)
                received.append((ref.device_id, msg.payload, ctype, msg.qos))
        return received

    def readings(self) -> dict[tuple[str, str, int], float]:
        """Return every reading received, decoded as ingest decodes it, keyed like the ledger."""
        return {(device_id, obs.metric, round(obs.time * 1000)): float(obs.value)
                for device_id, payload, ctype, _ in self.raw_telemetry()
                for obs in decode_payload(payload, ctype).observations}

    def status_history(self, device_id: str) -> list[str]:
        """Return every status ``device_id`` announced, in order of arrival."""
        with self._lock:
            return [msg.payload.decode() for msg in self.messages
                    if msg.topic == status_topic(device_id) and msg.payload]

    def statuses(self) -> dict[str, tuple[str, bool]]:
        """Return the last status each device published, and whether it came as retained."""
        last: dict[str, tuple[str, bool]] = {}
        with self._lock:
            for msg in self.messages:
                ref = classify_topic(msg.topic)
                if ref is not None and ref.channel == "status" and msg.payload:
                    last[ref.device_id] = (msg.payload.decode(), bool(msg.retain))
        return last


@contextmanager
def recording(login: BrokerAddress) -> Iterator[Recorder]:
    """Yield a subscriber on every device's telemetry and status, subscribed before it returns
    (an ``ingest`` login: the role that may read both)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, login)
    recorder = Recorder(client)
    client.on_message = recorder.on_message
    client.on_subscribe = lambda *args: recorder.subscribed.set()
    client.connect(login.host, login.port)
    client.loop_start()
    try:
        client.subscribe([(TELEMETRY_FILTER, 1), (STATUS_FILTER, 1)])
        wait_until(recorder.subscribed.is_set, message="subscribed")
        yield recorder
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def listener(broker_login: BrokerLogins) -> BrokerAddress:
    """The recorder's login at the session broker."""
    return broker_login("ingest")


@pytest.fixture
def fleet(broker_login: BrokerLogins) -> Iterator[list[DeviceSpec]]:
    """Five registered devices of different kinds with ids and credentials of their own;
    retained statuses cleared after."""
    tag = uuid.uuid4().hex[:6]
    specs = broker_login.fleet([replace(spec, device_id=f"sim{tag}-{spec.device_id}")
                                for spec in build_fleet(len(KINDS), seed=1, kinds=KINDS)])
    gateway = broker_login("gateway")
    yield specs
    with mqtt_publisher(gateway) as client:  # leave the shared broker as we found it
        for spec in specs:
            publish(client, status_topic(spec.device_id), b"", retain=True)


def _assert_valid_observation(spec: DeviceSpec, payload: dict[str, object]) -> None:
    assert set(payload) == {"ts", "metrics"}
    assert isinstance(payload["ts"], str) and payload["ts"].endswith("Z")
    datetime.fromisoformat(payload["ts"])
    metrics = payload["metrics"]
    assert isinstance(metrics, dict)
    assert set(metrics) == set(DEVICE_KINDS[spec.kind].metrics)
    for name, value in metrics.items():
        assert isinstance(value, int | float)
        assert METRICS[name].in_range(value), (name, value)


def _has_status(recorder: Recorder, specs: list[DeviceSpec], status: str) -> bool:
    statuses = recorder.statuses()
    return all(statuses.get(spec.device_id, ("", False))[0] == status for spec in specs)


def test_publisher_runs_devices_with_status_and_one_observation_per_round(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec],
        broker_login: BrokerLogins) -> None:
    assert all(spec.mqtt_username == spec.device_id and spec.mqtt_password for spec in fleet)
    by_id = {spec.device_id: spec for spec in fleet}
    with recording(listener) as recorder:
        publisher = FleetPublisher(fleet, parse_broker_url(mosquitto.url), seed=11, interval_s=1.0)
        publisher.start()
        try:
            assert publisher.wait_connected(10)
            wait_until(lambda: _has_status(recorder, fleet, "online"), message="all online")

            for round_number in (1, 2):
                assert publisher.publish_once() == len(fleet)
                assert publisher.flush(5)
                wait_until(lambda n=round_number: all(
                    len(recorder.telemetry().get(spec.device_id, [])) >= n for spec in fleet),
                    message=f"round {round_number} received")
                counts = Counter({d: len(p) for d, p in recorder.telemetry().items()})
                assert counts == Counter({spec.device_id: round_number for spec in fleet})
            for device_id, payloads in recorder.telemetry().items():
                for payload in payloads:
                    _assert_valid_observation(by_id[device_id], payload)

            # A late subscriber gets the retained status; a login of its own, since the broker
            # binds the client id to the login and would cut the first recorder off.
            with recording(broker_login("ingest")) as late:
                wait_until(lambda: _has_status(late, fleet, "online"), message="retained online")
                assert all(retained for _, retained in late.statuses().values())
        finally:
            publisher.stop()
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")

    with recording(listener) as late:
        wait_until(lambda: _has_status(late, fleet, "offline"), message="retained offline")
    stats = publisher.stats()
    assert (stats.rounds, stats.telemetry_published, stats.status_published) == (2, 10, 10)
    assert stats.acknowledged == stats.published and stats.rejected == stats.dropped == 0
    assert stats.connected == 0


def test_publish_once_needs_a_started_publisher(mosquitto: EmbeddedMosquitto,
                                                fleet: list[DeviceSpec]) -> None:
    publisher = FleetPublisher(fleet, parse_broker_url(mosquitto.url), seed=1)
    with pytest.raises(RuntimeError):
        publisher.publish_once()
    publisher.stop()  # never started: nothing to do


def test_fleet_ids_must_be_unique(mosquitto: EmbeddedMosquitto, fleet: list[DeviceSpec]) -> None:
    with pytest.raises(ValueError):
        FleetPublisher([fleet[0], fleet[0]], parse_broker_url(mosquitto.url), seed=1)


def test_run_simulator_publishes_every_interval_until_the_duration_ends(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec]) -> None:
    with recording(listener) as recorder:
        stats = run_simulator(fleet, parse_broker_url(mosquitto.url), interval_s=0.1, seed=3,
                              duration_s=0.5)
        assert 3 <= stats.rounds <= 7
        assert stats.telemetry_published == stats.rounds * len(fleet)
        assert stats.acknowledged == stats.published
        wait_until(lambda: sum(map(len, recorder.telemetry().values()))
                   == stats.telemetry_published, message="every observation received")
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")


def test_run_simulator_stops_when_the_event_is_set(mosquitto: EmbeddedMosquitto, listener: BrokerAddress,
                                                   fleet: list[DeviceSpec]) -> None:
    stop = threading.Event()
    with recording(listener) as recorder:
        runner = threading.Thread(target=run_simulator, daemon=True, kwargs=dict(
            specs=fleet, broker=parse_broker_url(mosquitto.url), interval_s=0.05, seed=3,
            stop_event=stop))
        runner.start()
        wait_until(lambda: len(recorder.telemetry()) == len(fleet), message="telemetry flowing")
        stop.set()
        runner.join(10)
        assert not runner.is_alive()
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")


def test_devices_reconnect_and_deliver_what_they_queued_after_a_broker_restart(
        fresh_mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins) -> None:
    fleet = broker_login.fleet(build_fleet(4, seed=2), fresh_mosquitto)
    listener = broker_login("ingest", fresh_mosquitto)
    with FleetPublisher(fleet, parse_broker_url(fresh_mosquitto.url), seed=5) as publisher:
        assert publisher.wait_connected(10)
        fresh_mosquitto.stop()
        wait_until(lambda: publisher.connected_count == 0, message="connections lost")
        assert publisher.publish_once() == len(fleet)  # queued by the offline devices
        fresh_mosquitto.start()
        with recording(listener) as recorder:
            assert publisher.wait_connected(15)
            assert publisher.flush(10)  # the queued observations reached the broker
            wait_until(lambda: _has_status(recorder, fleet, "online"), message="online again")
            publisher.publish_once()
            wait_until(lambda: len(recorder.telemetry()) == len(fleet), message="fresh round")
    assert publisher.stats().dropped == 0


class BlackholeProxy:
    """A TCP relay in front of the broker that can swallow what devices send, and cut them off.

    Swallowed messages reach neither the broker nor its subscribers and are never acknowledged:
    only a client that sends them again after reconnecting gets them through.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.swallow = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                device, _ = self._listener.accept()
            except OSError:  # closed
                return
            broker = socket.create_connection(("127.0.0.1", self._upstream_port))
            with self._lock:
                self._sockets += [device, broker]
            for source, target, swallowing in ((device, broker, True), (broker, device, False)):
                thread = threading.Thread(target=self._pump, args=(source, target, swallowing),
                                          daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket, swallowing: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                if not (swallowing and self.swallow):
                    target.sendall(data)

    def cut(self) -> None:
        """Close every relayed connection at once, without a word to either side."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        """Stop relaying and accepting."""
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close does not
        self._listener.close()
        self.cut()
        for thread in self._threads:
            thread.join(5)


def test_unacknowledged_messages_are_sent_again_after_the_connection_is_lost(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec]) -> None:
    proxy = BlackholeProxy(mosquitto.port)
    try:
        with recording(listener) as recorder, \
                FleetPublisher(fleet, BrokerAddress("127.0.0.1", proxy.port), seed=5) as publisher:
            assert publisher.wait_connected(10)
            assert publisher.flush(5)
            proxy.swallow = True
            assert publisher.publish_once() == len(fleet)
            acknowledged = publisher.stats().acknowledged
            assert not publisher.flush(0.3)  # written, swallowed: nothing comes back
            assert publisher.stats().acknowledged == acknowledged
            assert recorder.telemetry() == {}
            proxy.swallow = False
            proxy.cut()
            assert publisher.flush(15)  # reconnected and sent the round again
            wait_until(lambda: len(recorder.telemetry()) == len(fleet), message="resent round")
            assert Counter({d: len(p) for d, p in recorder.telemetry().items()}) \
                == Counter({spec.device_id: 1 for spec in fleet})
    finally:
        proxy.close()
    stats = publisher.stats()
    assert stats.acknowledged == stats.published and stats.dropped == 0


def test_a_qos0_fleet_publishes_and_stops_without_acknowledgements(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec]) -> None:
    with recording(listener) as recorder:
        with FleetPublisher(fleet, parse_broker_url(mosquitto.url), seed=3, qos=0) as publisher:
            assert publisher.wait_connected(10)
            wait_until(lambda: _has_status(recorder, fleet, "online"), message="all online")
            assert publisher.publish_once() == len(fleet)
            assert publisher.flush(5)
            wait_until(lambda: len(recorder.raw_telemetry()) == len(fleet), message="round received")
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")
    assert {qos for _, _, _, qos in recorder.raw_telemetry()} == {0}
    stats = publisher.stats()
    assert (stats.telemetry_published, stats.acknowledged, stats.dropped) == (len(fleet), 0, 0)


@pytest.mark.parametrize("fmt", ["batch", "senml"])
def test_each_payload_format_arrives_as_the_ledger_says_with_the_senml_content_type(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec], fmt: Format) -> None:
    ledger = Ledger()
    with recording(listener) as recorder, FleetPublisher(
            fleet, parse_broker_url(mosquitto.url), seed=3, fmt=fmt, ledger=ledger) as publisher:
        assert publisher.wait_connected(10)
        for _ in range(2):
            publisher.publish_once()
        assert publisher.flush(5)
        wait_until(lambda: recorder.readings() == ledger.readings, message="ledger received")
    received = recorder.raw_telemetry()
    assert len(received) == 2 * len(fleet) == ledger.messages
    assert all(isinstance(orjson.loads(payload), list) for _, payload, _, _ in received)
    expected_type = SENML_CONTENT_TYPE if fmt == "senml" else None
    assert {ctype for _, _, ctype, _ in received} == {expected_type}


def test_a_dropout_fires_the_last_will_then_sends_what_was_kept_in_one_batch(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec]) -> None:
    ledger = Ledger()
    with recording(listener) as recorder, FleetPublisher(
            fleet, parse_broker_url(mosquitto.url), seed=3, faults={"dropout": 1.0},
            ledger=ledger) as publisher:
        assert publisher.wait_connected(10)
        wait_until(lambda: _has_status(recorder, fleet, "online"), message="all online")
        assert publisher.publish_once() == 0  # everyone drops out
        wait_until(lambda: publisher.connected_count == 0, message="all cut off")
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="last wills")
        for _ in range(3):  # a dropout lasts 1-3 reports: everyone is back at least once
            publisher.publish_once()
        assert publisher.flush(10)
        wait_until(lambda: recorder.readings() == ledger.readings, message="backfills received")
        stats = publisher.stats()
    for spec in fleet:
        history = recorder.status_history(spec.device_id)
        assert history[:3] == ["online", "offline", "online"], history
        payloads = [orjson.loads(p) for d, p, _, _ in recorder.raw_telemetry() if d == spec.device_id]
        assert payloads and isinstance(payloads[0], list)  # the backfill comes first, as a batch
    assert stats.faults["dropout"] >= len(fleet) and stats.dropped == 0
    assert ledger.readings and not ledger.quarantined


@pytest.mark.parametrize(("option", "value"), [("qos", 2), ("fmt", "xml"), ("faults", {"typo": 1})])
def test_publisher_options_are_checked(mosquitto: EmbeddedMosquitto, fleet: list[DeviceSpec],
                                       option: str, value: object) -> None:
    with pytest.raises(ValueError):
        FleetPublisher(fleet, parse_broker_url(mosquitto.url), seed=1, **{option: value})


def test_run_simulator_passes_format_faults_and_ledger_on(
        mosquitto: EmbeddedMosquitto, listener: BrokerAddress, fleet: list[DeviceSpec]) -> None:
    ledger = Ledger()
    with recording(listener) as recorder:
        stats = run_simulator(fleet, parse_broker_url(mosquitto.url), interval_s=0.1, seed=3,
                              duration_s=0.3, qos=1, fmt="senml", faults={"duplicate": 1.0},
                              ledger=ledger)
        assert stats.faults["duplicate"] == stats.rounds * len(fleet) > 0
        assert stats.telemetry_published == 2 * stats.rounds * len(fleet) == ledger.messages
        wait_until(lambda: len(recorder.raw_telemetry()) == stats.telemetry_published,
                   message="every message received")
    assert recorder.readings() == ledger.readings
    assert {ctype for _, _, ctype, _ in recorder.raw_telemetry()} == {SENML_CONTENT_TYPE}
