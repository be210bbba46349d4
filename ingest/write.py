"""The writer: one connection that stores routed rows in one transaction, retrying or isolating failures.

Readings go in with binary COPY into a session-local staging table and one plain ``INSERT``,
repeated with ``ON CONFLICT DO NOTHING`` when the batch holds a duplicate (inside the database
function ``store_staged_readings``, so that no ERROR reaches the server log): a redelivered
reading is a no-op. The latest-value table, device last-seen and status, and the quarantine are
updated in the same transaction.

Failures are told apart by SQLSTATE class (``classify_error``): a transient one (connection lost,
deadlock, out of resources, operator intervention) is retried with capped backoff; a refusal of
the data (a constraint, a trigger, a bad value) is narrowed down by bisecting the batch by message
until the refused messages stand alone, and those go to quarantine as ``storage_rejected``; any
other error (a missing privilege or table, an internal error) says nothing about the data, so
quarantining the batch would bury good telemetry: it is retried like a transient one, logged as
an error, and holds the acks until someone fixes the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import psycopg
from psycopg.types.json import Jsonb

from ingest.directory import DeviceDirectory
from ingest.rows import MessageRows, QuarantineItem, Rows
from ingest.validate import DeviceRef
from smartcity.db.connect import connect
from smartcity.db.queries import quarantine as quarantine_sql
from smartcity.db.queries import readings as readings_sql

__all__ = ["Failure", "WriteResult", "Writer", "classify_error"]

log = logging.getLogger(__name__)


class Failure(Enum):
    """What a failed write means for the batch."""

    TRANSIENT = "transient"  # the database is away or busy: retry the same batch
    DATA = "data"  # the database refuses something in the batch: find it, quarantine it
    SERVER = "server"  # the database is misconfigured or broken: retry, loudly


# SQLSTATE classes (PostgreSQL, Appendix A). Transient: 08 connection exception, 40 transaction
# rollback (deadlock, serialization), 53 insufficient resources, 57 operator intervention (admin
# shutdown, cancel). Data: 22 data exception, 23 integrity constraint violation, 27 triggered data
# change violation, 38/39 external routine (trigger function) exceptions, 44 WITH CHECK OPTION,
# P0 PL/pgSQL RAISE (a trigger refusing a row).
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})
_DATA_CLASSES = frozenset({"22", "23", "27", "38", "39", "44", "P0"})
_MAX_DETAIL = 300


def classify_error(err: psycopg.Error) -> Failure:
    """Tell a transient failure from a refusal of the data and from a broken database."""
    state = err.sqlstate
    if state is None:
        # No answer from the server: the connection broke, or a value could not be sent.
        if isinstance(err, psycopg.OperationalError):
            return Failure.TRANSIENT
        return Failure.DATA if isinstance(err, psycopg.DataError) else Failure.SERVER
    if state[:2] in _TRANSIENT_CLASSES:
        return Failure.TRANSIENT
    return Failure.DATA if state[:2] in _DATA_CLASSES else Failure.SERVER


def _refusal(err: psycopg.Error) -> str:
    """Return the database's own words for a refusal, as a quarantine detail."""
    diag = err.diag
    text = diag.message_primary or (str(err).strip().splitlines() or [""])[0]
    if diag.message_detail:
        text = f"{text} ({diag.message_detail})"
    return f"the database refused it: {err.sqlstate or type(err).__name__}: {text}"[:_MAX_DETAIL]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one or more committed transactions did."""

    readings_stored: int = 0
    readings_duplicate: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # rejected parts, by reason
    quarantined_messages: Counter[str] = field(default_factory=Counter)  # rows, by their reason
    quarantined_bytes: int = 0  # payload bytes kept in quarantine
    message_times: list[float] = field(default_factory=list)
    committed_at: float = 0.0

    def plus(self, other: WriteResult) -> WriteResult:
        """Return the sum of two results (the later commit time)."""
        return WriteResult(
            self.readings_stored + other.readings_stored,
            self.readings_duplicate + other.readings_duplicate,
            self.quarantined + other.quarantined,
            self.quarantined_messages + other.quarantined_messages,
            self.quarantined_bytes + other.quarantined_bytes,
            self.message_times + other.message_times,
            max(self.committed_at, other.committed_at),
        )


def _quarantine_params(items: Iterable[QuarantineItem]) -> list[tuple[object, ...]]:
    params: list[tuple[object, ...]] = []
    for q in items:
        counts = q.reason_counts()
        parts = {"total": len(q.rejections), "by_reason": dict(counts), "first": q.stored_parts()}
        params.append((_utc(q.received_at), q.topic, q.device_id, q.reason.value, list(counts), q.summary(),
                       Jsonb(parts), q.stored_payload(), len(q.payload), q.content_type, q.replay_of))
    return params


class Writer:
    """Owns one database connection; stores rows, reconnecting with capped backoff."""

    def __init__(self, url: str, *, max_backoff_s: float = 30.0,
                 on_retry: Callable[[], None] = lambda: None) -> None:
        self._url = url
        self._on_retry = on_retry
        self._conn: psycopg.Connection | None = None
        self._max_backoff_s = max_backoff_s
        self.directory = DeviceDirectory()

    @property
    def connection(self) -> psycopg.Connection:
        """Return the open connection, connecting first if needed."""
        if self._conn is None or self._conn.closed:
            conn = connect(self._url, purpose="ingest", autocommit=True)
            conn.execute(readings_sql.CREATE_STAGING)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def resolve_devices(self, device_ids: Iterable[str], stop: threading.Event
                        ) -> dict[str, DeviceRef] | None:
        """Look up registered devices, retrying through outages; None if stopped first."""
        wanted = set(device_ids)
        backoff = 0.5
        while True:
            try:
                return self.directory.resolve(self.connection, wanted)
            except psycopg.Error as err:
                self._failed(err, f"device lookup of {len(wanted)} ids", backoff)
            if stop.wait(backoff):
                return None
            backoff = min(backoff * 2, self._max_backoff_s)

    def write_rows(self, rows: Rows) -> WriteResult:
        """Store ``rows`` in one transaction (a savepoint inside a caller's transaction).

        Raises:
            psycopg.Error: the transaction failed and was rolled back.
        """
        conn = self.connection
        stored = 0
        with conn.transaction(), conn.cursor() as cur:
            if rows.readings:
                with cur.copy(readings_sql.COPY_STAGING) as copy:
                    copy.set_types(readings_sql.STAGING_TYPES)
                    for reading in rows.readings:
                        copy.write_row(reading)
                counted = cur.execute(readings_sql.INSERT_READINGS).fetchone()
                stored = int(counted[0]) if counted else 0
                cur.execute(readings_sql.UPSERT_LATEST)
            if rows.last_seen:
                ids = list(rows.last_seen)
                cur.execute(readings_sql.UPDATE_LAST_SEEN,
                            (ids, [_utc(rows.last_seen[i]) for i in ids]))
            for change in rows.statuses:
                at = _utc(change.at)
                cur.execute(readings_sql.UPDATE_STATUS, (change.status, at, change.device, at))
            if rows.quarantine:
                cur.executemany(quarantine_sql.INSERT, _quarantine_params(rows.quarantine))
        quarantined: Counter[str] = Counter()
        for q in rows.quarantine:
            quarantined.update(q.reason_counts())
        return WriteResult(
            stored, len(rows.readings) - stored, quarantined,
            Counter(q.reason.value for q in rows.quarantine),
            sum(len(q.stored_payload() or b"") for q in rows.quarantine),
            rows.message_times, time.time(),
        )

    def store(self, rows: Rows, stop: threading.Event) -> WriteResult | None:
        """Store routed ``rows``: retry through outages, quarantine what the database refuses.

        Returns None if stopped before everything was committed; nothing may be acked then, and
        the broker redelivers the batch (readings already committed are stored again as no-ops).
        """
        # Groups of messages still to write, the next on top. A group the database refuses is
        # split in two until each refused message stands alone; each group commits on its own,
        # so what was committed is never written twice by a later retry.
        stack: list[list[MessageRows]] = [rows.parts]
        refused: list[MessageRows] = []  # messages already reduced to their quarantine row
        total = WriteResult()
        backoff = 0.5
        while stack:
            group = stack[-1]
            try:
                written = self.write_rows(rows if group is rows.parts else Rows.merge(group))
            except psycopg.Error as err:
                failure = classify_error(err)
                if failure is Failure.DATA and not (len(group) == 1 and any(group[0] is r for r in refused)):
                    stack.pop()
                    if len(group) > 1:
                        middle = len(group) // 2
                        stack += [group[middle:], group[:middle]]
                    else:
                        alone = group[0].refused(_refusal(err))
                        log.warning("database refused the message on %.120s: %s", alone.message.topic,
                                    alone.quarantine.summary() if alone.quarantine else "")
                        refused.append(alone)
                        stack.append([alone])
                    continue
                self._failed(err, f"batch of {len(group)} messages", backoff)
                if stop.wait(backoff):
                    return None
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            stack.pop()
            total = total.plus(written)
            backoff = 0.5
        return total

    def _failed(self, err: psycopg.Error, what: str, backoff: float) -> None:
        """Count and log a failure that will be retried, and make the next try start clean."""
        self._on_retry()
        failure = classify_error(err)
        level = logging.WARNING if failure is Failure.TRANSIENT else logging.ERROR
        log.log(level, "%s not stored (%s %s: %s); retrying in %.1f s", what, failure.value,
                err.sqlstate or type(err).__name__, str(err).strip()[:200], backoff)
        if failure is not Failure.TRANSIENT or (self._conn is not None and self._conn.broken):
            self.close()


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)

