"""The API's one MQTT connection: kept open for the app's lifetime, reported by health.

Commands to actuators (street lights) are published through it. paho runs the network loop
in its own thread and reconnects with capped backoff, so a broker outage only degrades health.
"""

from __future__ import annotations

import logging
import secrets

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from smartcity.broker_url import BrokerAddress, apply_address
from smartcity.settings import Settings

__all__ = ["Broker", "BrokerUnavailable"]

log = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """The broker connection is down, so a message cannot be published now."""


class Broker:
    """An MQTT v5 client that connects in the background and keeps reconnecting."""

    def __init__(self, address: BrokerAddress, *, client_id: str, keepalive_s: int = 30) -> None:
        self.address = address
        self.host, self.port = address.host, address.port
        self._keepalive_s = keepalive_s
        self._failing = False
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
        )
        apply_address(client, address)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client

    @classmethod
    def from_settings(cls, settings: Settings, client_id_prefix: str = "smartcity-api") -> Broker:
        """Build a client for the configured broker (login and TLS from the MQTT URL)."""
        # A random suffix: several API processes may share one broker, and MQTT drops the
        # older of two sessions that use the same client id.
        client_id = f"{client_id_prefix}-{secrets.token_hex(4)}"
        return cls(settings.service_broker("api"), client_id=client_id)

    @property
    def is_connected(self) -> bool:
        """Tell whether the connection to the broker is up right now."""
        return self._client.is_connected()

    def start(self) -> None:
        """Connect in the background, retrying until the broker answers."""
        self._client.connect_async(self.host, self.port, keepalive=self._keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1,
                retain: bool = False) -> None:
        """Queue a message for the broker.

        Raises:
            BrokerUnavailable: the connection is down; nothing was queued.
        """
        # paho would queue while disconnected and send after reconnecting; a command to a
        # street light that arrives minutes late is worse than an error the caller can see.
        if not self.is_connected:
            raise BrokerUnavailable(f"broker {self.host}:{self.port} is not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"broker {self.host}:{self.port}: {mqtt.error_string(info.rc)}")

    def publish_confirmed(self, topic: str, payload: bytes | str, *, timeout_s: float) -> bool:
        """Publish at QoS 1 (not retained) and wait up to ``timeout_s`` for the broker's PUBACK.

        Returns whether the broker acknowledged the message in time; paho keeps trying to deliver
        one that is not acknowledged yet. Blocks: call it from a worker thread.

        Raises:
            BrokerUnavailable: the connection is down; nothing was queued.
        """
        if not self.is_connected:
            raise BrokerUnavailable(f"broker {self.host}:{self.port} is not connected")
        info = self._client.publish(topic, payload, qos=1, retain=False)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"broker {self.host}:{self.port}: {mqtt.error_string(info.rc)}")
        try:
            info.wait_for_publish(timeout_s)
        except RuntimeError:  # the connection dropped while waiting: paho re-sends it on reconnect
            return False
        return info.is_published()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s", self.address, reason_code)
            return
        self._failing = False
        log.info("connected to broker %s", self.address)

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.warning("disconnected from broker %s: %s", self.address, reason_code)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # Once per outage, not once per retry.
        if not self._failing:
            log.warning("cannot reach broker %s; retrying in the background", self.address)
        self._failing = True
