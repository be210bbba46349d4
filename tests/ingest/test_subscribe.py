"""Ingest's subscriptions against a real Mosquitto: how it delivers overlapping subscriptions, and a
worker that hears every device topic once, keeps reading retained status, and stores retained
telemetry once however often it reconnects."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.pipeline import IngestWorker
from ingest.subscribe import STATUS_SUBSCRIPTION, _is_channel, skip_reason
from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.contract import DEVICES_FILTER, STATUS_FILTER, commands_topic, status_topic, telemetry_topic
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto
from tests.ingest.processes import ingest_settings, running_worker
from tests.logins import BrokerLogins, anonymous
from tests.mqtt import mqtt_publisher, publish
from tests.services import wait_until


def _message(topic: str, *, retain: bool = False, ids: list[int] | None = None) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(topic=topic.encode())
    message.retain = retain
    if ids is not None:
        message.properties = Properties(PacketTypes.PUBLISH)
        message.properties.SubscriptionIdentifier = ids
    return message


# An identifier only a probe gives its wide subscription, to show which copy came through which.
WIDE = 1


@pytest.mark.parametrize(("topic", "retain", "ids", "shared", "expected"), [
    # One wide subscription (no share group): every copy is the only one.
    (telemetry_topic("aq-01"), False, None, False, None),
    (telemetry_topic("aq-01"), True, None, False, "retained"),  # sent again on subscribe
    (status_topic("aq-01"), True, None, False, None),  # retained status is wanted
    (status_topic("aq-01"), False, None, False, None),
    ("smartcity/v1/devices/aq-01/telemetyr", False, None, False, None),  # → invalid_topic
    ("smartcity/v1/devices/aq-01/x/status", False, None, False, None),  # not a status
    ("smartcity/v1/devices/aq-01/telemetyr", True, None, False, "retained"),
    (commands_topic("sl-01"), False, None, False, "commands"),
    # A share group: status also comes through the plain status subscription, marked by its id.
    (telemetry_topic("aq-01"), False, None, True, None),
    (status_topic("aq-01"), True, [STATUS_SUBSCRIPTION], True, None),
    (status_topic("aq-01"), False, [STATUS_SUBSCRIPTION], True, None),
    (status_topic("aq-01"), False, None, True, "duplicate"),  # the shared copy
    (status_topic("aq-01"), False, [WIDE, STATUS_SUBSCRIPTION], True, None),  # one copy for both
    (commands_topic("sl-01"), False, None, True, "commands"),
])
def test_which_copies_are_handed_on(topic: str, retain: bool, ids: list[int] | None, shared: bool,
                                    expected: str | None) -> None:
    assert skip_reason(_message(topic, retain=retain, ids=ids), shared=shared) == expected


@pytest.mark.parametrize("topic", [
    "smartcity/v1/devices/a/status", "smartcity/v1/devices//status", "smartcity/v1/devices/a/b/status",
    "smartcity/v1/devices/status", "smartcity/v1/devices/astatus", "smartcity/v1/devices/a/xstatus",
    "smartcity/v1/devices/a/status/x", "smartcity/v1/devices/a/commands", "x/smartcity/v1/devices/a/status",
    "smartcity/v1/devices/a/telemetry", "smartcity/v1/devices/a/", "smartcity/v1/devices/a/commandsx",
])
@pytest.mark.parametrize("channel", ["status", "commands"])
def test_the_fast_channel_test_matches_like_the_broker(topic: str, channel: str) -> None:
    assert _is_channel(topic, channel) == mqtt.topic_matches_sub(f"smartcity/v1/devices/+/{channel}", topic)


@contextmanager
def _listener(login: BrokerAddress, share: str) -> Iterator[queue.Queue[mqtt.MQTTMessage]]:
    """A client subscribed the way ingest is: wide without retained, status with them."""
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    acks: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    apply_address(client, login)
    client.on_message = lambda c, userdata, message: received.put(message)
    client.on_subscribe = lambda c, userdata, mid, codes, props: acks.put(mid)
    client.connect(login.host, login.port)
    client.loop_start()
    try:
        for topic, handling, identifier in (
            (share + DEVICES_FILTER, SubscribeOptions.RETAIN_DO_NOT_SEND, WIDE),
            (STATUS_FILTER, SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE, STATUS_SUBSCRIPTION),
        ):
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = identifier
            client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=handling),
                             properties=props)
            acks.get(timeout=5)
        yield received
    finally:
        client.disconnect()
        client.loop_stop()


def _drain(received: queue.Queue[mqtt.MQTTMessage], count: int) -> list[tuple[str, bytes, bool, list[int]]]:
    out = []
    for _ in range(count):
        m = received.get(timeout=5)
        out.append((m.topic, m.payload, bool(m.retain), sorted(m.properties.SubscriptionIdentifier)))
    return sorted(out)


@dataclass(frozen=True)
class Probe:
    """Who publishes for the devices and who listens as ingest does, and whether the broker has ACLs."""

    publisher: BrokerAddress
    listener: BrokerAddress
    acl: bool


@pytest.fixture(params=["platform", "no-acl"])
def probe(request: pytest.FixtureRequest, broker_login: BrokerLogins) -> Probe:
    """The platform's broker (a gateway and an ingest login), or an anonymous one of the user's own."""
    if request.param == "platform":
        broker = request.getfixturevalue("fresh_mosquitto")
        return Probe(broker_login("gateway", broker), broker_login("ingest", broker), acl=True)
    anonymous_broker = anonymous(request.getfixturevalue("anonymous_mosquitto"))
    return Probe(anonymous_broker, anonymous_broker, acl=False)


@pytest.mark.parametrize("share", ["", "$share/g1/"])
def test_mosquitto_sends_one_copy_per_matching_subscription_each_with_its_identifier(
        probe: Probe, share: str) -> None:
    device = f"probe-{uuid.uuid4().hex[:6]}"
    with mqtt_publisher(probe.publisher) as device_client:
        publish(device_client, status_topic(device), b"online", retain=True)
        publish(device_client, telemetry_topic(device), b"retained-telemetry", retain=True)
        with _listener(probe.listener, share) as received:
            # On subscribe: the retained status through the status subscription only; the
            # retained telemetry not at all (retain handling 2 on the wide subscription).
            assert _drain(received, 1) == [(status_topic(device), b"online", True, [STATUS_SUBSCRIPTION])]
            publish(device_client, status_topic(device), b"offline")
            publish(device_client, telemetry_topic(device), b"live")
            assert _drain(received, 3) == [
                (status_topic(device), b"offline", False, [WIDE]),
                (status_topic(device), b"offline", False, [STATUS_SUBSCRIPTION]),
                (telemetry_topic(device), b"live", False, [WIDE]),
            ]
            publish(device_client, "smartcity/v1/devices/" + device + "/telemetyr", b"{}")
            if not probe.acl:  # the platform's broker refuses it: no channel of the contract
                assert _drain(received, 1)[0][0].endswith("/telemetyr")  # the wide filter hears it
            with pytest.raises(queue.Empty):
                received.get(timeout=0.3)  # nothing else: no third copy, no late retained one


def _count(db: psycopg.Connection, sql: str, *params: object) -> int:
    row = db.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("share_group", ["", "g"])
def test_retained_telemetry_is_stored_once_across_reconnects(
        database_url: str, db: psycopg.Connection, fresh_mosquitto: EmbeddedMosquitto,
        broker_login: BrokerLogins, share_group: str) -> None:
    register_device(db, "aq-retained-01", "air_quality_station", "kuaro")
    register_device(db, "aq-retained-02", "air_quality_station", "kuaro")
    # One ingest account, so one client id, throughout: each worker below resumes the same
    # persistent session, as a restarted `smartcity ingest` does. (Restarting the worker rather
    # than the broker: its clean disconnect carries every ack, so no unacked message is
    # redelivered and muddies the count.)
    login, gateway = broker_login("ingest", fresh_mosquitto), broker_login("gateway", fresh_mosquitto)
    settings = ingest_settings(login, share_group=share_group, batch_max_age_ms=20)

    def running() -> AbstractContextManager[IngestWorker]:
        return running_worker(database_url, login, settings)

    with running() as worker:
        with mqtt_publisher(gateway) as device:
            publish(device, status_topic("aq-retained-01"), b"online", retain=True)
            # No ts: stored at receive time, so a redelivery would be a second reading.
            publish(device, telemetry_topic("aq-retained-01"), b'{"metrics": {"pm25": 9.5}}', retain=True)
            publish(device, telemetry_topic("aq-retained-02"), b"{not json", retain=True)
        wait_until(lambda: worker.counters.messages >= 3, message="three messages stored")
        # Shared: the live status also came through the shared subscription, a copy not taken.
        assert worker.subscriber.skipped["duplicate"] == (1 if share_group else 0)
    assert _count(db, "SELECT count(*) FROM readings") == 1
    assert _count(db, "SELECT count(*) FROM quarantine") == 1
    db.execute("UPDATE devices SET status = 'unknown'")

    for _ in range(3):
        with running() as worker:
            # The retained status comes back on every subscribe: a restarted worker knows it ...
            wait_until(lambda w=worker: w.counters.messages >= 1, message="retained status read")
            assert worker.counters.messages == 1
            # The retained telemetry is sent again on subscribe and recognised (one subscription),
            # or never sent (a shared one gets no retained messages).
            wait_until(lambda w=worker: w.subscriber.skipped["retained"] == (0 if share_group else 2),
                       message="retained telemetry recognised")
            exported = worker.metrics.registry.get_sample_value(
                "smartcity_ingest_skipped_total", {"reason": "retained"})
            assert (exported or 0) == worker.subscriber.skipped["retained"]  # what Prometheus sees
        assert _count(db, "SELECT count(*) FROM devices WHERE status = 'online'") == 1
        db.execute("UPDATE devices SET status = 'unknown'")

    # ... while the retained telemetry and the retained invalid message are not stored again.
    assert _count(db, "SELECT count(*) FROM readings") == 1
    assert _count(db, "SELECT count(*) FROM quarantine") == 1
