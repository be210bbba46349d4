"""SQL of the quarantine: store rejected messages, list them, take and mark them for replay.

One row per message: the payload once (cut to the contract's limit, ``payload_size`` the size as
received), ``reason`` the first rejected part's code, ``reasons`` every code of the message (what
filters match), ``parts`` the counts per reason and the first parts' details. A row made by a
replay points at the row it came from (``replay_of``) and stores no payload of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from smartcity.contract import Reason

__all__ = ["INSERT", "LIST", "MARK_REPLAYED", "STILL_UNKNOWN", "TAKE_UNKNOWN_DEVICE", "list_params"]

INSERT = (
    "INSERT INTO quarantine (received_at, topic, device_id, reason, reasons, detail, parts, payload,"
    " payload_size, content_type, replay_of)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

# The listing of `smartcity quarantine list` and `GET /api/v1/quarantine`: both run this statement
# with parameters from ``list_params``, so the CLI and the API select and order alike. Newest
# first by id (the identity grows with every insert, so a page boundary never moves under
# concurrent inserts); ``before`` is the keyset cursor, the last id of the previous page.
# ``reasons`` matches a message with any part rejected for any of the codes (&& uses the GIN index).
# The payload of a replay's row is its source's; only ``head`` bytes of it leave the server.
LIST = (
    "SELECT q.id, q.received_at, q.topic, q.device_id, q.reason, q.reasons, q.detail, q.parts,"
    " q.payload_size, length(coalesce(q.payload, s.payload)) AS payload_kept,"
    " substring(coalesce(q.payload, s.payload) FROM 1 FOR %(head)s) AS head,"
    " q.content_type, q.replayed_at, q.replay_of"
    " FROM quarantine q LEFT JOIN quarantine s ON s.id = q.replay_of"
    " WHERE (%(reasons)s::text[] IS NULL OR q.reasons && %(reasons)s::text[])"
    " AND (%(device)s::text IS NULL OR q.device_id = %(device)s)"
    " AND (%(replayed)s::boolean IS NULL OR (q.replayed_at IS NOT NULL) = %(replayed)s::boolean)"
    " AND (%(since)s::timestamptz IS NULL OR q.received_at >= %(since)s::timestamptz)"
    " AND (%(until)s::timestamptz IS NULL OR q.received_at < %(until)s::timestamptz)"
    " AND (%(before)s::bigint IS NULL OR q.id < %(before)s::bigint)"
    " ORDER BY q.id DESC LIMIT %(limit)s"
)


def list_params(*, head: int, limit: int, reasons: Sequence[str] | None = None,
                device: str | None = None, replayed: bool | None = None,
                since: datetime | None = None, until: datetime | None = None,
                before: int | None = None) -> dict[str, Any]:
    """Return the parameters of ``LIST``: every filter named, None where it does not apply.

    ``replayed`` False keeps pending items only, True replayed ones, None both; ``since`` is
    inclusive and ``until`` exclusive on the receive time.

    Raises:
        ValueError: a reason is not one of the contract's codes.
    """
    codes = None if reasons is None else sorted({Reason(r).value for r in reasons})
    return {"head": head, "limit": limit, "reasons": codes or None, "device": device,
            "replayed": replayed, "since": since, "until": until, "before": before}


# Only rows whose device exists now: the others would just be quarantined again. SKIP LOCKED lets
# a concurrent replay take other rows instead of waiting for, and then re-taking, these. ``source``
# is the row holding the payload, which a new row made by this replay points at.
TAKE_UNKNOWN_DEVICE = (
    "SELECT q.id, coalesce(q.replay_of, q.id) AS source, q.topic, coalesce(q.payload, s.payload),"
    " extract(epoch FROM q.received_at)::float8, q.content_type"
    " FROM quarantine q LEFT JOIN quarantine s ON s.id = q.replay_of"
    " WHERE q.replayed_at IS NULL AND q.reason = 'unknown_device'"
    " AND (%(device)s::text IS NULL OR q.device_id = %(device)s)"
    " AND EXISTS (SELECT 1 FROM devices d WHERE d.device_id = q.device_id)"
    " ORDER BY q.id LIMIT %(limit)s FOR UPDATE OF q SKIP LOCKED"
)
MARK_REPLAYED = "UPDATE quarantine SET replayed_at = now() WHERE id = ANY(%s)"
STILL_UNKNOWN = (
    "SELECT count(*) FROM quarantine q"
    " WHERE q.replayed_at IS NULL AND q.reason = 'unknown_device'"
    " AND (%(device)s::text IS NULL OR q.device_id = %(device)s)"
    " AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = q.device_id)"
)
