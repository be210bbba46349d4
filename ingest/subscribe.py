"""The MQTT side of ingest: a persistent-session v5 subscriber that acks only when told to.

Knows topics and delivery, not payloads. QoS 1 messages are handed on un-acked; the pipeline
calls ``ack`` after the batch holding them is committed. With a fixed client id, a persistent
session and manual acks, a crashed worker's unacked messages are redelivered on reconnect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.batch import InboundMessage
from smartcity.contract import STATUS_FILTER, TELEMETRY_FILTER

__all__ = ["Subscriber"]

log = logging.getLogger(__name__)


class Subscriber:
    """Subscribe to telemetry (shared among workers) and status; pass messages to ``deliver``."""

    def __init__(self, host: str, port: int, *, client_id: str, share_group: str,
                 receive_maximum: int, session_expiry_s: int,
                 deliver: Callable[[InboundMessage], None]) -> None:
        self._host, self._port = host, port
        self._deliver = deliver
        self._share_group = share_group
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self.connected = False
        self.session = 0  # bumped on every (re)connect
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=mqtt.MQTTv5, manual_ack=True,
        )
        # Come back fast after a broker restart: until we resubscribe, a shared subscription
        # (not restored by Mosquitto) has no member to queue for.
        client.reconnect_delay_set(min_delay=0.25, max_delay=30)
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
            self._host, self._port, keepalive=30, clean_start=False, properties=props
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect (the broker keeps the session and any unacked messages) and stop the loop."""
        self.connected = False  # an expected disconnect: not worth a warning
        self._client.disconnect()
        self._client.loop_stop()

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
            log.error("broker %s:%d refused the connection: %s", self._host, self._port, reason_code)
            return
        self.session += 1
        self.connected = True
        log.info("connected to broker %s:%d (session present: %s)",
                 self._host, self._port, flags.session_present)
        # Telemetry is shared so N workers split it; status is not, because shared subscriptions
        # get no retained messages and every worker may apply a status change (it is idempotent).
        client.subscribe([
            (f"$share/{self._share_group}/{TELEMETRY_FILTER}" if self._share_group
             else TELEMETRY_FILTER, 1),
            (STATUS_FILTER, 1),
        ])

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        if self.connected:
            log.warning("disconnected from broker %s:%d: %s", self._host, self._port, reason_code)
        self.connected = False

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        content_type = getattr(message.properties, "ContentType", None)
        self._deliver(InboundMessage(
            message.topic, message.payload, time.time(), message.mid, message.qos, content_type,
            self.session,
        ))
