"""The webhook outbox: each transition POSTed as JSON to its rule's ``webhook``, retried with
exponential backoff until delivered (any 2xx) or given up after ``webhook_max_attempts``.

The next attempt's time is kept in ``alert_webhook_deliveries.next_attempt_at``, so a restart
keeps the schedule. Each request carries ``Smartcity-Delivery: <transition id>``: a receiver that
got a delivery twice (a crash after its 2xx, before ours was stored) recognises the repeat.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from smartcity.alerts.publish import rfc3339
from smartcity.alerts.rules import AnyRule
from smartcity.db.queries.alerts import CLAIM_DELIVERIES, MARK_DELIVERY
from smartcity.settings.alerts import AlertsSettings

__all__ = ["DeliveryResult", "backoff_s", "deliver_due", "webhook_body"]

log = logging.getLogger(__name__)
USER_AGENT = "smartcity-alerts/1"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """One attempt: which rule, delivered or not, and whether it was the last allowed."""

    rule_id: str
    delivered: bool
    gave_up: bool


def backoff_s(attempts: int, settings: AlertsSettings) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: initial, doubling, capped."""
    delay = settings.webhook_backoff_initial_s * 2 ** (attempts - 1)
    return float(min(delay, settings.webhook_backoff_max_s))


def webhook_body(transition_id: int, row: tuple[Any, ...], rules: Mapping[str, AnyRule]) -> dict[str, Any]:
    """The JSON body of a delivery: the rule, the alert (as it is now) and the transition."""
    (_tid, _url, _attempts, kind, at, value, alert_id, rule_id, subject, site_id, device_id, severity,
     fired_at, resolved_at, summary, alert_value, alert_state) = row
    rule = rules.get(rule_id)
    return {
        "delivery": transition_id,
        "rule": {"id": rule_id, "title": rule.title if rule else rule_id, "kind": rule.kind if rule else None,
                 "severity": severity},
        "alert": {"id": alert_id, "subject": subject, "site_id": site_id, "device_id": device_id,
                  "state": alert_state, "fired_at": rfc3339(fired_at),
                  "resolved_at": None if resolved_at is None else rfc3339(resolved_at),
                  "value": alert_value, "summary": summary},
        "transition": {"transition": kind, "at": rfc3339(at), "value": value},
    }


def _post(url: str, body: bytes, delivery: int, timeout: float) -> str | None:
    """POST ``body``; None when the receiver answered 2xx, else why not."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Smartcity-Delivery": str(delivery), "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) only)
            status = int(response.status)
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"{type(err).__name__}: {getattr(err, 'reason', err)}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def deliver_due(conn: psycopg.Connection[Any], rules: Mapping[str, AnyRule], settings: AlertsSettings,
                post: Callable[[str, bytes, int, float], str | None] = _post,
                limit: int = 100) -> list[DeliveryResult]:
    """Attempt every delivery that is due (oldest first); return what each attempt did."""
    results: list[DeliveryResult] = []
    with conn.transaction():
        rows = conn.execute(CLAIM_DELIVERIES, (limit,)).fetchall()
        for row in rows:
            tid, url, attempts = row[0], row[1], row[2] + 1
            body = json.dumps(webhook_body(tid, row, rules)).encode()
            error = post(url, body, tid, settings.webhook_timeout_s)
            gave_up = error is not None and attempts >= settings.webhook_max_attempts
            conn.execute(MARK_DELIVERY, {
                "id": tid, "url": url, "attempts": attempts, "delivered": error is None,
                "gave_up": gave_up, "retry_in_s": 0.0 if error is None else backoff_s(attempts, settings),
                "error": error})
            if error is not None:
                (log.warning if gave_up else log.info)(
                    "webhook %s for transition %d: %s (attempt %d%s)", url, tid, error, attempts,
                    ", given up" if gave_up else "")
            results.append(DeliveryResult(row[7], error is None, gave_up))
    return results
