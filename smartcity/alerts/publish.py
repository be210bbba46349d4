"""The MQTT outbox: each stored transition, in id order, as the retained current state of its rule
at its site (``smartcity/v1/alerts/{site_id}/{rule_id}``, QoS 1).

``published_at`` is set only after the broker's PUBACK, so a broker that is down delays the
messages and loses none; a crash between the PUBACK and the update sends one message twice, which
is harmless (the payload is the current state, retained).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from smartcity.alerts.rules import AnyRule
from smartcity.broker_url import BrokerAddress
from smartcity.contract import alert_topic
from smartcity.db.queries.alerts import MARK_PUBLISHED, SELECT_ACTIVE_AT_SITE, SELECT_UNPUBLISHED
from smartcity.mqtt_client import BrokerUnavailable, ServiceClient

__all__ = ["AlertPublisher", "alert_payload", "rfc3339"]

log = logging.getLogger(__name__)


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as ``2026-10-01T04:05:00Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def alert_payload(rule_id: str, site_id: str, title: str, severity: str,
                  active: list[tuple[int, str | None, datetime, float | None]],
                  transition: Mapping[str, Any]) -> dict[str, Any]:
    """The retained message of a rule at a site: its current state and the transition just made."""
    return {
        "rule_id": rule_id, "site_id": site_id, "title": title, "severity": severity,
        "state": "firing" if active else "ok",
        "active": [{"alert_id": a, "device_id": d, "fired_at": rfc3339(f), "value": v}
                   for a, d, f, v in active],
        "transition": dict(transition),
    }


class AlertPublisher:
    """One MQTT connection of the broker role ``alerts``, sending the outbox on request."""

    def __init__(self, address: BrokerAddress, client_id: str = "smartcity-alerts") -> None:
        self.client = ServiceClient(address, client_id=client_id, log=log)

    def start(self) -> None:
        """Connect in the background; the client reconnects by itself when the broker comes back."""
        self.client.start()

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.stop()

    def wait_connected(self, timeout: float) -> bool:
        """Return True once connected (False after ``timeout`` s)."""
        return self.client.wait_connected(timeout)

    def publish_pending(self, conn: psycopg.Connection[Any], rules: Mapping[str, AnyRule],
                        timeout: float = 5.0, limit: int = 500) -> tuple[list[str], list[str]]:
        """Publish unpublished transitions in id order until one is not acknowledged.

        Returns the rule id of each transition published, and that of the one that failed (if any).
        """
        if not self.client.is_connected:
            return [], []
        rows = conn.execute(SELECT_UNPUBLISHED, (limit,)).fetchall()
        conn.commit()
        sent: list[str] = []
        for tid, kind, at, value, alert_id, rule_id, site_id, device_id, severity in rows:
            rule = rules.get(rule_id)
            active = [(a, d, f, v) for a, d, f, v in conn.execute(SELECT_ACTIVE_AT_SITE, (rule_id, site_id))]
            payload = alert_payload(
                rule_id, site_id, rule.title if rule else rule_id, severity, active,
                {"alert_id": alert_id, "device_id": device_id, "transition": kind, "at": rfc3339(at),
                 "value": value})
            try:
                published = self.client.publish_confirmed(alert_topic(site_id, rule_id), json.dumps(payload),
                                                          timeout_s=timeout, retain=True)
            except BrokerUnavailable as err:
                log.info("alert transition %d not published yet: %s", tid, err)
                published = False
            if not published:
                conn.rollback()
                return sent, [rule_id]
            conn.execute(MARK_PUBLISHED, (tid,))
            conn.commit()
            sent.append(rule_id)
        return sent, []
