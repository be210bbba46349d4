"""Observations → readings ready to store, or rejections with the contract's reason codes.

One message holds at most one value per metric and instant (the database keeps microseconds). A
repeat with the same value is stored once and not reported: nothing is lost, as with a message
delivered twice. Different values for one metric and instant contradict each other, and the
database would keep whichever came first: none is stored, and each such metric and instant is
quarantined once as ``invalid_schema``, naming metric, time and values. That code, because the
message breaks the shape all formats share (one value per metric and time), not a value's range
or a time's window, and nothing was refused by storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import TypeAlias

from ingest.decode import Observation
from smartcity.catalog import DEVICE_KINDS, METRICS, METRICS_BY_ID
from smartcity.contract import Reason, Rejection
from smartcity.settings import IngestSettings

__all__ = ["DeviceRef", "Reading", "TimeWindow", "Validated", "time_window", "validate_observations"]

# (epoch seconds, device key, metric key, value in the catalogue unit). A plain tuple, not a class:
# one is built per reading on the hot path, and COPY writes it as it is.
Reading: TypeAlias = tuple[float, int, int, float]


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A registered device as ingest needs it: the compact key and the kind."""

    id: int
    device_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far from the receive time a reading's timestamp may lie, in seconds."""

    future_s: float
    past_s: float
    # Why the past limit is what it is, when not the plain ingest window: said in each rejection.
    past_note: str = ""


def time_window(settings: IngestSettings, raw_retention_days: int | None) -> TimeWindow:
    """Return ingest's window: its own past window, or the raw retention where that is shorter.

    A reading older than the raw retention would be dropped by the next retention run, before any
    rollup took it in (and behind the raw horizon, none will), so it is refused at the door.
    """
    days, note = settings.past_window_days, ""
    if raw_retention_days is not None and raw_retention_days < days:
        days = raw_retention_days
        note = (f"raw readings are kept {days} days (SMARTCITY_RETENTION__RAW_DAYS), so older ones"
                " are not stored")
    return TimeWindow(settings.future_window_s, days * 86400.0, note)


@dataclass(slots=True)
class Validated:
    """The readings to store and the rejected parts of one message."""

    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@cache
def _kind_metrics(kind: str) -> dict[str, tuple[int, float, float]]:
    """Map each metric of ``kind`` to (metric key, min, max), for one dict lookup per reading."""
    return {name: (METRICS[name].id, METRICS[name].min_value, METRICS[name].max_value)
            for name in DEVICE_KINDS[kind].metrics}


def validate_observations(device: DeviceRef, observations: list[Observation],
                          received_at: float, window: TimeWindow, *,
                          one_per_metric: bool = False) -> Validated:
    """Check each observation against the catalogue, the device's kind and the time window.

    ``one_per_metric``: the caller knows no metric repeats (``Decoded.one_per_metric``), which
    spares the search for two values of one metric and instant.
    """
    out = Validated()
    allowed = _kind_metrics(device.kind)
    earliest, latest = received_at - window.past_s, received_at + window.future_s
    for obs in observations:
        spec = allowed.get(obs.metric)
        value = obs.value
        time = received_at if obs.time is None else obs.time
        # The common case in one test; anything else is sorted out (rarely) below.
        if (spec is not None and type(value) in (float, int) and spec[1] <= value <= spec[2]
                and earliest <= time <= latest):
            out.readings.append((time, device.id, spec[0], float(value)))
        else:
            out.rejections.append(_reject(obs, device.kind, received_at, window))
    readings = out.readings
    # Distinct metrics cannot collide, which settles every single observation in one cheap look.
    if (not one_per_metric and len(readings) > 1
            and len({reading[2] for reading in readings}) != len(readings)):
        out.readings = _settle_repeats(readings, out.rejections)
    return out


def _instant(time: float) -> int:
    """Return the microsecond ``time`` is stored as: to_timestamp() keeps no more."""
    return round(time * 1e6)


def _settle_repeats(readings: list[Reading], rejections: list[Rejection]) -> list[Reading]:
    """Keep one of each identical repeat; drop and reject every metric-instant with two values."""
    if len({(_instant(time), metric) for time, _, metric, _ in readings}) == len(readings):
        return readings  # a batch of distinct times: the usual case, one set and no copy
    values: dict[tuple[int, int], list[float]] = {}
    for time, _, metric, value in readings:
        values.setdefault((_instant(time), metric), []).append(value)
    kept: list[Reading] = []
    for reading in readings:
        key = (_instant(reading[0]), reading[2])
        found = values.get(key)
        if found is None:
            continue  # already kept, or already rejected
        del values[key]
        distinct = list(dict.fromkeys(found))
        if len(distinct) == 1:
            kept.append(reading)
        else:
            name = METRICS_BY_ID[reading[2]].name
            stamp = datetime.fromtimestamp(reading[0], UTC).isoformat().replace("+00:00", "Z")
            rejections.append(Rejection(Reason.INVALID_SCHEMA, (
                f"{name} at {stamp} has {len(distinct)} different values in one message "
                f"({', '.join(repr(v) for v in distinct[:5])}); none stored")))
    return kept


def _reject(obs: Observation, kind: str, received_at: float, window: TimeWindow) -> Rejection:
    """Say why ``obs`` failed the fast check, in the order the contract's reasons apply."""
    metric = METRICS.get(obs.metric)
    if metric is None:
        return Rejection(Reason.UNKNOWN_METRIC, f"{obs.metric!r:.64} is not in the metric catalogue")
    if obs.metric not in DEVICE_KINDS[kind].metrics:
        return Rejection(Reason.UNKNOWN_METRIC, f"{obs.metric} is not a metric of {kind}")
    value = obs.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejection(Reason.INVALID_SCHEMA, f"{obs.metric}: value {value!r:.40} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        return Rejection(Reason.NON_FINITE, f"{obs.metric}: value {value!r} is not finite")
    if not metric.in_range(value):
        return Rejection(Reason.OUT_OF_RANGE, f"{obs.metric}: value {value!r:.40} outside "
                                              f"[{metric.min_value:g}, {metric.max_value:g}] {metric.unit}")
    assert obs.time is not None  # only a device-given time can be outside the window
    if obs.time > received_at:
        return Rejection(Reason.TIMESTAMP_OUT_OF_WINDOW,
                         f"{obs.metric}: ts {obs.time - received_at:.0f} s in the future")
    note = f" ({window.past_note})" if window.past_note else ""
    return Rejection(Reason.TIMESTAMP_OUT_OF_WINDOW,
                     f"{obs.metric}: ts {(received_at - obs.time) / 86400:.0f} days in the past{note}")
