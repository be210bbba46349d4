"""Telemetry payload bytes → observations, per the contract's formats.

Formats: one observation ``{"ts": T, "metrics": {...}}``, a batch (a JSON array of those, up to
1000) and a SenML JSON pack (``ingest.senml``, RFC 8428), told apart by the MQTT v5 content type or,
without one, by shape. Decoding never raises on device input: every problem becomes a
``Rejection``, and the valid parts of the same message still come through.

JSON (RFC 8259) leaves repeated member names to the parser; orjson keeps the last silently, so a
payload with a repeated member anywhere is refused whole (``invalid_json``) rather than losing a
value. Text timestamps follow RFC 3339 §5.6 exactly (leap seconds: see ``parse_ts``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ciso8601
import orjson

from ingest.senml import has_senml_fields, is_senml_content_type, iter_senml, looks_like_senml
from smartcity.contract import MAX_BATCH, MAX_PAYLOAD_BYTES, Reason, Rejection

__all__ = ["Decoded", "Observation", "decode_payload", "parse_ts"]

_EPOCH_MS_THRESHOLD = 1e11  # contract: numbers above this are epoch milliseconds
_EARLIEST, _LATEST = -62135596800, 253402300799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z
# A leap second is stored as the last microsecond of its minute: after every reading of second 59
# and before the next minute, and representable by datetime and timestamptz, which have no :60.
_LEAP_SECOND_AS = 0.999999


# Not frozen: a frozen dataclass is ~4x slower to build, and one is built per message/reading.
@dataclass(slots=True)
class Observation:
    """One metric value as the device sent it; ``time`` is epoch seconds, None for receive time."""

    time: float | None
    metric: str
    value: Any


@dataclass(slots=True)
class Decoded:
    """What a payload decoded into: observations to validate and parts already rejected."""

    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # Each metric at most once: a single observation object, whose members are unique (a repeated
    # one is refused), so the validator need not look for two values of one metric and instant.
    one_per_metric: bool = False


class _TimestampError(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_ts(raw: Any) -> float:
    """Parse an RFC 3339 string, epoch seconds or epoch milliseconds into epoch seconds.

    Text must match RFC 3339 §5.6 ``date-time``: ``T``/``Z`` in either case, any number of
    fraction digits (kept to the microsecond), ``Z`` or a ``±hh:mm`` offset. A space instead of
    ``T`` (the §5.6 NOTE's option "by agreement") is refused: the contract makes no such agreement.
    A leap second (``:60``, allowed by §5.7 only where UTC reads 23:59:60 on a month's last day)
    becomes the last microsecond of that minute, 23:59:59.999999.

    Raises:
        ValueError: (a ``_TimestampError``) the value is not a timestamp the contract allows.
    """
    if isinstance(raw, str):
        seconds = _parse_rfc3339(raw)
    elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _TimestampError(Reason.INVALID_SCHEMA, f"ts must be RFC 3339 text or a number, got {raw!r:.40}")
    elif isinstance(raw, float) and not math.isfinite(raw):
        raise _TimestampError(Reason.INVALID_SCHEMA, f"ts {raw!r} is not finite")
    else:
        try:
            number = float(raw)
        except OverflowError:  # an integer literal beyond float64 (the stdlib parser keeps it exact)
            raise _TimestampError(Reason.TIMESTAMP_OUT_OF_WINDOW, "ts is outside years 1-9999") from None
        seconds = number / 1000 if number > _EPOCH_MS_THRESHOLD else number
    if not _EARLIEST <= seconds <= _LATEST:
        raise _TimestampError(Reason.TIMESTAMP_OUT_OF_WINDOW, f"ts {raw!r:.40} is outside years 1-9999")
    return seconds


def _parse_rfc3339(raw: str) -> float:
    # ciso8601's RFC 3339 mode is strict but for three things settled here: it takes a space as
    # separator and an ordinal date (YYYY-DDD), and refuses leap seconds (datetime has no :60).
    try:
        parsed = ciso8601.parse_rfc3339(raw)
    except ValueError as err:
        return _parse_unusual_rfc3339(raw, err)
    # What ciso8601 parsed starts with a 4-digit year, so a full date has its second hyphen at 7
    # and the separator at 10.
    if raw[7] != "-":
        raise _not_rfc3339(raw, "the date must be YYYY-MM-DD")
    if raw[10] == " ":
        raise _not_rfc3339(raw, "date and time must be joined by 'T'")
    return parsed.timestamp()


def _parse_unusual_rfc3339(raw: str, err: ValueError) -> float:
    """Read a leap second or year 0000 that ciso8601 refused with ``err``, or refuse it."""
    if raw.startswith("0000-"):  # valid RFC 3339, but before year 1
        raise _TimestampError(Reason.TIMESTAMP_OUT_OF_WINDOW, f"ts {raw!r:.40} is outside years 1-9999")
    if raw[16:19] != ":60":
        raise _not_rfc3339(raw, str(err))
    try:
        parsed = ciso8601.parse_rfc3339(raw[:17] + "59" + raw[19:])
    except ValueError as inner:
        raise _not_rfc3339(raw, str(inner)) from None
    if raw[7] != "-" or raw[10] == " ":
        raise _not_rfc3339(raw, "the layout must be YYYY-MM-DDThh:mm:ss")
    second_59 = parsed.replace(microsecond=0).timestamp()
    if not _EARLIEST <= second_59 < _LATEST \
            or datetime.fromtimestamp(second_59, UTC).timetuple()[3:6] != (23, 59, 59) \
            or datetime.fromtimestamp(second_59 + 1, UTC).day != 1:
        raise _not_rfc3339(raw, "a leap second (:60) is only at 23:59:60Z on the last day of a month")
    return second_59 + _LEAP_SECOND_AS


def _not_rfc3339(raw: str, why: str) -> _TimestampError:
    return _TimestampError(Reason.INVALID_SCHEMA, f"ts {raw!r:.40} is not RFC 3339: {why}")


class _RepeatedMember(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate member {key!r:.64} in a JSON object: which value was meant is unknown")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object for ``json.loads``, refusing a member name that occurs twice."""
    members = dict(pairs)
    if len(members) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedMember(key)
            seen.add(key)
    return members


def _may_repeat_a_member(payload: bytes, document: Any) -> bool:
    """Tell cheaply whether ``document`` (orjson's reading of ``payload``) may have lost a member.

    Each member has one colon outside strings and a string keeps its colons verbatim unless
    escaped, so without escapes the payload has exactly as many colons as its compact re-encoding
    has, unless a repeated member vanished. Escapes (rare in telemetry) get the full check.
    """
    if not isinstance(document, (dict, list)):
        return False
    try:
        # count() rather than `in`: for one byte it is the faster scan
        return payload.count(b"\\") > 0 or orjson.dumps(document).count(b":") != payload.count(b":")
    except orjson.JSONEncodeError:  # nesting beyond orjson's writer, or an integer beyond 64 bits
        return True


def _loads(payload: bytes) -> Any:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        # orjson rejects NaN/Infinity and numbers beyond float64 outright; the stdlib parser reads
        # them, so such a value is quarantined as non_finite while its neighbours are stored.
        # Decoding the bytes first keeps the contract's UTF-8: json.loads(bytes) would also take
        # UTF-16/32 and skip a byte order mark, which orjson (and the contract) refuse.
        return json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_members)
    if _may_repeat_a_member(payload, document):
        # The slow parse only looks for a repeated member; orjson's stricter reading is kept.
        json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_members)
    return document


def _decode_observation(element: Any, where: str, out: Decoded) -> None:
    if not isinstance(element, dict):
        out.rejections.append(Rejection(Reason.INVALID_SCHEMA, f"{where}must be an object"))
        return
    metrics = element.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        hint = " (it has SenML fields, but a batch cannot hold SenML records)" \
            if "metrics" not in element and has_senml_fields(element) else ""
        out.rejections.append(
            Rejection(Reason.INVALID_SCHEMA, f"{where}needs a non-empty object 'metrics'{hint}")
        )
        return
    time: float | None = None
    if "ts" in element:
        try:
            time = parse_ts(element["ts"])
        except _TimestampError as err:
            out.rejections.append(Rejection(err.reason, f"{where}{err}"))
            return
    out.observations.extend(Observation(time, name, value) for name, value in metrics.items())


def _decode_list(document: list[Any], content_type: str | None, received_at: float | None,
                 out: Decoded) -> None:
    # A declared content type wins; without one the shape decides (see looks_like_senml).
    senml = (content_type is not None and is_senml_content_type(content_type)) \
        or (bool(document) and looks_like_senml(document))
    what, part = ("SenML pack", "records") if senml else ("batch", "elements")
    if not document:
        out.rejections.append(Rejection(Reason.INVALID_SCHEMA, f"empty {what}"))
    elif len(document) > MAX_BATCH:
        out.rejections.append(Rejection(
            Reason.INVALID_SCHEMA, f"{what} of {len(document)} {part}, limit {MAX_BATCH}"
        ))
    elif senml:
        for item in iter_senml(document, received_at):
            if isinstance(item, Rejection):
                out.rejections.append(item)
            else:
                out.observations.append(Observation(item.time, item.metric, item.value))
    else:
        for index, element in enumerate(document):
            _decode_observation(element, f"element {index}: ", out)


def decode_payload(payload: bytes, content_type: str | None = None,
                   received_at: float | None = None) -> Decoded:
    """Decode a telemetry payload into observations and rejections; never raises on bad input.

    ``content_type`` is the MQTT v5 content type, if any (``application/senml+json`` selects
    SenML); ``received_at`` (epoch seconds, default now) anchors SenML's relative times.
    """
    out = Decoded()
    if len(payload) > MAX_PAYLOAD_BYTES:
        out.rejections.append(Rejection(
            Reason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        ))
        return out
    try:
        document = _loads(payload)
    except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, _RepeatedMember
        out.rejections.append(Rejection(Reason.INVALID_JSON, str(err)[:200] or "not JSON"))
        return out
    if isinstance(document, list):
        _decode_list(document, content_type, received_at, out)
    elif content_type is not None and is_senml_content_type(content_type):
        out.rejections.append(Rejection(Reason.INVALID_SCHEMA, "a SenML pack must be a JSON array"))
    else:
        _decode_observation(document, "", out)
        out.one_per_metric = True
    return out
