"""Alert webhooks against a real HTTP receiver: the body as documented, retries with backoff until
a 2xx, given up after webhook_max_attempts (and counted). The first test runs the whole evaluator
(judging, MQTT, webhooks) as a login of the role smartcity_alerts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from simulators.fleet import DeviceSpec
from smartcity.alerts.service import AlertService
from tests.alerts.conftest import Clock, Evaluator
from tests.alerts.history import register, store
from tests.logins import BrokerLogins
from tests.roles import temporary_login
from tests.services import wait_until

START = datetime(2026, 9, 1, tzinfo=UTC)
STATION = DeviceSpec("ws-hook-a", "weather_station", "long-ikis", -1.7, 116.1)


def rules(url: str) -> str:
    return f"""
version: 1
rules:
  - id: hook-silent
    kind: silence
    title: Stasiun cuaca diam
    severity: critical
    select: {{devices: [ws-hook-a]}}
    after: 30m
    webhook: {url}
"""


def silent_station(url: str) -> None:
    register(url, [STATION], START - timedelta(hours=1))
    store(url, [STATION], START, START + timedelta(hours=1), 60.0)


def deliver_until(service: AlertService, condition: str, url: str, timeout: float = 20) -> None:
    def done() -> bool:
        service.send(service.judge())
        with psycopg.connect(url) as conn:
            row = conn.execute(f"SELECT {condition} FROM alert_webhook_deliveries").fetchone()
            return bool(row and row[0])
    wait_until(done, timeout=timeout, interval=0.05, message=condition)


def test_retried_until_delivered_as_the_alerts_role(
        alerts_url: str, db: psycopg.Connection, evaluator: Evaluator, httpserver: HTTPServer,
        broker_login: BrokerLogins) -> None:
    silent_station(alerts_url)
    received: list[Request] = []

    def handler(request: Request) -> Response:
        received.append(request)
        return Response("busy", status=500) if len(received) <= 2 else Response("ok", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    with temporary_login(db, alerts_url, "smartcity_alerts") as login:
        clock = Clock(START + timedelta(hours=2))
        service = evaluator(rules(httpserver.url_for("/hook")), clock, broker=broker_login("alerts"),
                            url=login,
                            webhook_backoff_initial_s=0.1, webhook_backoff_max_s=0.2, webhook_max_attempts=5)
        assert service.publisher is not None and service.publisher.wait_connected(5)
        deliver_until(service, "bool_and(delivered_at IS NOT NULL)", alerts_url)
        service.close()
    assert len(received) == 3  # 500, 500, then 200: delivered on the third attempt
    assert len({r.headers["Smartcity-Delivery"] for r in received}) == 1
    request = received[-1]
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.get_data())
    with psycopg.connect(alerts_url) as conn:
        tid, alert_id, at, published = conn.execute(
            'SELECT t.id, t.alert_id, t."at", t.published_at IS NOT NULL FROM alert_transitions t').fetchone()
        attempts, error = conn.execute("SELECT attempts, last_error FROM alert_webhook_deliveries").fetchone()
    assert published  # the role published it too
    assert (attempts, error) == (3, None)
    assert request.headers["Smartcity-Delivery"] == str(tid) == str(body["delivery"])
    assert body["rule"] == {"id": "hook-silent", "title": "Stasiun cuaca diam", "kind": "silence",
                            "severity": "critical"}
    assert body["alert"]["id"] == alert_id and body["alert"]["device_id"] == "ws-hook-a"
    assert body["alert"]["site_id"] == "long-ikis" and body["alert"]["state"] == "firing"
    assert body["transition"]["transition"] == "firing"
    assert body["transition"]["at"] == at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert body["transition"]["value"] >= 1800  # seconds without a reading
    assert body["alert"]["summary"] == "ws-hook-a (long-ikis): no reading for 30 min (limit 30m)"


def test_always_failing_is_given_up_and_counted(alerts_url: str, evaluator: Evaluator,
                                                httpserver: HTTPServer) -> None:
    silent_station(alerts_url)
    httpserver.expect_request("/down", method="POST").respond_with_data("no", status=503)
    service = evaluator(rules(httpserver.url_for("/down")), Clock(START + timedelta(hours=2)),
                        webhook_backoff_initial_s=0.05, webhook_backoff_max_s=0.1, webhook_max_attempts=3)
    deliver_until(service, "bool_and(gave_up_at IS NOT NULL)", alerts_url)
    service.send(service.judge())  # given up: never attempted again
    with psycopg.connect(alerts_url) as conn:
        assert conn.execute("SELECT attempts, last_error, delivered_at FROM alert_webhook_deliveries"
                            ).fetchone() == (3, "HTTP 503", None)
    assert len(httpserver.log) == 3
    registry = service.metrics.registry
    assert registry.get_sample_value("smartcity_alerts_webhook_given_up_total", {"rule": "hook-silent"}) == 1
    assert registry.get_sample_value("smartcity_alerts_webhook_failures_total", {"rule": "hook-silent"}) == 3
