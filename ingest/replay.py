"""The quarantine, read back: list rejected input, and replay readings of devices registered since.

Replay rebuilds each quarantined message and sends it down the ingest path again (``route_message``
then ``Writer.write_rows``), so it gets the same validation, dedupe and latest-value handling as live
telemetry. Whatever is still invalid gets a new quarantine row with its own reasons that points at
the replayed row (``replay_of``) instead of storing the payload a second time.
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
from ingest.rows import Rows, route_message
from ingest.validate import TimeWindow
from ingest.write import Writer
from smartcity.contract import Reason, device_id_of
from smartcity.db.queries import quarantine as quarantine_sql

__all__ = [
    "QuarantineRecord", "ReplayResult", "list_quarantine", "preview_payload", "replay_unknown_devices",
]

PREVIEW_CHARS = 200
DEFAULT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    """One quarantined message as operators see it: its reasons, the payload as sizes and a preview.

    ``reason`` is the first rejected part's code; ``reasons`` counts the parts of each code;
    ``parts`` details the first parts (at most ``ingest.rows.MAX_STORED_PARTS``).
    ``payload_size`` is the size as received, ``payload_kept`` what quarantine holds of it.
    """

    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    reasons: dict[str, int]
    detail: str
    parts: list[dict[str, str]]
    payload_size: int
    payload_kept: int
    payload_preview: str
    replayed_at: datetime | None
    replay_of: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly dict (times as RFC 3339 text)."""
        return {
            "id": self.id, "received_at": self.received_at.isoformat(), "topic": self.topic,
            "device_id": self.device_id, "reason": self.reason, "reasons": self.reasons,
            "detail": self.detail, "parts": self.parts, "payload_size": self.payload_size,
            "payload_kept": self.payload_kept, "payload_preview": self.payload_preview,
            "replayed_at": self.replayed_at.isoformat() if self.replayed_at else None,
            "replay_of": self.replay_of,
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
    """Return quarantined messages, newest first, optionally with a part of one reason and/or of one device.

    Raises:
        ValueError: ``reason`` is not a reason code.
    """
    # Four bytes per character at most, so the preview never needs the whole (≤ 64 KiB) payload.
    params = quarantine_sql.list_params(
        head=PREVIEW_CHARS * 4, limit=limit, reasons=None if reason is None else [reason],
        device=device_id, replayed=False if pending_only else None)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(quarantine_sql.LIST, params).fetchall()
    return [
        QuarantineRecord(
            id=r["id"], received_at=r["received_at"], topic=r["topic"], device_id=r["device_id"],
            reason=r["reason"], reasons=r["parts"]["by_reason"], detail=r["detail"],
            parts=r["parts"]["first"], payload_size=r["payload_size"], payload_kept=r["payload_kept"],
            payload_preview=preview_payload(bytes(r["head"]), r["payload_size"]),
            replayed_at=r["replayed_at"], replay_of=r["replay_of"],
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
    writer = Writer(url)
    try:
        conn = writer.connection
        while limit is None or result.messages_replayed < limit:
            take = chunk_size if limit is None else min(chunk_size, limit - result.messages_replayed)
            if not _replay_chunk(conn, writer, window, device_id, take, result):
                break
        row = conn.execute(quarantine_sql.STILL_UNKNOWN, {"device": device_id}).fetchone()
        result.still_unknown = row[0] if row else 0
    finally:
        writer.close()
    return result


def _replay_chunk(conn: psycopg.Connection, writer: Writer, window: TimeWindow,
                  device_id: str | None, take: int, result: ReplayResult) -> int:
    """Replay up to ``take`` messages in one transaction; return how many were taken."""
    with conn.transaction():
        taken = conn.execute(quarantine_sql.TAKE_UNKNOWN_DEVICE,
                             {"device": device_id, "limit": take}).fetchall()
        if not taken:
            return 0
        messages = [(source, InboundMessage(topic, bytes(payload), received_at, content_type=content_type))
                    for _, source, topic, payload, received_at, content_type in taken]
        devices = writer.directory.resolve(
            conn, {d for _, m in messages if (d := device_id_of(m.topic)) is not None})
        parts = []
        for source, message in messages:
            part = route_message(message, devices.get, window)
            if part.quarantine is not None:  # still invalid: point at the payload, do not copy it
                part.quarantine = part.quarantine.replaying(source)
            parts.append(part)
        # Inside our transaction write_rows' own becomes a savepoint: its rows and the mark below
        # commit together. Once per transaction only, as its staging table empties on commit.
        written = writer.write_rows(Rows.merge(parts))
        conn.execute(quarantine_sql.MARK_REPLAYED, ([row[0] for row in taken],))
    result.messages_replayed += len(taken)
    result.readings_stored += written.readings_stored
    result.readings_duplicate += written.readings_duplicate
    result.quarantined.update(written.quarantined)
    return len(taken)
