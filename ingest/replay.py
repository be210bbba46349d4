"""The quarantine, read back: list rejected input, and replay readings of devices registered since.

Replay rebuilds each quarantined message and sends it down the ingest path again (``route_messages``
then ``Writer.write_rows``), so it gets the same validation, dedupe and latest-value handling as live
telemetry, and whatever is still invalid is quarantined anew with its own reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from ingest.batch import InboundMessage
from ingest.route import route_messages
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.contract import Reason

__all__ = [
    "QuarantineRecord", "ReplayResult", "list_quarantine", "preview_payload", "replay_unknown_devices",
]

PREVIEW_CHARS = 200
DEFAULT_CHUNK = 500

_LIST = (
    "SELECT id, received_at, topic, device_id, reason, detail, length(payload) AS payload_size,"
    " substring(payload FROM 1 FOR %(head)s) AS head, replayed_at FROM quarantine"
    " WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)"
    " AND (%(device)s::text IS NULL OR device_id = %(device)s)"
    " AND (NOT %(pending)s OR replayed_at IS NULL)"
    " ORDER BY id DESC LIMIT %(limit)s"
)
# Only rows whose device exists now: the others would just be quarantined again. SKIP LOCKED lets
# a concurrent replay take other rows instead of waiting for, and then re-taking, these.
_TAKE = (
    "SELECT q.id, q.topic, q.payload, extract(epoch FROM q.received_at)::float8, q.content_type"
    " FROM quarantine q"
    " WHERE q.replayed_at IS NULL AND q.reason = 'unknown_device'"
    " AND (%(device)s::text IS NULL OR q.device_id = %(device)s)"
    " AND EXISTS (SELECT 1 FROM devices d WHERE d.device_id = q.device_id)"
    " ORDER BY q.id LIMIT %(limit)s FOR UPDATE OF q SKIP LOCKED"
)
_MARK = "UPDATE quarantine SET replayed_at = now() WHERE id = ANY(%s)"
_STILL_UNKNOWN = (
    "SELECT count(*) FROM quarantine q"
    " WHERE q.replayed_at IS NULL AND q.reason = 'unknown_device'"
    " AND (%(device)s::text IS NULL OR q.device_id = %(device)s)"
    " AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = q.device_id)"
)


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One quarantined item as operators see it: the payload as its size and a printable preview."""

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    detail: str
    payload_size: int
    payload_preview: str
    replayed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {
            "id": self.id, "received_at": self.received_at.isoformat(), "topic": self.topic,
            "device_id": self.device_id, "reason": self.reason, "detail": self.detail,
            "payload_size": self.payload_size, "payload_preview": self.payload_preview,
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
        }


@dataclass(slots=True)
class ReplayResult:
    """What a replay did: messages taken out of quarantine and what became of their parts."""

    messages_replayed: int = 0
    readings_stored: int = 0
    readings_duplicate: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)  # new rows, by reason
    still_unknown: int = 0  # pending messages whose device is still not registered

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict of the counts."""
        return {
            "messages_replayed": self.messages_replayed, "readings_stored": self.readings_stored,
            "readings_duplicate": self.readings_duplicate,
            "quarantined": sum(self.quarantined.values()),
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "still_unknown": self.still_unknown,
        }


def preview_payload(head: bytes, size: int, chars: int = PREVIEW_CHARS) -> str:
    """Return the start of a payload as one printable line: bad UTF-8 and control bytes replaced."""
    text = head.decode("utf-8", errors="replace")
    # Payloads come from anyone who can publish: never let them move an operator's terminal cursor.
    safe = "".join(c if c.isprintable() else " " if c in "\t\r\n" else "\ufffd" for c in text)
    if len(safe) > chars or size > len(head):
        return safe[:chars] + "…"
    return safe


def list_quarantine(conn: psycopg.Connection, *, reason: Reason | str | None = None,
                    device_id: str | None = None, pending_only: bool = True,
                    limit: int = 100) -> list[QuarantineRecord]:
    """Return quarantined items, newest first, optionally of one reason and/or device.

    Raises:
        ValueError: ``reason`` is not a reason code.
    """
    code = None if reason is None else Reason(reason).value
    # Four bytes per character at most, so the preview never needs the whole (≤ 64 KiB) payload.
    head = PREVIEW_CHARS * 4
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_LIST, {"head": head, "reason": code, "device": device_id,
                                   "pending": pending_only, "limit": limit}).fetchall()
    return [
        QuarantineRecord(
            id=r["id"], received_at=r["received_at"], topic=r["topic"], device_id=r["device_id"],
            reason=r["reason"], detail=r["detail"], payload_size=r["payload_size"],
            payload_preview=preview_payload(bytes(r["head"]), r["payload_size"]),
            replayed_at=r["replayed_at"],
        )
        for r in rows
    ]


def replay_unknown_devices(url_or_conn: str | psycopg.Connection, window: TimeWindow, *,
                           device_id: str | None = None, limit: int | None = None,
                           chunk_size: int = DEFAULT_CHUNK) -> ReplayResult:
    """Store the quarantined messages of devices that are registered now, and mark them replayed.

    Each chunk is taken, stored and marked in one transaction, so a crash never loses a message
    nor replays it twice. Readings keep their timestamps, and the time window is judged against
    the original receive time, as it was when the message first arrived. A connection is used
    only for its parameters: replay owns its transactions, one per chunk, on a connection of its own.

    Raises:
        psycopg.Error: a chunk failed; it was rolled back, the chunks before it stay committed.
    """
    url = url_or_conn if isinstance(url_or_conn, str) else make_conninfo(
        url_or_conn.info.dsn, password=url_or_conn.info.password)
    result = ReplayResult()
    writer = Writer(url, window)
    try:
        conn = writer.connection
        while limit is None or result.messages_replayed < limit:
            take = chunk_size if limit is None else min(chunk_size, limit - result.messages_replayed)
            if not _replay_chunk(conn, writer, window, device_id, take, result):
                break
        result.still_unknown = conn.execute(_STILL_UNKNOWN, {"device": device_id}).fetchone()[0]
    finally:
        writer.close()
    return result


def _replay_chunk(conn: psycopg.Connection, writer: Writer, window: TimeWindow,
                  device_id: str | None, take: int, result: ReplayResult) -> int:
    """Replay up to ``take`` messages in one transaction; return how many were taken."""
    with conn.transaction():
        taken = conn.execute(_TAKE, {"device": device_id, "limit": take}).fetchall()
        if not taken:
            return 0
        messages = [InboundMessage(topic, bytes(payload), received_at, content_type=content_type)
                    for _, topic, payload, received_at, content_type in taken]
        rows = route_messages(messages, lambda d: writer.directory.lookup(conn, d), window)
        # Inside our transaction write_rows' own becomes a savepoint: its rows and the mark below
        # commit together. Once per transaction only, as its staging table empties on commit.
        written = writer.write_rows(rows)
        conn.execute(_MARK, ([row[0] for row in taken],))
    result.messages_replayed += len(taken)
    result.readings_stored += written.readings_stored
    result.readings_duplicate += written.readings_duplicate
    result.quarantined.update(written.quarantined)
    return len(taken)
