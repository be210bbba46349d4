"""Keyset cursors of the id-ordered listings (quarantine, commands, alerts): "the rows after this key".

A token is base64url (no padding) of a compact JSON array: the last row's key (whole numbers: an
id, or a time in epoch microseconds and an id) and the listing it was made for (a device id, or a
fingerprint of the request's filters). A token reused for another listing, edited or truncated is
a clear 400 rather than a silently different page. It is not a signature: a forged token can only
name a position in a listing its holder may read anyway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import orjson

from api.errors import BadRequest

__all__ = ["decode_keyset", "encode_keyset"]

_MAX_TOKEN_CHARS = 400
_MAX_ID = 2**63 - 1  # bigint: a larger id would fail in the query, not here


def encode_keyset(key: Sequence[int], listing: str) -> str:
    """Return the token of the page after ``key`` in ``listing``."""
    return base64.urlsafe_b64encode(orjson.dumps([*key, listing])).rstrip(b"=").decode("ascii")


def decode_keyset(token: str, listing: str, *, size: int, other_listing: str, restart: str) -> list[int]:
    """Return the ``size`` whole numbers of the key ``token`` carries, made for ``listing``.

    The last number is a row id (1 to the bigint maximum). For the problem's text: ``other_listing``
    ends "the cursor belongs to …" (which listing it was made for, and what to repeat), ``restart``
    says how to start over.

    Raises:
        BadRequest: the token is not one this API issued, or was made for another listing.
    """
    try:
        if len(token) > _MAX_TOKEN_CHARS:
            raise ValueError("too long")
        fields = orjson.loads(base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_",
                                               validate=True))
        if not isinstance(fields, list) or len(fields) != size + 1:
            raise ValueError("another shape")
        *key, made_for = fields
        if not (all(type(n) is int for n in key) and 0 < key[-1] <= _MAX_ID and isinstance(made_for, str)):
            raise ValueError("malformed fields")
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("the cursor is malformed; pass next_cursor of the previous page as it was given",
                         hint=restart) from None
    if made_for != listing:
        raise BadRequest(f"the cursor belongs to {other_listing}", hint=restart)
    return key
