"""A platform service's own MQTT connection: opened in the background, kept open, reconnecting.

The API sends commands through one (api.broker), the alert evaluator publishes alerts through
one (smartcity.alerts.publish), and `smartcity devices command` opens one for a single command.
paho runs the network loop in its own thread and reconnects with capped backoff, so a broker
outage degrades what needs it and nothing else.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from smartcity.broker_url import BrokerAddress, apply_address

__all__ = ["BrokerUnavailable", "ServiceClient"]


class BrokerUnavailable(RuntimeError):
    """The broker connection is down, so a message cannot be published now."""


class ServiceClient:
    """An MQTT v5 client that connects in the background and keeps reconnecting.

    ``log`` is the logger its connection news goes to (the owning service's, so operators see
    which service lost the broker); a successful connect is logged at ``connected_level``: a
    long-running service says so, a one-shot command (whose output may be JSON) does not.
    """

    def __init__(self, address: BrokerAddress, *, client_id: str, keepalive_s: int = 30,
                 log: logging.Logger | None = None, connected_level: int = logging.DEBUG) -> None:
        self.address = address
        self.host, self.port = address.host, address.port
        self.refused: str | None = None  # the broker's reason when it last refused the login
        self._answered = threading.Event()  # a CONNACK, a refusal or an unreachable broker
        self._keepalive_s = keepalive_s
        self._log = log or logging.getLogger(__name__)
        self._connected_level = connected_level
        self._failing = False
        self._connected = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
        )
        apply_address(client, address)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client

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

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the connection; tell whether it is up."""
        return self._connected.wait(timeout)

    def first_answer(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds for the first attempt's outcome: None once connected,
        else why not (the broker's refusal, an unreachable broker, no answer in time).

        For a one-shot sender that should fail at once rather than keep retrying.
        """
        self._answered.wait(timeout)
        if self.is_connected:
            return None
        if self.refused is not None:
            return f"refused: {self.refused}"
        return "unreachable" if self._failing else "no answer"

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1,
                retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a message for the broker and return paho's handle on it.

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
        return info

    def publish_confirmed(self, topic: str, payload: bytes | str, *, timeout_s: float,
                          retain: bool = False) -> bool:
        """Publish at QoS 1 and wait up to ``timeout_s`` for the broker's PUBACK.

        Returns whether the broker acknowledged the message in time; paho keeps trying to deliver
        one that is not acknowledged yet. Blocks: call it from a worker thread.

        Raises:
            BrokerUnavailable: the connection is down; nothing was queued.
        """
        info = self.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError):  # the connection dropped while waiting: re-sent later
            return False
        return info.is_published()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason_code: mqtt.ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self._answered.set()
            self._log.error("broker %s refused the connection: %s", self.address, reason_code)
            return
        self._failing = False
        self.refused = None
        self._connected.set()
        self._answered.set()
        self._log.log(self._connected_level, "connected to broker %s", self.address)

    def _on_disconnect(self, client: mqtt.Client, userdata: object,
                       flags: mqtt.DisconnectFlags, reason_code: mqtt.ReasonCode,
                       properties: Properties | None) -> None:
        self._connected.clear()
        if reason_code.is_failure:
            self._log.warning("disconnected from broker %s: %s", self.address, reason_code)

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        # Once per outage, not once per retry.
        if not self._failing:
            self._log.warning("cannot reach broker %s; retrying in the background", self.address)
        self._failing = True
        self._answered.set()
