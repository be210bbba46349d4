"""Alert messages on MQTT: the retained current state of a rule at a site, QoS 1, read by a
``monitor`` login; a broker that is down delays the messages, and a crash between judging and
publishing publishes once after the restart."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from simulators.fleet import DeviceSpec
from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.contract import alert_topic
from smartcity.services import EmbeddedMosquitto
from tests.alerts.conftest import Clock, Evaluator
from tests.alerts.history import register, store
from tests.logins import BrokerLogins
from tests.services import wait_until

START = datetime(2026, 9, 1, tzinfo=UTC)
SITE = "tanah-grogot"
STATIONS = [DeviceSpec(f"ws-alert-{n}", "weather_station", SITE, -1.9, 116.2) for n in ("a", "b")]


def rules(rule_id: str) -> str:
    return f"""
version: 1
rules:
  - id: {rule_id}
    kind: silence
    title: Stasiun cuaca diam
    severity: warning
    select: {{devices: [ws-alert-a, ws-alert-b]}}
    after: 30m
"""


class Listener:
    """A subscriber to smartcity/v1/alerts/# that keeps every message it gets."""

    def __init__(self) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()

    def on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(m.payload) for m in self.messages if m.topic == topic]


@contextmanager
def listening(address: BrokerAddress) -> Iterator[Listener]:
    listener = Listener()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, address)
    subscribed = threading.Event()
    client.on_message = listener.on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        client.subscribe("smartcity/v1/alerts/#", qos=1)
        assert subscribed.wait(5), "no SUBACK"
        yield listener
    finally:
        client.disconnect()
        client.loop_stop()


def history(url: str) -> None:
    """ws-alert-a stops at 01:00 for good; ws-alert-b stops at 01:00 and resumes at 03:00."""
    register(url, STATIONS, START - timedelta(hours=1))
    store(url, STATIONS, START, START + timedelta(hours=1), 60.0)
    store(url, STATIONS[1:], START + timedelta(hours=3), START + timedelta(hours=4), 60.0)


def test_retained_current_state_for_a_monitor(alerts_url: str, evaluator: Evaluator,
                                              broker_login: BrokerLogins) -> None:
    history(alerts_url)
    rule_id = f"silent-{uuid.uuid4().hex[:8]}"  # the session broker keeps retained messages
    topic = alert_topic(SITE, rule_id)
    clock = Clock(START + timedelta(minutes=30))
    service = evaluator(rules(rule_id), clock, broker=broker_login("alerts"))
    assert service.publisher is not None and service.publisher.wait_connected(5)
    service.cycle()
    clock.now = START + timedelta(hours=2)  # both silent: two devices of one site firing
    assert service.cycle().published == 2
    with listening(broker_login("monitor")) as listener:
        state = wait_until(lambda: listener.on(topic), message="the retained state")[-1]
    assert state["state"] == "firing" and state["rule_id"] == rule_id and state["site_id"] == SITE
    assert state["title"] == "Stasiun cuaca diam" and state["severity"] == "warning"
    assert sorted(a["device_id"] for a in state["active"]) == ["ws-alert-a", "ws-alert-b"]
    assert state["active"][0]["fired_at"].endswith("Z")
    clock.now = START + timedelta(hours=4, minutes=10)  # b resumed: resolved; a still silent
    with listening(broker_login("monitor")) as listener:
        assert service.cycle().published == 1
        live = wait_until(lambda: [m for m in listener.messages if not m.retain], message="the live message")
    assert live[0].qos == 1
    state = json.loads(live[0].payload)
    assert state["transition"]["transition"] == "resolved"
    assert state["transition"]["device_id"] == "ws-alert-b"
    assert state["state"] == "firing" and [a["device_id"] for a in state["active"]] == ["ws-alert-a"]
    with psycopg.connect(alerts_url) as conn:
        unpublished = "SELECT count(*) FROM alert_transitions WHERE published_at IS NULL"
        assert conn.execute(unpublished).fetchone() == (0,)


def test_broker_down_delays_and_a_crash_before_publishing_loses_nothing(
        alerts_url: str, evaluator: Evaluator, broker_login: BrokerLogins,
        fresh_mosquitto: EmbeddedMosquitto) -> None:
    history(alerts_url)
    rule_id = "silent-weather"
    address = broker_login("alerts", fresh_mosquitto)
    monitor = broker_login("monitor", fresh_mosquitto)
    clock = Clock(START + timedelta(hours=2))
    crashed = evaluator(rules(rule_id), clock, broker=address)
    crashed.judge()  # judged and stored, then "crashed" before publishing
    crashed.close()
    with psycopg.connect(alerts_url, autocommit=True) as conn:
        unpublished = "SELECT count(*) FROM alert_transitions WHERE published_at IS NULL"
        assert conn.execute(unpublished).fetchone() == (2,)
        restarted = evaluator(rules(rule_id), clock, broker=address)
        assert restarted.publisher is not None and restarted.publisher.wait_connected(5)
        with listening(monitor) as listener:
            assert restarted.cycle().published == 2  # nothing judged again, both sent once
            wait_until(lambda: len(listener.messages) == 2, message="two messages")
        assert conn.execute(unpublished).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM alert_transitions").fetchone() == (2,)

        fresh_mosquitto.stop()
        clock.now = START + timedelta(hours=4, minutes=10)
        cycle = restarted.cycle()  # ws-alert-b resolved while the broker is down
        assert cycle.published == 0
        assert conn.execute(unpublished).fetchone() == (1,)
        fresh_mosquitto.start()
        assert restarted.publisher.wait_connected(30)
        with listening(monitor) as listener:
            wait_until(lambda: restarted.cycle().published == 1 or
                       conn.execute(unpublished).fetchone() == (0,), timeout=30, message="published later")
            assert conn.execute(unpublished).fetchone() == (0,)
            messages = wait_until(lambda: listener.on(alert_topic(SITE, rule_id)), message="message")
        assert messages[-1]["transition"]["transition"] == "resolved"
