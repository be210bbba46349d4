"""docker/healthcheck.py, run as the containers run it: the HTTP, metric and fleet-online checks."""

from __future__ import annotations

import paho.mqtt.publish as publish
import pytest
from pytest_httpserver import HTTPServer

from smartcity.contract import status_topic
from smartcity.services import EmbeddedMosquitto
from tests.dashboards.compose_file import run_healthcheck
from tests.logins import BrokerLogins, login_url


def test_the_http_check_wants_2xx(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_json({"status": "ok"})
    httpserver.expect_request("/down").respond_with_json({"status": "degraded"}, status=503)
    assert run_healthcheck("http", httpserver.url_for("/ok")).returncode == 0
    down = run_healthcheck("http", httpserver.url_for("/down"))
    assert down.returncode == 1 and "answered 503" in down.stderr


@pytest.mark.parametrize(("value", "bounds", "healthy"), [
    ("1.0", ("--min", "1"), True), ("0.0", ("--min", "1"), False),
    ("12.5", ("--max", "600"), True), ("601.0", ("--max", "600"), False)])
def test_the_metric_check_reads_a_prometheus_sample(httpserver: HTTPServer, value: str,
                                                    bounds: tuple[str, str], healthy: bool) -> None:
    text = ("# HELP smartcity_x_total other\nsmartcity_x_total 0.0\n"
            f"# TYPE smartcity_y gauge\nsmartcity_y {value}\n")
    httpserver.expect_request("/metrics").respond_with_data(text, content_type="text/plain")
    result = run_healthcheck("metric", httpserver.url_for("/metrics"), "smartcity_y", *bounds)
    assert (result.returncode == 0) is healthy, result.stderr
    missing = run_healthcheck("metric", httpserver.url_for("/metrics"), "smartcity_absent", "--min", "0")
    assert missing.returncode == 1 and "no sample smartcity_absent" in missing.stderr


@pytest.mark.slow  # each unhealthy answer waits out the check's 5 s for a retained `online`
def test_the_fleet_check_wants_a_device_online(fresh_mosquitto: EmbeddedMosquitto,
                                               broker_login: BrokerLogins) -> None:
    monitor, gateway = broker_login("monitor", fresh_mosquitto), broker_login("gateway", fresh_mosquitto)
    env = {"SMARTCITY_MQTT_URL": login_url(monitor)}
    auth = {"username": str(gateway.username), "password": str(gateway.password)}
    nobody = run_healthcheck("fleet-online", env=env)
    assert nobody.returncode == 1 and "no device's retained status is online" in nobody.stderr
    publish.single(status_topic("sim-health-01"), "online", qos=1, retain=True,
                   hostname="127.0.0.1", port=fresh_mosquitto.port, auth=auth)
    assert run_healthcheck("fleet-online", env=env).returncode == 0
    # Its Last Will (or a clean stop) turns the status offline: unhealthy again.
    publish.single(status_topic("sim-health-01"), "offline", qos=1, retain=True,
                   hostname="127.0.0.1", port=fresh_mosquitto.port, auth=auth)
    assert run_healthcheck("fleet-online", env=env).returncode == 1
