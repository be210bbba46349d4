"""Observations → readings ready to store, or rejections with the contract's reason codes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ingest.decode import Observation
from ingest.reasons import Reason, Rejection
from smartcity.catalog import DEVICE_KINDS, METRICS

__all__ = ["DeviceRef", "Reading", "TimeWindow", "Validated", "validate_observations"]


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """A registered device as ingest needs it: the compact key and the kind."""

    id: int
    device_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class Reading:
    """A valid reading: epoch seconds, device key, metric key, value in the catalogue unit."""

    time: float
    device: int
    metric: int
    value: float


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """How far from the receive time a reading's timestamp may lie, in seconds."""

    future_s: float
    past_s: float


@dataclass(slots=True)
class Validated:
    """The readings to store and the rejected parts of one message."""

    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def validate_observations(device: DeviceRef, observations: list[Observation],
                          received_at: float, window: TimeWindow) -> Validated:
    """Check each observation against the catalogue, the device's kind and the time window."""
    out = Validated()
    kind_metrics = DEVICE_KINDS[device.kind].metrics
    for obs in observations:
        rejection = _check(obs, kind_metrics, device.kind, received_at, window)
        if rejection is not None:
            out.rejections.append(rejection)
            continue
        time = received_at if obs.time is None else obs.time
        out.readings.append(Reading(time, device.id, METRICS[obs.metric].id, float(obs.value)))
    return out


def _check(obs: Observation, kind_metrics: tuple[str, ...], kind: str, received_at: float,
           window: TimeWindow) -> Rejection | None:
    metric = METRICS.get(obs.metric)
    if metric is None:
        return Rejection(Reason.UNKNOWN_METRIC, f"{obs.metric!r:.64} is not in the metric catalogue")
    if obs.metric not in kind_metrics:
        return Rejection(Reason.UNKNOWN_METRIC, f"{obs.metric} is not a metric of {kind}")
    value = obs.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejection(Reason.INVALID_SCHEMA, f"{obs.metric}: value {value!r:.40} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        return Rejection(Reason.NON_FINITE, f"{obs.metric}: value {value!r} is not finite")
    if not metric.in_range(value):
        return Rejection(Reason.OUT_OF_RANGE, f"{obs.metric}: value {value!r:.40} outside "
                                              f"[{metric.min_value:g}, {metric.max_value:g}] {metric.unit}")
    if obs.time is not None:
        if obs.time > received_at + window.future_s:
            return Rejection(Reason.TIMESTAMP_OUT_OF_WINDOW,
                             f"{obs.metric}: ts {obs.time - received_at:.0f} s in the future")
        if obs.time < received_at - window.past_s:
            return Rejection(Reason.TIMESTAMP_OUT_OF_WINDOW,
                             f"{obs.metric}: ts {(received_at - obs.time) / 86400:.0f} days in the past")
    return None
