"""The ingest worker: subscriber → bounded queue → batches → writer → acks, wired together.

The MQTT network thread only enqueues. One writer thread owns the database connection: it routes
each batch once (topics classified, devices resolved in one query, payloads decoded and
validated), hands the rows to the writer, and acks every message of the batch after commit —
stored, quarantined or ignored alike. The queue is bounded by the broker's
inflight window (Receive Maximum), so a slow database pushes back onto the broker, not memory.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

from ingest.batch import InboundMessage, MessageBatch
from ingest.metrics import IngestMetrics
from ingest.rows import Rows, route_messages
from ingest.subscribe import Subscriber
from ingest.validate import TimeWindow, time_window
from ingest.write import Writer, WriteResult
from smartcity.broker_url import BrokerAddress
from smartcity.contract import device_id_of
from smartcity.settings import IngestSettings

__all__ = ["IngestCounters", "IngestWorker", "route_batch"]

log = logging.getLogger(__name__)


def route_batch(writer: Writer, messages: list[InboundMessage], window: TimeWindow,
                stop: threading.Event) -> Rows | None:
    """Route messages once: resolve their devices in one query (retrying through outages), decode
    and validate; None if stopped before the devices could be looked up."""
    devices = writer.resolve_devices(
        {d for m in messages if (d := device_id_of(m.topic)) is not None}, stop)
    return None if devices is None else route_messages(messages, devices.get, window)


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

    def __init__(self, database_url: str, broker: BrokerAddress, settings: IngestSettings, *,
                 raw_retention_days: int | None = None) -> None:
        self.settings = settings
        # Never take a reading that retention would drop at once (SMARTCITY_RETENTION__RAW_DAYS).
        self.window = time_window(settings, raw_retention_days)
        self.metrics = IngestMetrics()
        self.writer = Writer(database_url, on_retry=self.metrics.write_retries.inc)
        # Up to one inflight window can be waiting while a full batch is being written.
        self._queue: queue.Queue[InboundMessage] = queue.Queue(maxsize=2 * settings.receive_maximum)
        self.subscriber = Subscriber(
            broker, client_id=settings.client_id, share_group=settings.share_group,
            receive_maximum=settings.receive_maximum, session_expiry_s=settings.session_expiry_s,
            deliver=self._queue.put, on_skip=lambda reason: self.metrics.skipped.labels(reason).inc(),
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
        rows = route_batch(self.writer, batch.messages, self.window, self._stop)
        result = None if rows is None else self.writer.store(rows, self._stop)
        if rows is None or result is None:
            return  # stopped during an outage: unacked, the broker redelivers
        stale = sum(not self.subscriber.ack(mid, qos, session) for mid, qos, session in batch.acks())
        if stale:
            log.info("%d stored messages came from a previous connection; the broker redelivers "
                     "them and they are stored again as no-ops", stale)
        self._count(batch, rows, result, time.monotonic() - started)

    def _count(self, batch: MessageBatch, rows: Rows, result: WriteResult, seconds: float) -> None:
        c = self.counters
        c.messages += len(batch)
        c.batches += 1
        c.readings_stored += result.readings_stored
        c.readings_duplicate += result.readings_duplicate
        c.quarantined += sum(result.quarantined.values())
        m = self.metrics
        for channel, count in Counter(part.channel.value for part in rows.parts).items():
            m.messages.labels(channel).inc(count)
        m.readings_stored.inc(result.readings_stored)
        m.readings_duplicate.inc(result.readings_duplicate)
        for reason, count in result.quarantined.items():
            m.quarantined.labels(reason).inc(count)
        for reason, count in result.quarantined_messages.items():
            m.quarantined_messages.labels(reason).inc(count)
        m.quarantined_bytes.inc(result.quarantined_bytes)
        m.batch_messages.observe(len(batch))
        m.batch_readings.observe(result.readings_stored + result.readings_duplicate)
        m.commit_seconds.observe(seconds)
        for reading_time in result.message_times:
            m.reading_delay.observe(max(0.0, result.committed_at - reading_time))
