"""What ``smartcity_aggregate`` must answer, computed the slow and obvious way from raw readings.

The property tests compare the planner (rollups, pending hours read raw, calendar buckets in the
database) with this module, which sees only the stored readings and the device registry: every
bucket is found with ``zoneinfo`` on the reading's own wall-clock time, every aggregate is a numpy
reduction over the readings that fall in it. Nothing here knows about rollups.

Semantics (the planner's, migration 007):
- the devices asked for are ``device_ids`` (any kind) or else every device whose kind reports the
  metric, narrowed to ``site_ids``; readings count when ``start <= time < end``;
- buckets follow ``tz`` (default: the rollup zone): s/m/h buckets are whole multiples of the width
  since Monday 2000-01-03 00:00 in the zone (``time_bucket``'s origin), days start at local midnight,
  weeks on Monday, months on the 1st; a bucket is labelled by its start even when ``start`` cuts it;
- ``increase`` sums, over the readings in the bucket, the rise from the device's previous reading
  (anywhere before, even before ``start``): ``cur - prev`` if ``cur >= prev`` else ``cur`` (a reset),
  0 for a device's very first reading; across devices the sum of the devices';
- across devices ``first`` is the earliest reading (ties: smallest device id), ``last`` the latest
  (ties: largest device id); empty buckets are left out; rows come ordered by key, then time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["AGGS", "RefDevice", "RefQuery", "RefReading", "RefRow", "bucket_start", "compute_aggregate",
           "counter_rise"]

AGGS = ("avg", "min", "max", "sum", "count", "first", "last", "increase")
_ORIGIN = datetime(2000, 1, 3)  # a Monday, local wall-clock time: time_bucket's default origin
_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class RefDevice:
    """A registered device as the planner sees it: its site and the metrics its kind reports."""

    device_id: str
    site_id: str
    kind_metrics: frozenset[str]


@dataclass(frozen=True)
class RefReading:
    """One stored reading (after the readings key has deduplicated arrivals)."""

    device_id: str
    metric: str
    time: datetime  # timezone-aware
    value: float


@dataclass(frozen=True)
class RefQuery:
    """The arguments of one ``smartcity_aggregate`` call."""

    metric: str
    bucket: str
    agg: str
    start: datetime
    end: datetime
    device_ids: tuple[str, ...] | None = None
    site_ids: tuple[str, ...] | None = None
    group_by: str = "device"
    tz: str | None = None


@dataclass(frozen=True)
class RefRow:
    """One row of the answer: a key's bucket, its value and how many readings it holds."""

    key: str
    time: datetime
    value: float
    count: int


def counter_rise(previous: float | None, current: float) -> float:
    """Return how far a counter rose from ``previous`` to ``current``; a fall is a reset to ``current``."""
    if previous is None:
        return 0.0
    return current - previous if current >= previous else current


@lru_cache(maxsize=1 << 20)  # a pure function of its arguments; the tests ask it the same often
def bucket_start(moment: datetime, bucket: str, zone: str) -> datetime:
    """Return the start (UTC) of the ``bucket`` (1m, 1h, 1d, 1w, 1mo…) holding ``moment`` in ``zone``."""
    match = re.fullmatch(r"([1-9][0-9]*)(s|m|h|d|w|mo)", bucket)
    if match is None:
        raise ValueError(f"bucket {bucket!r} is not a count and a unit")
    count, unit = int(match[1]), match[2]
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz).replace(tzinfo=None)  # the wall-clock time in the zone
    if unit in _SECONDS:
        width = count * _SECONDS[unit]
        since = int((local - _ORIGIN).total_seconds() // width) * width
        start_local = _ORIGIN + timedelta(seconds=since)
    elif count != 1:
        raise ValueError("calendar buckets other than 1d, 1w and 1mo are not modelled")
    elif unit == "d":
        start_local = datetime.combine(local.date(), datetime.min.time())
    elif unit == "w":
        monday: date = local.date() - timedelta(days=local.weekday())
        start_local = datetime.combine(monday, datetime.min.time())
    else:
        start_local = datetime(local.year, local.month, 1)
    return start_local.replace(tzinfo=tz).astimezone(UTC)


def compute_aggregate(readings: Iterable[RefReading], devices: Mapping[str, RefDevice], query: RefQuery,
                      rollup_zone: str) -> list[RefRow]:
    """Return the rows ``smartcity_aggregate`` must return for ``query`` over the stored ``readings``."""
    if query.agg not in AGGS:
        raise ValueError(f"unknown agg {query.agg!r}")
    chosen = {
        d.device_id for d in devices.values()
        if (query.device_ids is None or d.device_id in query.device_ids)
        and (query.site_ids is None or d.site_id in query.site_ids)
        and (query.device_ids is not None or query.metric in d.kind_metrics)
    }
    zone = query.tz or rollup_zone
    # Every reading of the metric of each chosen device, in time order: the previous one of a
    # reading, for increase, may lie anywhere before it, inside the range or not.
    history: dict[str, list[RefReading]] = defaultdict(list)
    for r in readings:
        if r.metric == query.metric and r.device_id in chosen:
            history[r.device_id].append(r)
    groups: dict[tuple[str, datetime], list[tuple[RefReading, float]]] = defaultdict(list)
    for device_id, series in history.items():
        series.sort(key=lambda r: r.time)
        previous: float | None = None
        for r in series:
            rise = counter_rise(previous, r.value)
            previous = r.value
            if query.start <= r.time < query.end:
                key = _group_key(devices[device_id], query.group_by)
                groups[(key, bucket_start(r.time, query.bucket, zone))].append((r, rise))
    return [RefRow(key, start, _reduce(members, query.agg), len(members))
            for (key, start), members in sorted(groups.items())]


def _group_key(device: RefDevice, group_by: str) -> str:
    if group_by == "device":
        return device.device_id
    if group_by == "site":
        return device.site_id
    if group_by == "none":
        return "all"
    raise ValueError(f"unknown group_by {group_by!r}")


def _reduce(members: Sequence[tuple[RefReading, float]], agg: str) -> float:
    values = np.array([r.value for r, _ in members], dtype=np.float64)
    if agg == "count":
        return float(len(values))
    if agg == "sum":
        return float(np.sum(values))
    if agg == "avg":
        return float(np.sum(values) / len(values))
    if agg == "min":
        return float(np.min(values))
    if agg == "max":
        return float(np.max(values))
    if agg == "increase":
        return float(np.sum(np.array([rise for _, rise in members], dtype=np.float64)))
    in_order = sorted(members, key=lambda m: (m[0].time, m[0].device_id))
    return in_order[0][0].value if agg == "first" else in_order[-1][0].value
