"""GET /metrics: request counts and latency by route template, and the pool's gauges, in Prometheus text."""

from __future__ import annotations

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import RequestStats
from smartcity.devices import register_device
from smartcity.settings import Settings
from tests.api.client import TestClient

LATEST = "/api/v1/devices/{device_id}/latest"


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _requests(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], route: str, method: str,
              status: str) -> float:
    key = ("smartcity_api_requests_total", (("method", method), ("route", route), ("status", status)))
    return samples.get(key, 0.0)


def test_requests_are_counted_by_route_template_method_and_status(
        client: TestClient, db: psycopg.Connection) -> None:
    register_device(db, "aq-metrics-01", "air_quality_station", "kuaro")
    before = _samples(client)
    for _ in range(3):
        assert client.get("/api/v1/devices/aq-metrics-01/latest").status_code == 200
    assert client.get("/api/v1/devices/aq-metrics-02/latest").status_code == 404
    assert client.get("/api/v1/devices/aq-metrics-01").status_code == 200
    after = _samples(client)

    assert _requests(after, LATEST, "GET", "200") - _requests(before, LATEST, "GET", "200") == 3
    assert _requests(after, LATEST, "GET", "404") - _requests(before, LATEST, "GET", "404") == 1
    device = "/api/v1/devices/{device_id}"
    assert _requests(after, device, "GET", "200") - _requests(before, device, "GET", "200") == 1
    # One latency histogram per template: its count is every request the route answered.
    count = ("smartcity_api_request_duration_seconds_count", (("route", LATEST),))
    assert after[count] - before.get(count, 0.0) == 4
    # The raw paths never become labels.
    assert not [key for key in after if any("aq-metrics" in value for _, value in key[1])]


def test_unknown_paths_and_methods_share_one_label_each(client: TestClient) -> None:
    before = _samples(client)
    for path in ("/nothing-here", "/api/v1/nope/1", "/api/v1/nope/2"):
        assert client.get(path).status_code == 404
    assert client.request("BREW", "/api/v1/sites").status_code == 405
    after = _samples(client)
    assert _requests(after, "unmatched", "GET", "404") - _requests(before, "unmatched", "GET", "404") == 3
    assert (_requests(after, "/api/v1/sites", "other", "405")
            - _requests(before, "/api/v1/sites", "other", "405")) == 1
    assert not [key for key in after if any("nope" in value or value == "BREW" for _, value in key[1])]


def test_a_failing_route_is_counted_as_500(client: TestClient) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    client.app.router.add_api_route("/test-fails", fail)  # type: ignore[attr-defined]
    before = _samples(client)
    response = client.get("/test-fails")
    assert response.status_code == 500
    after = _samples(client)
    assert _requests(after, "/test-fails", "GET", "500") - _requests(before, "/test-fails", "GET", "500") == 1


def test_pool_gauges_report_the_pools_stats(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/v1/sites").status_code == 200
    samples = _samples(client)
    assert samples[("smartcity_api_pool_max", ())] == settings.api.pool_max_size
    size = samples[("smartcity_api_pool_size", ())]
    assert 1 <= size <= settings.api.pool_max_size
    # Between requests every connection is idle and no one waits.
    assert samples[("smartcity_api_pool_available", ())] == size
    assert samples[("smartcity_api_pool_waiting", ())] == 0


def test_latency_buckets_are_cumulative_and_less_than_or_equal() -> None:
    stats = RequestStats(buckets=(0.01, 0.1))
    for seconds in (0.005, 0.01, 0.05, 0.1, 2.0):  # on a bound counts in that bucket
        stats.observe("/r", "GET", 200, seconds)
    registry = CollectorRegistry()
    registry.register(stats)
    samples = {(s.name, s.labels.get("le")): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples[("smartcity_api_request_duration_seconds_bucket", "0.01")] == 2
    assert samples[("smartcity_api_request_duration_seconds_bucket", "0.1")] == 4
    assert samples[("smartcity_api_request_duration_seconds_bucket", "+Inf")] == 5
    assert samples[("smartcity_api_request_duration_seconds_count", None)] == 5
    assert samples[("smartcity_api_request_duration_seconds_sum", None)] == pytest.approx(2.165)
    assert samples[("smartcity_api_requests_total", None)] == 5
