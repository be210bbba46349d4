"""The evaluator service (``smartcity alerts run``): judge every rule, then send the outboxes.

One cycle: each enabled rule is judged for the whole minutes it has not judged yet (one transaction
per rule), then unpublished transitions go to MQTT and due webhook deliveries are attempted. A
rule that fails (a bad category, a lost connection) is logged and counted and judged again next
cycle from where it stood; the others carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from smartcity.alerts.metrics import AlertMetrics
from smartcity.alerts.publish import AlertPublisher
from smartcity.alerts.rules import AnyRule, RuleFile
from smartcity.alerts.store import RuleRun, judge_rule
from smartcity.alerts.webhooks import deliver_due
from smartcity.broker_url import BrokerAddress
from smartcity.db.connect import connect
from smartcity.settings.alerts import AlertsSettings

__all__ = ["AlertService", "Cycle", "utc_now"]

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The wall clock, in UTC (the service's default clock; tests pass their own)."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Cycle:
    """What one cycle did."""

    seconds: float = 0.0
    runs: list[RuleRun] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    published: int = 0
    delivered: int = 0
    delivery_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The cycle as plain JSON-ready values."""
        return {
            "seconds": round(self.seconds, 3),
            "rules": [{"rule_id": r.rule_id, "judged": r.judged, "subjects": r.subjects,
                       "transitions": len(r.transitions), "seconds": round(r.seconds, 4),
                       "evaluated_through": None if r.evaluated_through is None
                       else r.evaluated_through.isoformat()} for r in self.runs],
            "failed": self.failed, "published": self.published, "delivered": self.delivered,
            "delivery_failures": self.delivery_failures,
        }


class AlertService:
    """The evaluator: a database connection, the rules, an optional MQTT publisher and a clock."""

    def __init__(self, url: str, rules: RuleFile, settings: AlertsSettings,
                 broker: BrokerAddress | None = None, clock: Callable[[], datetime] = utc_now,
                 metrics: AlertMetrics | None = None) -> None:
        self.url = url
        self.rules: dict[str, AnyRule] = {rule.id: rule for rule in rules.rules}
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or AlertMetrics()
        self.conn: psycopg.Connection[Any] = connect(url, purpose="alerts", autocommit=True)
        self.publisher = AlertPublisher(broker) if broker is not None else None
        if self.publisher is not None:
            self.publisher.start()

    def close(self) -> None:
        """Disconnect from the broker and the database."""
        if self.publisher is not None:
            self.publisher.stop()
        self.conn.close()

    def __enter__(self) -> AlertService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def judge(self) -> Cycle:
        """Judge every enabled rule once (no outboxes)."""
        cycle = Cycle()
        now = self.clock()
        settle = timedelta(seconds=self.settings.settle_s)
        catch_up = timedelta(hours=self.settings.max_catch_up_h)
        for rule in self.rules.values():
            if not rule.enabled:
                continue
            try:
                run = judge_rule(self.conn, rule, now, settle, catch_up)
            except psycopg.OperationalError:
                raise  # the connection is gone: the caller reconnects
            except (psycopg.Error, ValueError) as err:
                log.error("rule %s could not be judged: %s", rule.id, err)
                cycle.failed[rule.id] = str(err)
                self.metrics.rule_errors.labels(rule.id).inc()
                continue
            cycle.runs.append(run)
            if run.judged:
                self.metrics.rules_judged.inc()
            for _subject, kind, _at in run.transitions:
                self.metrics.transitions.labels(rule.id, kind).inc()
            if run.evaluated_through is not None:
                self.metrics.lag_seconds.labels(rule.id).set((now - run.evaluated_through).total_seconds())
        return cycle

    def send(self, cycle: Cycle) -> None:
        """Publish unpublished transitions and attempt due webhook deliveries."""
        if self.publisher is not None:
            self.conn.autocommit = False
            try:
                sent, failed = self.publisher.publish_pending(self.conn, self.rules)
            finally:
                self.conn.rollback()
                self.conn.autocommit = True
            cycle.published += len(sent)
            for rule_id in sent:
                self.metrics.published.labels(rule_id).inc()
            for rule_id in failed:
                self.metrics.publish_failures.labels(rule_id).inc()
        for result in deliver_due(self.conn, self.rules, self.settings):
            if result.delivered:
                cycle.delivered += 1
                self.metrics.webhook_delivered.labels(result.rule_id).inc()
            else:
                cycle.delivery_failures += 1
                self.metrics.webhook_failures.labels(result.rule_id).inc()
            if result.gave_up:
                self.metrics.webhook_given_up.labels(result.rule_id).inc()

    def cycle(self) -> Cycle:
        """One whole cycle: judge, then send."""
        started = time.monotonic()
        cycle = self.judge()
        self.send(cycle)
        cycle.seconds = time.monotonic() - started
        self.metrics.cycle_seconds.observe(cycle.seconds)
        return cycle

    def run(self, stop: threading.Event, on_cycle: Callable[[Cycle], None] | None = None) -> None:
        """Cycle every ``interval_s`` until ``stop`` is set; a lost database is reconnected."""
        while not stop.is_set():
            try:
                cycle = self.cycle()
                if on_cycle is not None:
                    on_cycle(cycle)
            except psycopg.OperationalError as err:
                log.warning("alerts: database unavailable (%s); retrying", err)
                self._reconnect(stop)
            stop.wait(self.settings.interval_s)

    def _reconnect(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.conn.close()
                self.conn = connect(self.url, purpose="alerts", autocommit=True)
                return
            except psycopg.OperationalError:
                stop.wait(min(self.settings.interval_s, 5.0))
