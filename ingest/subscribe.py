"""The MQTT side of ingest: a persistent-session v5 subscriber that acks only when told to.

Knows topics and delivery, not payloads. QoS 1 messages are handed on un-acked; the pipeline
calls ``ack`` after the batch holding them is committed. With a fixed client id, a persistent
session and manual acks, a crashed worker's unacked messages are redelivered on reconnect.

One subscription to every device topic, ``smartcity/v1/devices/#``, so a publish to a misspelt
channel is heard (and quarantined as ``invalid_topic``) rather than PUBACKed into the void. Retained
messages come with it on subscribe: a (re)started worker learns every device's current status. A
retained *telemetry* message also comes again on every subscribe; it carries the retain flag only
then (retain-as-published is off), so it is recognised and acked without being handed on — it was
stored when first published. The platform's own ``…/commands`` publishes are acked the same way.

With a share group, the wide subscription is shared (``$share/<group>/…/#``), and shared
subscriptions get no retained messages, so status needs a second, plain subscription. Mosquitto
2.0 then sends a live status message twice, once per matching subscription, each copy carrying
only its own subscription identifier (tests/ingest/test_subscribe.py checks it): status is taken
only from the copy marked with the status subscription's identifier. Only that subscription has
one, because paho parses a PUBLISH's properties in Python: an identifier on every telemetry
message cost ~10 µs each, a quarter of the worker's throughput. A share group therefore needs a
broker with MQTT v5 subscription identifiers (Mosquitto, EMQX and HiveMQ have them).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.batch import InboundMessage
from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.contract import DEVICE_PREFIX, DEVICES_FILTER, STATUS_FILTER

__all__ = ["STATUS_SUBSCRIPTION", "Subscriber", "skip_reason"]

log = logging.getLogger(__name__)

# The status subscription's identifier (MQTT v5 §3.8.2.1.2), in share-group mode only.
STATUS_SUBSCRIPTION = 2


def _is_channel(topic: str, channel: str) -> bool:
    """Tell whether ``topic`` matches ``smartcity/v1/devices/+/<channel>`` (as the broker matches)."""
    # String tests, not paho's topic_matches_sub: this runs for every message (~0.5 µs vs ~3 µs).
    return (topic.startswith(DEVICE_PREFIX) and topic.endswith(channel)
            and topic.count("/", len(DEVICE_PREFIX)) == 1
            and topic[-len(channel) - 1] == "/")


def skip_reason(message: mqtt.MQTTMessage, *, shared: bool = False) -> str | None:
    """Tell why a delivered copy is acked without being handed on, or None to hand it on.

    ``shared``: the wide subscription is shared, so a status message also comes through the plain
    status subscription, whose copy alone is taken.
    """
    topic = message.topic  # decoded on each access: once is enough
    if _is_channel(topic, "status"):
        if shared and STATUS_SUBSCRIPTION not in (
                getattr(message.properties, "SubscriptionIdentifier", None) or ()):
            return "duplicate"
        return None  # retained by design: the current status, read on subscribe
    if message.retain:
        # Only a retained message sent on subscribe has the flag (retain-as-published is off);
        # it was stored when first published, or predates this worker's session.
        return "retained"
    if _is_channel(topic, "commands"):
        return "commands"  # the platform's own commands to actuators, not device input
    return None

class Subscriber:
    """Subscribe to device topics (shared among workers) and status; pass messages to ``deliver``."""

    def __init__(self, broker: BrokerAddress, *, client_id: str, share_group: str,
                 receive_maximum: int, session_expiry_s: int,
                 deliver: Callable[[InboundMessage], None],
                 on_skip: Callable[[str], None] = lambda reason: None) -> None:
        self._broker = broker
        self._deliver = deliver
        self._on_skip = on_skip
        self._share_group = share_group
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self.connected = False
        self.session = 0  # bumped on every (re)connect
        self.refused = 0  # CONNACKs that refused us (bad login, not authorised …)
        # Deliveries acked without being handed on: "retained", "duplicate", "commands".
        self.skipped: Counter[str] = Counter()
        self._retained_logged = 0  # the session in which a skipped retained message was last logged
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=mqtt.MQTTv5, manual_ack=True,
        )
        apply_address(client, broker)
        # Come back fast after a broker restart: until we resubscribe, a shared subscription
        # (not restored by Mosquitto) has no member to queue for.
        client.reconnect_delay_set(min_delay=0.25, max_delay=30)  # type: ignore[arg-type] # paho says int; floats work
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    def start(self) -> None:
        """Connect in the background (retrying until the broker answers) and start receiving."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self._broker.host, self._broker.port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (the broker keeps the session and any unacked messages) and stop the loop."""
        self.connected = False  # an expected disconnect: not worth a warning
        self._client.disconnect()
        self._client.loop_stop()
        # paho closes loop_start's wake-up socket pair only in Client.__del__; when the garbage
        # collector frees a worker (a reference cycle), the sockets may be finalised first and
        # warn as unclosed. Close them now; a later start() opens a new pair.
        self._client._reset_sockets(sockpair_only=True)

    def ack(self, mid: int, qos: int, session: int) -> bool:
        """Acknowledge a stored message to the broker; return False if its connection is gone.

        A packet id is only meaningful on the connection that delivered it: after a reconnect the
        broker redelivers unacked messages (stored again as no-ops) and may reuse old ids for
        new messages, so acking a stale id could acknowledge a message not yet stored.
        """
        if session != self.session:
            return False
        self._client.ack(mid, qos)
        return True

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            # paho keeps retrying with backoff; a wrong password is logged on every refusal, so
            # an operator watching the log sees it at once and the worker recovers once fixed.
            self.refused += 1
            log.error("broker %s refused the connection: %s (check the user and password in "
                      "SMARTCITY_MQTT_URL)", self._broker, reason_code)
            return
        self.session += 1
        self.connected = True
        log.info("connected to broker %s (session present: %s)", self._broker, flags.session_present)
        if not self._share_group:
            client.subscribe(DEVICES_FILTER, options=SubscribeOptions(
                qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE))
            return
        # N workers split the device topics; status is not shared, because shared subscriptions
        # get no retained messages, and every worker may apply a status change (it is idempotent).
        client.subscribe(f"$share/{self._share_group}/{DEVICES_FILTER}", options=SubscribeOptions(
            qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = STATUS_SUBSCRIPTION
        client.subscribe(STATUS_FILTER, options=SubscribeOptions(
            qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE), properties=props)

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        if self.connected:
            log.warning("disconnected from broker %s: %s", self._broker, reason_code)
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        skip = skip_reason(message, shared=bool(self._share_group))
        if skip is not None:
            self.skipped[skip] += 1
            self._on_skip(skip)
            if skip == "retained" and self._retained_logged != self.session:
                self._retained_logged = self.session
                log.warning("skipping retained telemetry on %s (and any more on this connection): "
                            "retained telemetry is stored once, when first published", message.topic)
            client.ack(message.mid, message.qos)
            return
        content_type = getattr(message.properties, "ContentType", None)
        self._deliver(InboundMessage(
            message.topic, bytes(message.payload), time.time(), message.mid, message.qos, content_type,
            self.session,
        ))
