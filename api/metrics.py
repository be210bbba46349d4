"""Prometheus metrics of the HTTP API: requests and latency by route template, and the pool's state.

Served at ``GET /metrics`` (Prometheus text format) from a registry of the app's own, so several
apps in one process (the tests) keep separate counts, like ingest's and the refresher's metrics.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UNMATCHED_ROUTE", "ApiMetrics", "PoolCollector", "RequestMetrics", "RequestStats"]

# The label of every request no route matched: raw paths would let any client add series at will.
UNMATCHED_ROUTE = "unmatched"
# Methods outside this set share one label, for the same reason.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_OTHER_METHOD = "other"

# From a cached `latest` (~1 ms) to an aggregate over years (seconds).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class PoolCollector(Collector):
    """Gauges of a psycopg_pool pool, read from ``get_stats()`` at scrape time (nothing per request)."""

    def __init__(self) -> None:
        self.pool: Any = None  # an AsyncConnectionPool while the app runs

    def collect(self) -> Iterator[Metric]:
        """Yield the pool's size, idle connections and waiting requests (nothing without a pool)."""
        if self.pool is None:
            return
        stats = self.pool.get_stats()
        for name, key, text in (
            ("smartcity_api_pool_size", "pool_size", "Connections the pool holds, busy or idle"),
            ("smartcity_api_pool_available", "pool_available", "Idle connections ready to lend"),
            ("smartcity_api_pool_max", "pool_max", "The most connections the pool may open"),
            ("smartcity_api_pool_waiting", "requests_waiting", "Requests waiting for a connection"),
        ):
            yield GaugeMetricFamily(name, text, value=stats.get(key, 0))


class RequestStats(Collector):
    """Request counts by (route, method, status) and latency histograms by route, as plain numbers.

    Prometheus' own ``Counter`` and ``Histogram`` take a lock and walk the buckets in Python on
    every observation; here one request costs two dict updates and a C bisect, and the families are
    built at scrape time. Requests and scrapes both run on the app's event loop thread, so no lock.
    """

    def __init__(self, buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts: dict[tuple[str, str, int], int] = {}
        # route → one count per bucket (the last for +Inf), then the sum of the seconds
        self.latency: dict[str, list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = [0.0] * (len(self.buckets) + 2)
        # Prometheus buckets are "less than or equal": the first bound >= seconds.
        histogram[bisect_left(self.buckets, seconds)] += 1
        histogram[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        """Yield the request counter and the latency histogram."""
        requests = CounterMetricFamily(
            "smartcity_api_requests", "HTTP requests answered, by route template, method and status code",
            labels=["route", "method", "status"])
        for (route, method, status), count in self.counts.items():
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "smartcity_api_request_duration_seconds",
            "Time from a request's arrival to its response's last byte, by route template",
            labels=["route"])
        bounds = [*map(floatToGoString, self.buckets), "+Inf"]
        for route, histogram in self.latency.items():
            cumulative = list(accumulate(histogram[:-1]))
            latency.add_metric([route], list(zip(bounds, cumulative, strict=True)), sum_value=histogram[-1])
        yield latency


class ApiMetrics:
    """The API's request counts, latency histograms and pool gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestStats()
        self.pool = PoolCollector()
        self.registry.register(self.requests)
        self.registry.register(self.pool)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.observe(route, method, status, seconds)

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: time each HTTP request and count it under its route's template.

    A plain ASGI callable rather than Starlette's ``BaseHTTPMiddleware``, whose extra task and
    streams per request would cost more than the ``latest`` query (bench api). The route is the one
    the router put in ``scope["route"]`` when it matched: no second matching. That is the route as
    its module declared it (``/devices/{device_id}/latest``); its full template, prefixes included,
    comes from FastAPI's ``iter_route_contexts`` once per route.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # id(route) → (route, full template); the route is kept so its id cannot be reused.
        self._templates: dict[int, tuple[Any, str]] = {}

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        known = self._templates.get(id(route))
        if known is not None and known[0] is route:
            return known[1]
        # A route not seen yet (first request, or one added since): map every route again.
        templates = {id(context.original_route): (context.original_route, context.path_format)
                     for context in iter_route_contexts(scope["app"].routes) if context.path_format}
        template = str(templates.get(id(route), (route, getattr(route, "path", UNMATCHED_ROUTE)))[1])
        templates[id(route)] = (route, template)
        self._templates = templates
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app fails before starting a response

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            method = scope["method"]
            self.metrics.observe(self._template(scope), method if method in _METHODS else _OTHER_METHOD,
                                 status, time.perf_counter() - started)
