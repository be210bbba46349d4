"""Prometheus metrics of an ingest worker and of the rollup refresher, each in a registry of its own
(tests run several per process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["IngestMetrics", "RollupMetrics"]

if TYPE_CHECKING:
    from ingest.rollup import RefreshResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
                    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class IngestMetrics:
    """Counters, histograms and gauges that describe what a worker did and how it is doing."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "smartcity_ingest_messages",
            "MQTT messages handled and acked, by channel: telemetry, status, commands (ignored),"
            " invalid (topic quarantined)", ["channel"], registry=r)
        self.skipped = Counter(
            "smartcity_ingest_skipped",
            "Deliveries acked without being handled, by reason: retained (telemetry sent again on"
            " subscribe), duplicate (a status's second copy in a share group), commands (the"
            " platform's own)", ["reason"], registry=r)
        self.readings_stored = Counter("smartcity_ingest_readings_stored",
                                       "Readings inserted into the readings table", registry=r)
        self.readings_duplicate = Counter(
            "smartcity_ingest_readings_duplicate",
            "Readings skipped because the same (device, metric, time) was stored before", registry=r)
        self.quarantined = Counter("smartcity_ingest_quarantined",
                                   "Rejected message parts, by reason", ["reason"], registry=r)
        self.quarantined_messages = Counter(
            "smartcity_ingest_quarantined_messages",
            "Messages quarantined (one row each), by the reason of their first rejected part",
            ["reason"], registry=r)
        self.quarantined_bytes = Counter(
            "smartcity_ingest_quarantined_bytes",
            "Payload bytes kept in quarantine (each payload cut to the 64 KiB limit)", registry=r)
        self.batch_messages = Histogram("smartcity_ingest_batch_messages", "Messages per batch",
                                        buckets=_SIZE_BUCKETS, registry=r)
        self.batch_readings = Histogram("smartcity_ingest_batch_readings", "Readings per batch",
                                        buckets=_SIZE_BUCKETS, registry=r)
        self.commit_seconds = Histogram("smartcity_ingest_commit_seconds",
                                        "Time to write and commit one batch",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.reading_delay = Histogram(
            "smartcity_ingest_reading_delay_seconds",
            "From a message's reading timestamp to the commit that stored it (one per message)",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.write_retries = Counter("smartcity_ingest_write_retries",
                                     "Batch writes that failed and were retried", registry=r)
        self.broker_connected = Gauge("smartcity_ingest_broker_connected",
                                      "1 while connected to the MQTT broker", registry=r)
        self.queue_depth = Gauge("smartcity_ingest_queue_depth",
                                 "Messages received but not yet in a batch", registry=r)

    def serve(self, host: str, port: int) -> None:
        """Expose the metrics at ``http://host:port/metrics`` from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)


_REFRESH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class RollupMetrics:
    """What the rollup refresher did and how far the rollups trail the readings."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.lag = Gauge("smartcity_rollup_lag_seconds",
                         "Age of the oldest pending mark, measured before and during each catch-up",
                         registry=r)
        self.marks = Counter("smartcity_rollup_marks", "Pending (device, hour) marks refreshed",
                             registry=r)
        self.rows = Counter("smartcity_rollup_rows", "Rollup rows rebuilt, by table: 1m, 1h, 1d",
                            ["rollup"], registry=r)
        self.skipped = Counter("smartcity_rollup_skipped_hours",
                               "Pending hours older than the raw-retention horizon, left alone",
                               registry=r)
        self.refresh_seconds = Histogram("smartcity_rollup_refresh_seconds",
                                         "Time of one refresh transaction that claimed marks",
                                         buckets=_REFRESH_BUCKETS, registry=r)
        self.busy = Counter("smartcity_rollup_busy",
                            "Refresh calls that found another refresher at work (and left it be)",
                            registry=r)
        self.errors = Counter("smartcity_rollup_errors",
                              "Failed database calls, retried, by kind: transient, data, server",
                              ["kind"], registry=r)

    def observe(self, result: RefreshResult) -> None:
        """Count one refresh transaction."""
        self.marks.inc(result.marks)
        self.rows.labels("1m").inc(result.minutes)
        self.rows.labels("1h").inc(result.hours)
        self.rows.labels("1d").inc(result.days)
        self.skipped.inc(result.skipped)
        self.refresh_seconds.observe(result.seconds)

    def serve(self, host: str, port: int) -> None:
        """Expose the metrics at ``http://host:port/metrics`` from a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
