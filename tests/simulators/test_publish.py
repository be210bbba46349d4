"""The fleet publisher against a real Mosquitto: status, telemetry, clean stop, reconnection."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

import orjson
import paho.mqtt.client as mqtt
import pytest

from ingest.topics import STATUS_FILTER, TELEMETRY_FILTER, parse_topic, status_topic
from simulators.fleet import DeviceSpec, build_fleet
from simulators.publish import FleetPublisher, encode_observation, run_simulator
from smartcity.catalog import DEVICE_KINDS, METRICS
from smartcity.services import EmbeddedMosquitto
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
                ref = parse_topic(msg.topic)
                if ref is not None and ref.channel == "telemetry":
                    received.setdefault(ref.device_id, []).append(orjson.loads(msg.payload))
        return received

    def statuses(self) -> dict[str, tuple[str, bool]]:
        """Return the last status each device published, and whether it came as retained."""
        last: dict[str, tuple[str, bool]] = {}
        with self._lock:
            for msg in self.messages:
                ref = parse_topic(msg.topic)
                if ref is not None and ref.channel == "status" and msg.payload:
                    last[ref.device_id] = (msg.payload.decode(), bool(msg.retain))
        return last


@contextmanager
def recording(broker: EmbeddedMosquitto) -> Iterator[Recorder]:
    """Yield a subscriber on every device's telemetry and status, subscribed before it returns."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    recorder = Recorder(client)
    client.on_message = recorder.on_message
    client.on_subscribe = lambda *args: recorder.subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.subscribe([(TELEMETRY_FILTER, 1), (STATUS_FILTER, 1)])
        wait_until(recorder.subscribed.is_set, message="subscribed")
        yield recorder
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def fleet(mosquitto: EmbeddedMosquitto) -> Iterator[list[DeviceSpec]]:
    """Five devices of different kinds with ids of their own; retained statuses cleared after."""
    tag = uuid.uuid4().hex[:6]
    specs = [replace(spec, device_id=f"sim{tag}-{spec.device_id}")
             for spec in build_fleet(len(KINDS), seed=1, kinds=KINDS)]
    yield specs
    with mqtt_publisher(mosquitto) as client:  # leave the shared broker as we found it
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


def test_encode_observation_writes_the_contract_single_observation() -> None:
    payload = encode_observation(1_790_000_000.0, {"lamp_on": 1.0, "lamp_power": 87.12345,
                                                   "energy": 1234.5678949})
    assert payload == (b'{"ts":"2026-09-21T14:13:20.000Z",'
                       b'"metrics":{"lamp_on":1,"lamp_power":87.123,"energy":1234.568}}')


def test_publisher_runs_devices_with_status_and_one_observation_per_round(
        mosquitto: EmbeddedMosquitto, fleet: list[DeviceSpec]) -> None:
    fleet[0] = replace(fleet[0], mqtt_username=fleet[0].device_id, mqtt_password="secret")
    by_id = {spec.device_id: spec for spec in fleet}
    with recording(mosquitto) as recorder:
        publisher = FleetPublisher(fleet, "127.0.0.1", mosquitto.port, seed=11, interval_s=1.0)
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

            with recording(mosquitto) as late:  # a late subscriber gets the retained status
                wait_until(lambda: _has_status(late, fleet, "online"), message="retained online")
                assert all(retained for _, retained in late.statuses().values())
        finally:
            publisher.stop()
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")

    with recording(mosquitto) as late:
        wait_until(lambda: _has_status(late, fleet, "offline"), message="retained offline")
    stats = publisher.stats()
    assert (stats.rounds, stats.telemetry_published, stats.status_published) == (2, 10, 10)
    assert stats.acknowledged == stats.published and stats.rejected == stats.dropped == 0
    assert stats.connected == 0


def test_publish_once_needs_a_started_publisher(mosquitto: EmbeddedMosquitto,
                                                fleet: list[DeviceSpec]) -> None:
    publisher = FleetPublisher(fleet, "127.0.0.1", mosquitto.port, seed=1)
    with pytest.raises(RuntimeError):
        publisher.publish_once()
    publisher.stop()  # never started: nothing to do


def test_fleet_ids_must_be_unique(mosquitto: EmbeddedMosquitto, fleet: list[DeviceSpec]) -> None:
    with pytest.raises(ValueError):
        FleetPublisher([fleet[0], fleet[0]], "127.0.0.1", mosquitto.port, seed=1)


def test_run_simulator_publishes_every_interval_until_the_duration_ends(
        mosquitto: EmbeddedMosquitto, fleet: list[DeviceSpec]) -> None:
    with recording(mosquitto) as recorder:
        stats = run_simulator(fleet, "127.0.0.1", mosquitto.port, interval_s=0.1, seed=3,
                              duration_s=0.5)
        assert 3 <= stats.rounds <= 7
        assert stats.telemetry_published == stats.rounds * len(fleet)
        assert stats.acknowledged == stats.published
        wait_until(lambda: sum(map(len, recorder.telemetry().values()))
                   == stats.telemetry_published, message="every observation received")
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")


def test_run_simulator_stops_when_the_event_is_set(mosquitto: EmbeddedMosquitto,
                                                   fleet: list[DeviceSpec]) -> None:
    stop = threading.Event()
    with recording(mosquitto) as recorder:
        runner = threading.Thread(target=run_simulator, daemon=True, kwargs=dict(
            specs=fleet, host="127.0.0.1", port=mosquitto.port, interval_s=0.05, seed=3,
            stop_event=stop))
        runner.start()
        wait_until(lambda: len(recorder.telemetry()) == len(fleet), message="telemetry flowing")
        stop.set()
        runner.join(10)
        assert not runner.is_alive()
        wait_until(lambda: _has_status(recorder, fleet, "offline"), message="all offline")


def test_devices_reconnect_and_deliver_what_they_queued_after_a_broker_restart(
        fresh_mosquitto: EmbeddedMosquitto) -> None:
    fleet = build_fleet(4, seed=2)
    with FleetPublisher(fleet, "127.0.0.1", fresh_mosquitto.port, seed=5) as publisher:
        assert publisher.wait_connected(10)
        fresh_mosquitto.stop()
        wait_until(lambda: publisher.connected_count == 0, message="connections lost")
        assert publisher.publish_once() == len(fleet)  # queued by the offline devices
        fresh_mosquitto.start()
        with recording(fresh_mosquitto) as recorder:
            assert publisher.wait_connected(15)
            assert publisher.flush(10)  # the queued observations reached the broker
            wait_until(lambda: _has_status(recorder, fleet, "online"), message="online again")
            publisher.publish_once()
            wait_until(lambda: len(recorder.telemetry()) == len(fleet), message="fresh round")
    assert publisher.stats().dropped == 0
