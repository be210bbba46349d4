"""Judging a rule: the value of each of its subjects at each judged time of a span, in few reads.

A judged time ``t`` is a whole step (a minute, or an hour for long windows and the ISPU); the
condition at ``t`` looks at ``[t - window, t)``. One read serves every subject and every judged time
of the span: a planner call grouped by device or site (threshold, rate of rise), the readings'
minutes (silence), or one ``smartcity_site_ispu`` call per judged hour (ISPU). Windows are then
rolled in numpy (smartcity.alerts.windows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from smartcity.alerts.coverage import COVERED_AGGREGATES, coverage_unit
from smartcity.alerts.lifecycle import Judgement
from smartcity.alerts.rules import AnyRule, IspuCategoryRule, RateOfRiseRule, SilenceRule, ThresholdRule
from smartcity.alerts.windows import Array, BoolArray, coverage, rolling_aggregate, rolling_slope_per_hour
from smartcity.db.queries.alerts import (
    SELECT_AGGREGATE_SPAN,
    SELECT_ISPU,
    SELECT_ISPU_LOW,
    SELECT_LAST_READING,
    SELECT_METRIC,
    SELECT_READING_MINUTES,
    SELECT_SUBJECT_DEVICES,
)

__all__ = ["Judged", "Subject", "judge", "step_of"]

MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Subject:
    """What a rule judges: a device (``key`` its id) or a site (``key`` its id, ``device_id`` None)."""

    key: str
    site_id: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class Judged:
    """Each subject's judgements at ``times`` (values NaN where not judged)."""

    times: tuple[datetime, ...]
    subjects: dict[str, Subject]
    values: dict[str, Array]
    holds: dict[str, BoolArray]
    cleared: dict[str, BoolArray]

    def judgements(self, key: str) -> list[Judgement]:
        """Return ``key``'s judgements in time order (value None: not judged)."""
        values, holds, cleared = self.values[key], self.holds[key], self.cleared[key]
        return [Judgement(t, None if math.isnan(v) else float(v), bool(h), bool(c))
                for t, v, h, c in zip(self.times, values.tolist(), holds.tolist(), cleared.tolist(),
                                      strict=True)]


def step_of(rule: AnyRule) -> timedelta:
    """The spacing of a rule's judged times: an hour for the ISPU and long threshold windows."""
    if isinstance(rule, IspuCategoryRule):
        return HOUR
    # Windows whose coverage counts hours (a day or more: smartcity.alerts.coverage) are judged at
    # whole hours from hourly buckets, so coverage here is what the rule file and Grafana mean.
    if (isinstance(rule, ThresholdRule) and coverage_unit(rule.window) == HOUR
            and rule.window % HOUR == timedelta(0)):
        return HOUR
    return MINUTE


def judge(conn: psycopg.Connection[Any], rule: AnyRule, first: datetime, last: datetime) -> Judged:
    """Judge ``rule`` for all its subjects at every step from ``first`` to ``last`` (both included)."""
    step = step_of(rule)
    times = tuple(first + i * step for i in range(int((last - first) / step) + 1))
    if isinstance(rule, IspuCategoryRule):
        return _judge_ispu(conn, rule, times)
    devices = _select_devices(conn, rule)
    if isinstance(rule, SilenceRule):
        return _judge_silence(conn, rule, times, devices)
    return _judge_series(conn, rule, times, step, devices)


@dataclass(frozen=True, slots=True)
class _Device:
    device_id: str
    site_id: str
    key: int
    created_at: datetime


def _select_devices(conn: psycopg.Connection[Any], rule: AnyRule) -> list[_Device]:
    metric = None if isinstance(rule, SilenceRule | IspuCategoryRule) else rule.metric
    if metric is not None and conn.execute(SELECT_METRIC, (metric,)).fetchone() is None:
        raise ValueError(f"rule {rule.id}: {metric!r} is not a metric of the catalogue")
    sel = rule.select
    rows = conn.execute(SELECT_SUBJECT_DEVICES, {
        "metric": metric, "kinds": list(sel.kinds) or None, "sites": list(sel.sites) or None,
        "devices": list(sel.devices) or None}).fetchall()
    return [_Device(*row) for row in rows]


def _compare(op: str, level: Array, hysteresis: float, v: Array) -> tuple[BoolArray, BoolArray]:
    """(holds, cleared) of values ``v`` against ``level``: cleared is back past it by the hysteresis."""
    with np.errstate(invalid="ignore"):
        if op == ">":
            return v > level, v <= level - hysteresis
        if op == ">=":
            return v >= level, v < level - hysteresis
        if op == "<":
            return v < level, v >= level + hysteresis
        return v <= level, v > level + hysteresis


def _judge_series(conn: psycopg.Connection[Any], rule: ThresholdRule | RateOfRiseRule,
                  times: Sequence[datetime], step: timedelta, devices: Sequence[_Device]) -> Judged:
    k = max(1, math.ceil(rule.window / step))
    start = times[0] - k * step
    n = k + len(times) - 1
    if rule.scope == "site":
        subjects = {d.site_id: Subject(d.site_id, d.site_id, None) for d in devices}
    else:
        subjects = {d.device_id: Subject(d.device_id, d.site_id, d.device_id) for d in devices}
    keys = sorted(subjects)
    row_of = {key: i for i, key in enumerate(keys)}
    values = np.full((len(keys), n), np.nan)
    counts = np.zeros((len(keys), n))
    agg = rule.aggregate if isinstance(rule, ThresholdRule) else "avg"
    if keys:
        rows = conn.execute(SELECT_AGGREGATE_SPAN, {
            "metric": rule.metric, "bucket": "1h" if step == HOUR else "1m", "agg": agg,
            "start": start, "end": times[-1], "devices": [d.device_id for d in devices],
            "group_by": rule.scope}).fetchall()
        for key, at, value, count in rows:
            i, j = row_of.get(key), int((at - start) / step)
            if i is not None and 0 <= j < n and value is not None:
                values[i, j], counts[i, j] = value, count
    share = coverage(counts, k)
    if isinstance(rule, ThresholdRule):
        judged = rolling_aggregate(agg, values, counts, k)
        levels = np.array([[rule.levels.get(key, rule.levels.get(subjects[key].site_id, rule.value))]
                           for key in keys]).reshape(len(keys), 1)
        if agg in COVERED_AGGREGATES:
            judged = np.where(share >= rule.min_coverage, judged, np.nan)
        holds, cleared = _compare(rule.op, levels, rule.hysteresis, judged)
    else:
        judged = rolling_slope_per_hour(values, counts, k, step / HOUR)
        judged = np.where(share >= rule.min_coverage, judged, np.nan)
        with np.errstate(invalid="ignore"):
            holds, cleared = judged > rule.per_hour, judged < rule.per_hour - rule.hysteresis
    return Judged(tuple(times), subjects, {key: judged[row_of[key]] for key in keys},
                  {key: holds[row_of[key]] for key in keys}, {key: cleared[row_of[key]] for key in keys})


def _judge_silence(conn: psycopg.Connection[Any], rule: SilenceRule, times: Sequence[datetime],
                   devices: Sequence[_Device]) -> Judged:
    """Seconds since each device's latest reading before each ``t`` (at least, when none since
    ``t - after``); a device registered after ``t - after`` is judged from its registration."""
    lookback = times[0] - rule.after
    ids = [d.key for d in devices]
    before: dict[int, datetime] = {}
    minutes: dict[int, list[datetime]] = {}
    if ids:
        before = dict(conn.execute(SELECT_LAST_READING,
                                   {"ids": ids, "since": lookback, "before": times[0]}).fetchall())
        for device, _minute, latest in conn.execute(SELECT_READING_MINUTES,
                                                    {"ids": ids, "start": times[0], "end": times[-1]}):
            minutes.setdefault(device, []).append(latest)
    t_s = np.array([t.timestamp() for t in times])
    after_s = rule.after.total_seconds()
    subjects: dict[str, Subject] = {}
    values: dict[str, Array] = {}
    holds: dict[str, BoolArray] = {}
    cleared: dict[str, BoolArray] = {}
    for d in devices:
        seen = np.sort(np.array([m.timestamp() for m in minutes.get(d.key, [])], dtype=np.float64))
        idx = np.searchsorted(seen, t_s, side="left") - 1  # the latest minute strictly before t
        floor = before[d.key].timestamp() if d.key in before else max(d.created_at.timestamp(),
                                                                        lookback.timestamp())
        latest = np.where(idx >= 0, seen[np.clip(idx, 0, None)] if len(seen) else floor, floor)
        silent = t_s - latest
        silent = np.where(t_s >= d.created_at.timestamp(), silent, np.nan)  # not registered yet
        subjects[d.device_id] = Subject(d.device_id, d.site_id, d.device_id)
        values[d.device_id] = silent
        with np.errstate(invalid="ignore"):
            holds[d.device_id], cleared[d.device_id] = silent >= after_s, silent < after_s
    return Judged(tuple(times), subjects, values, holds, cleared)


def _judge_ispu(conn: psycopg.Connection[Any], rule: IspuCategoryRule, times: Sequence[datetime]) -> Judged:
    row = conn.execute(SELECT_ISPU_LOW, (rule.category,)).fetchone()
    if row is None:
        raise ValueError(f"rule {rule.id}: {rule.category!r} is not an ISPU category")
    low = float(row[0])
    wanted = set(rule.select.sites)
    series: dict[str, Array] = {}
    for j, t in enumerate(times):
        for site_id, ispu in conn.execute(SELECT_ISPU, {"at": t}):
            if not wanted or site_id in wanted:
                series.setdefault(site_id, np.full(len(times), np.nan))[j] = ispu
    with np.errstate(invalid="ignore"):
        return Judged(tuple(times), {s: Subject(s, s, None) for s in series}, series,
                      {s: v >= low for s, v in series.items()},
                      {s: v < low - rule.hysteresis for s, v in series.items()})
