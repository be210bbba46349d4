"""The writer: one connection that stores a batch in one transaction, or retries until it can.

Readings go in with binary COPY into a session-local staging table and one
``INSERT … ON CONFLICT DO NOTHING``, so a redelivered reading is a no-op; the latest-value table,
device last-seen and status, and the quarantine are updated in the same transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from ingest.batch import MessageBatch
from ingest.directory import DeviceDirectory
from ingest.route import Rows, route_messages
from ingest.validate import TimeWindow

__all__ = ["WriteResult", "Writer"]

log = logging.getLogger(__name__)

# Times travel as epoch seconds (float8) and become timestamptz in the server: converting each
# reading to a datetime in Python costs more than the rest of its trip through COPY.
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_staging"
    " (epoch double precision NOT NULL, device integer NOT NULL, metric smallint NOT NULL,"
    " value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
_COPY = "COPY readings_staging (epoch, device, metric, value) FROM STDIN (FORMAT BINARY)"
_INSERT = (
    "INSERT INTO readings (time, device, metric, value)"
    " SELECT to_timestamp(epoch), device, metric, value FROM readings_staging"
)
_INSERT_SKIPPING_DUPLICATES = _INSERT + " ON CONFLICT DO NOTHING"
_LATEST = (
    "INSERT INTO latest_readings (device, metric, time, value)"
    " SELECT DISTINCT ON (device, metric) device, metric, to_timestamp(epoch), value"
    " FROM readings_staging ORDER BY device, metric, epoch DESC"
    " ON CONFLICT (device, metric) DO UPDATE SET time = excluded.time, value = excluded.value"
    " WHERE excluded.time > latest_readings.time"
)
_LAST_SEEN = (
    "UPDATE devices d SET last_seen = v.seen"
    " FROM unnest(%s::integer[], %s::timestamptz[]) AS v(id, seen)"
    # A second's precision is plenty, and skipping smaller moves spares a row version per
    # device per batch.
    " WHERE d.id = v.id AND (d.last_seen IS NULL OR d.last_seen < v.seen - interval '1 second')"
)
_STATUS = (
    "UPDATE devices SET status = %s, status_changed_at = %s"
    " WHERE id = %s AND (status_changed_at IS NULL OR status_changed_at <= %s)"
)
_QUARANTINE = (
    "INSERT INTO quarantine (received_at, topic, device_id, reason, detail, payload, content_type)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
_TYPES = ["float8", "int4", "int2", "float8"]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch did."""

    readings_stored: int
    readings_duplicate: int
    quarantined: Counter[str]
    message_times: list[float]
    committed_at: float


class Writer:
    """Owns one database connection; writes batches, reconnecting with capped backoff."""

    def __init__(self, url: str, window: TimeWindow, *, max_backoff_s: float = 30.0,
                 on_retry: Callable[[], None] = lambda: None) -> None:
        self._url = url
        self._on_retry = on_retry
        self._window = window
        self._conn: psycopg.Connection | None = None
        self._max_backoff_s = max_backoff_s
        self.directory = DeviceDirectory()

    @property
    def connection(self) -> psycopg.Connection:
        """Return the open connection, connecting first if needed."""
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self._url, autocommit=True, application_name="smartcity-ingest",
                                   connect_timeout=10)
            conn.execute(_STAGING)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: MessageBatch) -> WriteResult:
        """Route ``batch`` into rows and store them in one transaction.

        Raises:
            psycopg.Error: the transaction failed and was rolled back.
        """
        conn = self.connection
        rows = route_messages(
            batch.messages, lambda device_id: self.directory.lookup(conn, device_id), self._window
        )
        return self.write_rows(rows)

    def write_rows(self, rows: Rows) -> WriteResult:
        """Store ``rows`` in one transaction.

        Raises:
            psycopg.Error: the transaction failed and was rolled back.
        """
        conn = self.connection
        stored = 0
        with conn.transaction(), conn.cursor() as cur:
            if rows.readings:
                with cur.copy(_COPY) as copy:
                    copy.set_types(_TYPES)
                    for reading in rows.readings:
                        copy.write_row(reading)
                stored = self._insert_staged(conn, cur)
                cur.execute(_LATEST)
            if rows.last_seen:
                ids = list(rows.last_seen)
                cur.execute(_LAST_SEEN, (ids, [_utc(rows.last_seen[i]) for i in ids]))
            for change in rows.statuses:
                at = _utc(change.at)
                cur.execute(_STATUS, (change.status, at, change.device, at))
            if rows.quarantine:
                cur.executemany(_QUARANTINE, [
                    (_utc(q.received_at), q.topic, q.device_id, q.reason.value, q.detail, q.payload,
                     q.content_type)
                    for q in rows.quarantine
                ])
        return WriteResult(stored, len(rows.readings) - stored,
                           Counter(q.reason.value for q in rows.quarantine), rows.message_times,
                           time.time())

    @staticmethod
    def _insert_staged(conn: psycopg.Connection, cur: psycopg.Cursor) -> int:
        """Move the staged readings into ``readings``; return how many were new.

        A plain INSERT costs the server less than ``ON CONFLICT`` (no speculative insertion per
        row), and duplicates only come with redeliveries, so try it first and fall back to the
        duplicate-skipping form for the rare batch that holds one.
        """
        try:
            with conn.transaction():
                cur.execute(_INSERT)
                return cur.rowcount
        except psycopg.errors.UniqueViolation:
            cur.execute(_INSERT_SKIPPING_DUPLICATES)
            return cur.rowcount

    def write_until_stored(self, batch: MessageBatch, stop: threading.Event) -> WriteResult | None:
        """Write ``batch``, retrying with backoff through outages; None if stopped before success.

        Nothing is acked until this returns a result, so a batch that never commits is
        redelivered by the broker to whoever connects next.
        """
        backoff = 0.5
        while True:
            try:
                return self.write(batch)
            except psycopg.Error as err:
                self._on_retry()
                log.warning("batch of %d messages not stored (%s: %s); retrying in %.1f s",
                            len(batch), type(err).__name__, str(err).strip()[:200], backoff)
                if self._conn is not None and self._conn.broken:
                    self.close()
                if not isinstance(err, psycopg.OperationalError):
                    self.close()  # start the retry from a clean session
            if stop.wait(backoff):
                return None
            backoff = min(backoff * 2, self._max_backoff_s)
