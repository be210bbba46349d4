"""The ingest worker: subscriber → bounded queue → batches → writer → acks, wired together.

The MQTT network thread only enqueues. One writer thread owns the database connection, routes
and stores each batch, and acks its messages after commit. The queue is bounded by the broker's
inflight window (Receive Maximum), so a slow database pushes back onto the broker, not memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from ingest.batch import InboundMessage, MessageBatch
from ingest.metrics import IngestMetrics
from ingest.subscribe import Subscriber
from ingest.validate import TimeWindow
from ingest.write import Writer, WriteResult
from smartcity.broker_url import BrokerAddress
from smartcity.settings import IngestSettings

__all__ = ["IngestCounters", "IngestWorker"]

log = logging.getLogger(__name__)


@dataclass
class IngestCounters:
    """Running totals since the worker started."""

    messages: int = 0
    batches: int = 0
    readings_stored: int = 0
    readings_duplicate: int = 0
    quarantined: int = 0


class IngestWorker:
    """One ingest worker process's moving parts; ``start`` then ``stop``."""

    def __init__(self, database_url: str, broker: BrokerAddress, settings: IngestSettings) -> None:
        self.settings = settings
        window = TimeWindow(settings.future_window_s, settings.past_window_days * 86400.0)
        self.metrics = IngestMetrics()
        self.writer = Writer(database_url, window, on_retry=self.metrics.write_retries.inc)
        # Up to one inflight window can be waiting while a full batch is being written.
        self._queue: queue.Queue[InboundMessage] = queue.Queue(maxsize=2 * settings.receive_maximum)
        self.subscriber = Subscriber(
            broker, client_id=settings.client_id, share_group=settings.share_group,
            receive_maximum=settings.receive_maximum, session_expiry_s=settings.session_expiry_s,
            deliver=self._queue.put,
        )
        self.counters = IngestCounters()
        self.metrics.queue_depth.set_function(self._queue.qsize)
        self.metrics.broker_connected.set_function(lambda: float(self.subscriber.connected))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)

    def start(self) -> None:
        """Connect to the database and the broker and start storing."""
        self.writer.connection  # noqa: B018 - fail fast on a bad URL before subscribing
        self._thread.start()
        self.subscriber.start()

    def stop(self, timeout: float = 30) -> None:
        """Stop taking messages, store and ack what was received, then disconnect."""
        self._stop.set()
        self._thread.join(timeout)
        self.subscriber.stop()
        self.writer.close()
        log.info("ingest stopped: %s", self.counters)

    def _new_batch(self) -> MessageBatch:
        return MessageBatch(
            max_messages=min(self.settings.batch_max_messages, self.settings.receive_maximum),
            max_age_s=self.settings.batch_max_age_ms / 1000,
        )

    def _next_batch(self) -> MessageBatch:
        batch = self._new_batch()
        while not batch.is_full:
            try:
                timeout = batch.seconds_left() if batch.messages else 0.1
                batch.add(self._queue.get(timeout=timeout))
            except queue.Empty:
                if batch.messages or self._stop.is_set():
                    break
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch.messages:
                self._store(batch)
        # Store what had arrived when the stop came, and no more: the broker keeps sending until
        # we disconnect, and what comes after this is redelivered to the next session anyway.
        left = self._queue.qsize()
        while left > 0:
            batch = self._new_batch()
            while left > 0 and not batch.is_full:
                batch.add(self._queue.get_nowait())
                left -= 1
            self._store(batch)

    def _store(self, batch: MessageBatch) -> None:
        started = time.monotonic()
        result = self.writer.write_until_stored(batch, self._stop)
        if result is None:
            return  # stopped during an outage: unacked, the broker redelivers
        stale = sum(not self.subscriber.ack(mid, qos, session) for mid, qos, session in batch.acks())
        if stale:
            log.info("%d stored messages came from a previous connection; the broker redelivers "
                     "them and they are stored again as no-ops", stale)
        self._count(batch, result, time.monotonic() - started)

    def _count(self, batch: MessageBatch, result: WriteResult, seconds: float) -> None:
        c = self.counters
        c.messages += len(batch)
        c.batches += 1
        c.readings_stored += result.readings_stored
        c.readings_duplicate += result.readings_duplicate
        c.quarantined += sum(result.quarantined.values())
        m = self.metrics
        status = sum(message.topic.endswith("/status") for message in batch.messages)
        m.messages.labels("telemetry").inc(len(batch) - status)
        m.messages.labels("status").inc(status)
        m.readings_stored.inc(result.readings_stored)
        m.readings_duplicate.inc(result.readings_duplicate)
        for reason, count in result.quarantined.items():
            m.quarantined.labels(reason).inc(count)
        m.batch_messages.observe(len(batch))
        m.batch_readings.observe(result.readings_stored + result.readings_duplicate)
        m.commit_seconds.observe(seconds)
        for reading_time in result.message_times:
            m.reading_delay.observe(max(0.0, result.committed_at - reading_time))
