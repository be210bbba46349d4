"""Keyset cursors of /readings: an opaque token for "the rows after this key, of this query".

A cursor is base64url (no padding) of a compact JSON array: the last row's key (time in epoch
microseconds, device id, metric), the query's window (start and end in epoch microseconds, as
resolved on the first page, so every page answers the same window however the defaults moved),
and a checksum over the key, the window and the request's filters. The checksum makes a cursor
reused with other filters, or edited, a clear 400 rather than a silently different answer. It is
not a signature: a forged cursor can only name a position in a query its holder may make anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from api.errors import BadRequest

__all__ = ["Cursor", "Filters", "ReadingKey", "decode_cursor", "encode_cursor"]

_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_CURSOR_CHARS = 1000


@dataclass(frozen=True, slots=True)
class ReadingKey:
    """A reading's place in the order of /readings: time, then device id, then metric."""

    time: datetime
    device_id: str
    metric: str


@dataclass(frozen=True, slots=True)
class Filters:
    """What a request selects, in a canonical form: repetition and order do not change it."""

    devices: tuple[str, ...]
    sites: tuple[str, ...]
    metrics: tuple[str, ...]

    @classmethod
    def of(cls, devices: Sequence[str], sites: Sequence[str], metrics: Sequence[str]) -> Filters:
        """Return the filters of a request's repeated parameters."""
        return cls(tuple(sorted(set(devices))), tuple(sorted(set(sites))), tuple(sorted(set(metrics))))


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts (after ``after``), and the window every page answers."""

    after: ReadingKey
    start: datetime
    end: datetime


def _micros(time: datetime) -> int:
    # Integer microseconds: timestamptz's own resolution, so a key round-trips exactly.
    return (time - _EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _checksum(filters: Filters, fields: list[object]) -> str:
    material = orjson.dumps([_VERSION, filters.devices, filters.sites, filters.metrics, fields])
    return hashlib.blake2b(material, digest_size=12).hexdigest()


def encode_cursor(cursor: Cursor, filters: Filters) -> str:
    """Return the opaque token of ``cursor`` for the query ``filters`` select."""
    key = cursor.after
    fields: list[object] = [_micros(key.time), key.device_id, key.metric, _micros(cursor.start),
                            _micros(cursor.end)]
    raw = orjson.dumps([_VERSION, *fields, _checksum(filters, fields)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(token: str, filters: Filters) -> Cursor:
    """Return the cursor ``token`` stands for, checked against the request's ``filters``.

    Raises:
        BadRequest: the token is not a cursor of this API, or belongs to another query.
    """
    restart = "drop the cursor to start from the first page"
    try:
        if len(token) > _MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, time_us, device_id, metric, start_us, end_us, checksum = orjson.loads(raw)
        if version != _VERSION:
            raise ValueError("another version")
        fields: list[object] = [time_us, device_id, metric, start_us, end_us]
        if not (all(isinstance(n, int) and not isinstance(n, bool) for n in (time_us, start_us, end_us))
                and isinstance(device_id, str) and isinstance(metric, str)
                and isinstance(checksum, str)):
            raise ValueError("malformed fields")
        cursor = Cursor(ReadingKey(_time(time_us), device_id, metric), _time(start_us), _time(end_us))
    except (ValueError, TypeError, OverflowError, binascii.Error, orjson.JSONDecodeError):
        raise BadRequest("the cursor is not one this API issued (malformed or truncated)",
                         hint=restart) from None
    if checksum != _checksum(filters, fields):
        raise BadRequest(
            "the cursor belongs to another query, or was altered: device, site and metric must be"
            " those of the request that returned it", hint=restart)
    return cursor
