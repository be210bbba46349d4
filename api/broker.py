"""The API's one MQTT connection: kept open for the app's lifetime, reported by health.

Commands to actuators (street lights) are published through it. It is a
`smartcity.mqtt_client.ServiceClient` logged in as the API's broker account, its news logged here.
"""

from __future__ import annotations

import logging
import secrets

from smartcity.broker_url import BrokerAddress
from smartcity.mqtt_client import BrokerUnavailable, ServiceClient
from smartcity.settings import Settings

__all__ = ["Broker", "BrokerUnavailable"]

log = logging.getLogger(__name__)


class Broker(ServiceClient):
    """The API's MQTT v5 client: connects in the background and keeps reconnecting."""

    def __init__(self, address: BrokerAddress, *, client_id: str, keepalive_s: int = 30) -> None:
        super().__init__(address, client_id=client_id, keepalive_s=keepalive_s, log=log,
                         connected_level=logging.INFO)

    @classmethod
    def from_settings(cls, settings: Settings, client_id_prefix: str = "smartcity-api") -> Broker:
        """Build a client for the configured broker (login and TLS from the MQTT URL)."""
        # A random suffix: several API processes may share one broker, and MQTT drops the
        # older of two sessions that use the same client id.
        client_id = f"{client_id_prefix}-{secrets.token_hex(4)}"
        return cls(settings.service_broker("api"), client_id=client_id)
