"""Run one ingest worker until told to stop (the `smartcity ingest` command)."""

from __future__ import annotations

import logging
import threading

from ingest.pipeline import IngestWorker
from smartcity.db import service_database_url
from smartcity.runtime import tune_garbage_collector as _tune
from smartcity.settings import Settings

__all__ = ["run_ingest", "tune_garbage_collector"]

log = logging.getLogger(__name__)

# The worker allocates a few short-lived objects per reading, nearly all freed by reference
# counting; at CPython's default gen-0 threshold (700) the cycle collector ran every couple of
# messages and cost about a tenth of the worker's CPU at full load. Rarer collections (and the
# start-up objects frozen out of them) keep that cost small while cycles are still collected.
_GC_THRESHOLDS = (20_000, 10, 10)


def tune_garbage_collector() -> None:
    """Set this process's cycle collector for an ingest worker (process-wide: call at the entry point)."""
    _tune(_GC_THRESHOLDS)


def run_ingest(settings: Settings, stop: threading.Event) -> IngestWorker:
    """Store telemetry until ``stop`` is set; then flush, ack, disconnect and return the worker."""
    broker = settings.service_broker("ingest")
    worker = IngestWorker(service_database_url(settings, "ingest"), broker, settings.ingest,
                          raw_retention_days=settings.retention.raw_days)
    worker.start()
    if settings.ingest.metrics_port:
        worker.metrics.serve(settings.ingest.metrics_host, settings.ingest.metrics_port)
        log.info("ingest metrics at http://%s:%d/metrics",
                 settings.ingest.metrics_host, settings.ingest.metrics_port)
    log.info("ingest worker %s consuming from %s", settings.ingest.client_id, broker)
    while not stop.wait(0.5):  # slices: see simulators.publish.FleetPublisher.run
        pass
    worker.stop()
    return worker
