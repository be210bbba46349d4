"""SQL of the alerts as the API shows them: list, read one with its transitions, acknowledge.

The evaluator writes these tables (migration 014); the API's role reads them and may update only
the acknowledgement's columns. Lists are newest first by the time an alert fired, the id breaking
ties, so a keyset cursor (the last row's ``fired_at`` and ``id``) pages without skipping or
repeating an alert while the evaluator adds new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

__all__ = ["ACK", "ACK_STATE", "COLUMNS", "GET", "LIST", "TRANSITIONS", "list_params"]

COLUMNS = (
    "id, rule_id, subject, site_id, device_id, severity, state, fired_at, resolved_at, value,"
    " last_value, summary, acked_at, acked_by, ack_note"
)

# ``since``: alerts active at or after it (still firing, or resolved at or after it).
LIST = (
    f"SELECT {COLUMNS} FROM alerts"
    " WHERE (%(active)s::boolean IS NULL OR (state = 'firing') = %(active)s::boolean)"
    " AND (%(site)s::text IS NULL OR site_id = %(site)s::text)"
    " AND (%(rule)s::text IS NULL OR rule_id = %(rule)s::text)"
    " AND (%(since)s::timestamptz IS NULL OR resolved_at IS NULL OR resolved_at >= %(since)s::timestamptz)"
    " AND (%(after_time)s::timestamptz IS NULL"
    "      OR (fired_at, id) < (%(after_time)s::timestamptz, %(after_id)s::bigint))"
    " ORDER BY fired_at DESC, id DESC LIMIT %(limit)s"
)

GET = f"SELECT {COLUMNS} FROM alerts WHERE id = %s"

TRANSITIONS = (
    "SELECT id, transition, \"at\", value, recorded_at, published_at FROM alert_transitions"
    " WHERE alert_id = %s ORDER BY \"at\", id"
)

# Only an alert nobody acknowledged yet: of two keys acknowledging at once, one wins and the
# other learns who did (ACK_STATE), instead of overwriting the first note.
ACK = (
    "UPDATE alerts SET acked_at = now(), acked_by = %(by)s, ack_note = %(note)s"
    f" WHERE id = %(id)s AND acked_at IS NULL RETURNING {COLUMNS}"
)

ACK_STATE = "SELECT acked_at, acked_by FROM alerts WHERE id = %s"


def list_params(*, limit: int, active: bool | None = None, site: str | None = None,
                rule: str | None = None, since: datetime | None = None,
                after: tuple[datetime, int] | None = None) -> dict[str, Any]:
    """Return the parameters of ``LIST``: every filter named, None where it does not apply.

    ``after`` is the keyset of the previous page's last alert (its ``fired_at`` and ``id``).
    """
    after_time, after_id = after if after is not None else (None, None)
    return {"limit": limit, "active": active, "site": site, "rule": rule, "since": since,
            "after_time": after_time, "after_id": after_id}
