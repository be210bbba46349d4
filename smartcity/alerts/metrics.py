"""Prometheus metrics of the alert evaluator, in a registry of its own (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["AlertMetrics"]

_SECONDS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class AlertMetrics:
    """What the evaluator did per cycle, and how its outboxes fare."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.cycle_seconds = Histogram("smartcity_alerts_cycle_seconds",
                                       "Wall time of one evaluation cycle (every rule judged)",
                                       buckets=_SECONDS, registry=r)
        self.rules_judged = Counter("smartcity_alerts_rules_judged",
                                    "Rules judged (a rule with new whole minutes to judge, once per cycle)",
                                    registry=r)
        self.rule_errors = Counter("smartcity_alerts_rule_errors", "Rules whose judging failed, by rule",
                                   ["rule"], registry=r)
        self.transitions = Counter(
            "smartcity_alerts_transitions", "Alert transitions stored, by rule and kind",
                                   ["rule", "transition"], registry=r)
        self.published = Counter(
            "smartcity_alerts_published", "Transitions published to MQTT (PUBACK), by rule",
                                 ["rule"], registry=r)
        self.publish_failures = Counter("smartcity_alerts_publish_failures",
                                        "Publishes not acknowledged (retried next cycle), by rule",
                                        ["rule"], registry=r)
        self.webhook_delivered = Counter(
            "smartcity_alerts_webhook_delivered", "Webhook deliveries (2xx), by rule",
                                         ["rule"], registry=r)
        self.webhook_failures = Counter("smartcity_alerts_webhook_failures",
                                        "Webhook attempts that failed, by rule", ["rule"], registry=r)
        self.webhook_given_up = Counter("smartcity_alerts_webhook_given_up",
                                        "Webhook deliveries given up after webhook_max_attempts, by rule",
                                        ["rule"], registry=r)
        self.lag_seconds = Gauge("smartcity_alerts_lag_seconds",
            "Wall time minus each rule's evaluated_through, by rule", ["rule"], registry=r)

    def serve(self, host: str, port: int) -> None:
        """Serve ``/metrics`` at ``host:port`` from a daemon thread."""
        start_http_server(port, addr=host, registry=self.registry)
