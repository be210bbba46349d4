"""SenML JSON packs (RFC 8428) → (time, metric, value) in catalogue units, or a rejection per record.

Base fields (``bn``, ``bt``, ``bu``, ``bv``, ``bver``) apply to their own record and every later one
until changed (§4.1). The metric is the record name ``n`` — the part after the base name, which
names the device and is already known from the topic. Times are seconds; a resolved time below
2**28 is relative to the moment the message was received (§4.5.3). Only numeric (``v``) and
boolean (``vb``) values are stored, a boolean only for a switch metric (catalogue unit ``0/1``,
e.g. ``lamp_on``: true → 1, false → 0); units go through ``ingest.units``. Packs of any version up
to 10 are read (§4.4: a receiver must not use a pack of a version newer than it knows).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

from ingest.units import to_catalogue_unit
from smartcity.catalog import METRICS
from smartcity.contract import SENML_CONTENT_TYPE, Reason, Rejection

__all__ = ["SenmlValue", "has_senml_fields", "is_senml_content_type", "iter_senml", "looks_like_senml"]

_RELATIVE_BELOW = 2**28  # RFC 8428 §4.5.3: smaller resolved times count from "now"
# The version this decoder implements (RFC 8428's 10); older ones (e.g. the 5 that early SenML
# drafts and libraries write) use a subset of its fields, so they are read the same way.
_VERSION = 10
_BASE_FIELDS = ("bn", "bt", "bu", "bv", "bver")
_VALUE_FIELDS = ("v", "vb", "vs", "vd")
# Every label of RFC 8428 §4.1–4.2 (JSON names); one of them marks an object as a SenML record.
_LABELS = frozenset(("bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut"))
# A boolean is a value only of a switch: metrics whose catalogue unit is 0/1 (lamp_on).
_BOOLEAN_METRICS = frozenset(name for name, metric in METRICS.items() if metric.unit == "0/1")
_NAME_SEPARATORS = re.compile(r"[/:;.]")


class SenmlValue(NamedTuple):
    """One resolved record: epoch seconds (None for receive time), metric, catalogue-unit value."""

    time: float | None
    metric: str
    value: float


class _RecordError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class _Inherited:
    """A base field that was set to something invalid; records relying on it are rejected."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def is_senml_content_type(content_type: str) -> bool:
    """Tell whether an MQTT v5 content type names SenML JSON (parameters and case ignored)."""
    return content_type.partition(";")[0].strip().lower() == SENML_CONTENT_TYPE


def has_senml_fields(element: dict[str, Any]) -> bool:
    """Tell whether a JSON object carries any SenML label (``n``, ``bn``, ``v``, ``vb``, ``bt`` …)."""
    return not _LABELS.isdisjoint(element)


def looks_like_senml(document: list[Any]) -> bool:
    """Tell whether a non-empty JSON array is a SenML pack rather than a batch.

    A pack when some element is an object with SenML labels and no element is a batch
    observation (an object with ``metrics``). A pack's first record need not have a name, so any
    record counts; a batch usually shows ``metrics`` in its first element, which ends the look.
    """
    senml = False
    for element in document:
        if isinstance(element, dict):
            if "metrics" in element:
                return False
            senml = senml or has_senml_fields(element)
    return senml


def iter_senml(pack: list[Any], received_at: float | None = None) -> Iterator[SenmlValue | Rejection]:
    """Resolve each record of ``pack``; yield its value or a rejection naming the record index.

    ``received_at`` anchors relative times; without it the current time is used.
    """
    base: dict[str, Any] = {}
    for index, record in enumerate(pack):
        try:
            if not isinstance(record, dict):
                raise _RecordError(Reason.INVALID_SCHEMA, "must be an object")
            yield _resolve(record, index, base, received_at)
        except _RecordError as err:
            yield Rejection(err.reason, f"record {index}: {err}")


def _resolve(record: dict[str, Any], index: int, base: dict[str, Any],
             received_at: float | None) -> SenmlValue:
    _update_base(record, index, base)
    _inherit(base, "bver", _VERSION)  # records under an unsupported version cannot be read at all
    for key in record:
        if key.endswith("_"):  # RFC 8428: a label ending in "_" must be understood, or it is an error
            raise _RecordError(Reason.INVALID_SCHEMA, f"field {key!r:.40} is not supported")
    metric = _metric(record, _inherit(base, "bn", ""))
    value, numeric = _value(record, base, metric)
    unit = record.get("u")
    if unit is None and numeric:  # a boolean has no unit, so a pack-wide bu does not apply to it
        unit = _inherit(base, "bu", None)
    if unit is not None and not isinstance(unit, str):
        raise _RecordError(Reason.INVALID_SCHEMA, f"u must be a string, got {unit!r:.40}")
    converted = to_catalogue_unit(metric, unit, value)
    if isinstance(converted, Rejection):
        raise _RecordError(converted.reason, converted.detail)
    return SenmlValue(_time(record, base, received_at), metric, converted)


def _update_base(record: dict[str, Any], index: int, base: dict[str, Any]) -> None:
    problem = None
    for key in _BASE_FIELDS:
        if key not in record:
            continue
        raw = record[key]
        if key == "bver":
            # A positive integer (§4.1); 10.0 is the same JSON number as 10 to most encoders.
            ok = (type(raw) is int or (type(raw) is float and raw.is_integer())) and 0 < raw <= _VERSION
            detail = f"bver {raw!r:.20} is not supported (versions 1 to {_VERSION})"
        elif key in ("bn", "bu"):
            ok = isinstance(raw, str)
            detail = f"{key} must be a string, got {raw!r:.40}"
        else:
            ok = _is_number(raw)
            detail = f"{key} must be a number, got {raw!r:.40}"
        base[key] = raw if ok else _Inherited(index)
        if not ok and problem is None:
            problem = detail
    if problem is not None:
        raise _RecordError(Reason.INVALID_SCHEMA, problem)


def _inherit(base: dict[str, Any], key: str, default: Any) -> Any:
    value = base.get(key, default)
    if isinstance(value, _Inherited):
        raise _RecordError(Reason.INVALID_SCHEMA, f"inherits the invalid {key} of record {value.index}")
    return value


def _metric(record: dict[str, Any], base_name: str) -> str:
    name = record.get("n", "")
    if not isinstance(name, str):
        raise _RecordError(Reason.INVALID_SCHEMA, f"n must be a string, got {name!r:.40}")
    if name:
        return name
    # Without n the full name is the base name alone; its last segment is usable only when it
    # is a metric ("aq-01/pm25"), otherwise it merely names the device.
    tail = _NAME_SEPARATORS.split(base_name)[-1]
    if tail in METRICS:
        return tail
    raise _RecordError(Reason.INVALID_SCHEMA, "has no name n naming a metric")


def _value(record: dict[str, Any], base: dict[str, Any], metric: str) -> tuple[float, bool]:
    fields = [key for key in _VALUE_FIELDS if key in record]
    if len(fields) != 1:
        found = " and ".join(fields) if fields else "none"
        raise _RecordError(Reason.INVALID_SCHEMA, f"needs exactly one of v, vb, vs, vd (found {found})")
    key = fields[0]
    raw = record[key]
    if key == "vs":
        raise _RecordError(Reason.INVALID_SCHEMA, "string values (vs) not supported")
    if key == "vd":
        raise _RecordError(Reason.INVALID_SCHEMA, "data values (vd) not supported")
    if key == "vb":
        if not isinstance(raw, bool):
            raise _RecordError(Reason.INVALID_SCHEMA, f"vb must be true or false, got {raw!r:.40}")
        if metric in METRICS and metric not in _BOOLEAN_METRICS:  # unknown ones: the validator's
            switches = ", ".join(sorted(_BOOLEAN_METRICS))
            raise _RecordError(Reason.INVALID_SCHEMA,
                               f"{metric} is a number, not a boolean (vb); booleans are for {switches}")
        return (1.0 if raw else 0.0), False
    if not _is_number(raw):
        raise _RecordError(Reason.INVALID_SCHEMA, f"v must be a number, got {raw!r:.40}")
    base_value = _inherit(base, "bv", None)
    if base_value is None:
        return raw, True
    try:
        return raw + base_value, True
    except OverflowError:  # an integer literal beyond float64 plus a float
        raise _RecordError(Reason.OUT_OF_RANGE, "v + bv is too large") from None


def _time(record: dict[str, Any], base: dict[str, Any], received_at: float | None) -> float | None:
    base_time = _inherit(base, "bt", None)
    offset = record.get("t")
    if offset is not None and not _is_number(offset):
        raise _RecordError(Reason.INVALID_SCHEMA, f"t must be a number, got {offset!r:.40}")
    if base_time is None and offset is None:
        return None  # no time at all: the receive time
    try:
        resolved = float(base_time or 0) + float(offset or 0)
    except OverflowError:
        resolved = math.inf
    if math.isnan(resolved):
        raise _RecordError(Reason.INVALID_SCHEMA, "bt + t is not a number")
    if math.isinf(resolved):
        raise _RecordError(Reason.TIMESTAMP_OUT_OF_WINDOW, "bt + t is beyond any representable time")
    if resolved < _RELATIVE_BELOW:
        return (time.time() if received_at is None else received_at) + resolved
    return resolved


def _is_number(raw: Any) -> bool:
    return isinstance(raw, (int, float)) and not isinstance(raw, bool)
