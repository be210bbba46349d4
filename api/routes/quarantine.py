"""GET /quarantine (admin): rejected messages with their reason codes, newest first, a page at a time.

The listing is `smartcity quarantine list`'s statement (``smartcity.db.queries.quarantine.LIST``)
with the same filters, so the CLI and the API show the same items in the same order. Pages are
keyed on the item id, which grows with every insert: messages quarantined while an operator pages
never shift or repeat an item. The cursor is opaque and bound to the filters it was made with.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from api.deps import ConnDep
from api.errors import BadRequest, InvalidParameter, problem_responses
from api.keyset import decode_keyset, encode_keyset
from api.models import PayloadOut, QuarantineItemOut, QuarantinePage, QuarantinePart
from api.params import QuarantineParams
from api.queries import quarantine as queries

__all__ = ["PAGE_BYTES_MAX", "admin_router", "show_payload"]

# The quarantine has no read-scope routes; ``router`` exists so every route module has one.
admin_router = APIRouter(tags=["quarantine"], responses=problem_responses(400, 422, 503))

# limit × payload_bytes may not exceed this: a page of 500 whole 64 KiB payloads would be a
# 40 MB answer (base64 adds a third) built in memory.
PAGE_BYTES_MAX = 8 * 1024 * 1024

_REPLAYED = {"pending": False, "replayed": True, "all": None}


def _fingerprint(params: QuarantineParams) -> str:
    """Return a digest of the filters a cursor is valid for (not the page size or payload bytes)."""
    since, until = (None if t is None else t.isoformat() for t in (params.since, params.until))
    key = [sorted(set(params.reason)), params.device, since, until, params.state]
    return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]


_OTHER_FILTERS = ("a listing with other filters; repeat that page's reason, device, since, until and"
                  " state, or leave the cursor out")
_RESTART = "leave the cursor out to start from the newest item"


def show_payload(head: bytes, size: int, stored: int) -> PayloadOut:
    """Return the first bytes of a payload as UTF-8 text when they are text, else as base64.

    ``head`` is what was fetched of the ``stored`` bytes (``size`` as received). A cut through a
    multi-byte character, by this answer or by the quarantine's 64 KiB cap, is no sign of binary
    data: the text stops before that character.
    """
    cut = len(head) < size
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if cut and err.reason == "unexpected end of data":
            head = head[:err.start]
            text = head.decode("utf-8")
        else:
            text = None
    if text is None:
        encoding, data = "base64", base64.b64encode(head).decode()
    else:
        encoding, data = "utf-8", text
    return PayloadOut(encoding=encoding, data=data, size=size, stored=stored, shown=len(head),
                      capped=len(head) < size)


def _item(row: dict[str, Any]) -> QuarantineItemOut:
    parts = row["parts"]
    return QuarantineItemOut(
        id=row["id"], received_at=row["received_at"], topic=row["topic"], device_id=row["device_id"],
        reason=row["reason"], reasons=parts["by_reason"], detail=row["detail"],
        parts_total=parts["total"], parts=[QuarantinePart.model_validate(p) for p in parts["first"]],
        content_type=row["content_type"],
        payload=show_payload(bytes(row["head"] or b""), row["payload_size"], row["payload_kept"] or 0),
        replayed_at=row["replayed_at"], replay_of=row["replay_of"],
    )


@admin_router.get("/quarantine", response_model=QuarantinePage, summary="List quarantined messages")
async def read_quarantine(request: Request, response: Response, conn: ConnDep,
                          params: Annotated[QuarantineParams, Query()]) -> QuarantinePage:
    """List quarantined messages, newest first: each part's reason and detail, and the payload.

    `reason` may repeat (any of them matches). Follow `next` (or the `Link` header) for the
    next page; the cursor works only with the filters it was made with.
    """
    if params.since is not None and params.until is not None and params.since >= params.until:
        raise InvalidParameter("until", f"must be later than since ({params.since.isoformat()})")
    if params.limit * params.payload_bytes > PAGE_BYTES_MAX:
        raise BadRequest(
            f"limit × payload_bytes is {params.limit * params.payload_bytes:,} bytes, more than the"
            f" {PAGE_BYTES_MAX:,} a page may carry", hint="ask for fewer items or fewer payload bytes")
    fingerprint = _fingerprint(params)
    before = None if params.cursor is None else decode_keyset(
        params.cursor, fingerprint, size=1, other_listing=_OTHER_FILTERS, restart=_RESTART)[0]
    rows = await queries.list_quarantine(
        conn, head=params.payload_bytes, limit=params.limit + 1,
        reasons=list(params.reason) or None, device=params.device,
        replayed=_REPLAYED[params.state], since=params.since, until=params.until, before=before)
    # One row more than the page tells whether a next page exists, so the last page says so.
    page = rows[:params.limit]
    next_cursor = encode_keyset([page[-1]["id"]], fingerprint) if len(rows) > params.limit else None
    next_url = None
    if next_cursor is not None:
        next_url = str(request.url.include_query_params(cursor=next_cursor))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return QuarantinePage(items=[_item(row) for row in page], next_cursor=next_cursor, next=next_url)
