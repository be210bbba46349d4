"""Run one ingest worker until told to stop (the `smartcity ingest` command)."""

from __future__ import annotations

import logging
import threading

from ingest.pipeline import IngestWorker
from smartcity.db import database_url
from smartcity.settings import Settings

__all__ = ["run_ingest"]

log = logging.getLogger(__name__)


def run_ingest(settings: Settings, stop: threading.Event) -> IngestWorker:
    """Store telemetry until ``stop`` is set; then flush, ack, disconnect and return the worker."""
    broker = settings.broker
    worker = IngestWorker(database_url(settings), broker, settings.ingest)
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
