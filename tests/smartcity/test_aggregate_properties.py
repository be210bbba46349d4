"""The planner equals the numpy reference on random histories, whatever the refresher has done so far.

A history is a list of steps: readings arriving through the write path in random order (late ones
in old hours, duplicates of stored keys with other values, backfilled spans), readings inserted by
hand and marked stale, refreshes at random moments (some partial, with a small ``max_marks``) and
now and then a change of the rollup zone. After every step, every bucket size, every aggregate and
every grouping over a random range (unaligned, shorter than a bucket, or across WITA midnight, a
week or a month boundary) must give exactly what tests/aggregate_reference.py computes from the
stored readings: sums, means and increases to a relative 1e-9, the rest exactly.

The examples are derandomized, so CI sees the same ones every run; a failure names the step, the
query and the rows that differ, and hypothesis prints the (shrunk) history.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from tests.aggregate_reference import AGGS, RefQuery, RefRow, compute_aggregate
from tests.smartcity.aggregate_lab import DEVICES, Arrival, Lab, utc

# The contract's buckets, and two more: 90s is read raw (not whole minutes), 2h from hourly rollups.
BUCKETS = ("1m", "5m", "15m", "1h", "1d", "1w", "1mo", "90s", "2h")
GROUPS = ("device", "site", "none")
EXACT = frozenset({"count", "min", "max", "first", "last"})
METRIC_AGGS = {"water_volume": AGGS, "water_pressure": tuple(a for a in AGGS if a != "increase")}


def _epoch(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


# Instants where calendars disagree, and readings cluster around them.
ANCHORS = (
    _epoch(2026, 2, 27, 16),  # WITA midnight: 28 February starts
    _epoch(2026, 2, 28, 16),  # WITA midnight and month: 1 March starts
    _epoch(2026, 2, 28, 17),  # the same in Asia/Jakarta
    _epoch(2026, 3, 1, 0),  # the same in UTC
    _epoch(2026, 3, 1, 16),  # WITA Monday 2 March: a week starts
    _epoch(2026, 2, 12, 5),  # two weeks earlier: late readings land in long-refreshed hours
    _epoch(2026, 6, 10, 13, 30),  # midnight on Lord Howe Island in its winter (UTC+10:30)
)
SPAN = (_epoch(2026, 2, 1), _epoch(2026, 11, 1))  # every reading lies inside


# ---- the history ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ingest:
    """Arrivals through the write path, in this order (a duplicate key keeps the first stored)."""

    arrivals: tuple[Arrival, ...]


@dataclass(frozen=True)
class Backfill:
    """A device's regular span of history through the write path: a counter that rises, maybe resets."""

    device_id: str
    start: int
    every_s: int
    volumes: tuple[float, ...]
    pressure: float


@dataclass(frozen=True)
class ByHand:
    """Arrivals inserted straight into readings, then ``smartcity_mark_rollups_stale`` over their span."""

    arrivals: tuple[Arrival, ...]
    pad_s: int


@dataclass(frozen=True)
class Refresh:
    """One call of the refresher (None: its default max_marks)."""

    max_marks: int | None


@dataclass(frozen=True)
class CatchUp:
    """Refresh until no mark is left."""


@dataclass(frozen=True)
class SetZone:
    """Keep the daily rollups in another zone (the planner must stay exact for every tz)."""

    zone: str


Step = Ingest | Backfill | ByHand | Refresh | CatchUp | SetZone


@dataclass(frozen=True)
class Probe:
    """The check after a step: one metric, devices and zone; a range per bucket size."""

    metric: str
    tz: str | None
    device_ids: tuple[str, ...] | None
    site_ids: tuple[str, ...] | None
    ranges: tuple[tuple[int, int], ...]  # epoch seconds [start, end), one per entry of BUCKETS


near_anchor = st.builds(lambda a, minutes, seconds: a + 60 * minutes + seconds,
                        st.sampled_from(ANCHORS), st.integers(-150, 150), st.sampled_from((0, 0, 15, 30, 59)))
device_ids = st.sampled_from(sorted(DEVICES))
volumes = st.integers(0, 50_000).map(lambda v: v / 100)
pressures = st.integers(0, 2_000).map(lambda v: v / 100)


@st.composite
def arrivals(draw: st.DrawFn, earlier: Sequence[Arrival]) -> tuple[Arrival, ...]:
    """Draw a batch: fresh readings and, once there is history, resends of stored keys with new values.

    A batch clusters around one moment (within 40 minutes), so buckets and rollup rows hold several
    readings; now and then one reading lands anywhere else (a late one).
    """
    batch: list[Arrival] = []
    center = draw(near_anchor)
    for _ in range(draw(st.integers(1, 8))):
        seen = [*earlier, *batch]
        how = draw(st.integers(0, 7)) if seen else 0
        if how == 1:  # a resend: same device, metric and time, another value
            device_id, metric, epoch, _value = draw(st.sampled_from(seen))
        elif how == 2:  # another device at a time already seen: ties for first and last
            epoch = draw(st.sampled_from(seen))[2]
            device_id, metric = draw(device_ids), draw(st.sampled_from(("water_volume", "water_pressure")))
        else:
            epoch = draw(near_anchor) if how == 3 else center + 15 * draw(st.integers(-160, 160))
            device_id, metric = draw(device_ids), draw(st.sampled_from(("water_volume", "water_pressure")))
        batch.append((device_id, metric, epoch, draw(volumes if metric == "water_volume" else pressures)))
    return tuple(batch)


@st.composite
def backfills(draw: st.DrawFn) -> Backfill:
    """Draw a backfilled span: a counter rising by random amounts, replaced (reset) now and then."""
    n = draw(st.integers(2, 30))
    level, out = draw(volumes), []
    for _ in range(n):
        if draw(st.integers(0, 9)) == 0:
            level = draw(st.integers(0, 500)) / 100  # a new meter
        else:
            level = round(level + draw(st.integers(0, 2_000)) / 100, 2)
        out.append(level)
    return Backfill(draw(device_ids), draw(near_anchor), draw(st.sampled_from((60, 300, 1800, 3600, 5400))),
                    tuple(out), draw(pressures))


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    """Draw what to check: a range per bucket size, often unaligned, sometimes shorter than a bucket."""
    ranges = []
    for _ in BUCKETS:
        kind = draw(st.integers(0, 4))
        if kind == 0:
            start, end = SPAN  # everything, whole calendar buckets
        elif kind == 4:
            start, end = draw(near_anchor), SPAN[1]  # from an unaligned start to the end of it all
        else:
            start = draw(near_anchor)
            length = draw((st.integers(1, 3_600), st.integers(3_600, 3 * 86_400),
                           st.integers(86_400, 40 * 86_400))[kind - 1])
            end = start + length
        ranges.append((start, end))
    selection = draw(st.integers(0, 3))
    return Probe(
        metric=draw(st.sampled_from(("water_volume", "water_pressure"))),
        # Kolkata (UTC+5:30): hours there are not the rollups' hours, minutes still are. Lord Howe:
        # UTC+11 in February and in November, UTC+10:30 in between.
        tz=draw(st.sampled_from((None, None, "UTC", "Asia/Jakarta", "Asia/Makassar", "Asia/Kolkata",
                                 "Australia/Lord_Howe"))),
        device_ids=(tuple(draw(st.lists(device_ids, min_size=1, max_size=2, unique=True)))
                    if selection == 1 else None),
        site_ids=(draw(st.sampled_from((("tanah-grogot",), ("kuaro",), ("kuaro", "tanah-grogot"),
                                        ("batu-sopang",))))  # a site without meters
                  if selection == 2 else None),
        ranges=tuple(ranges),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Step, Probe]]:
    """Draw a history of steps, each followed by a probe."""
    steps: list[tuple[Step, Probe]] = []
    earlier: list[Arrival] = []
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(("ingest", "ingest", "ingest", "backfill", "by_hand", "refresh",
                                     "refresh", "catch_up", "zone")))
        step: Step
        if kind == "ingest":
            step = Ingest(draw(arrivals(earlier)))
            earlier += step.arrivals
        elif kind == "by_hand":
            step = ByHand(draw(arrivals(earlier)), draw(st.sampled_from((0, 0, 3_600, 86_400))))
            earlier += step.arrivals
        elif kind == "backfill":
            step = draw(backfills())
        elif kind == "refresh":
            step = Refresh(draw(st.sampled_from((None, None, 1, 2, 3))))
        elif kind == "catch_up":
            step = CatchUp()
        else:
            step = SetZone(draw(st.sampled_from(("UTC", "Asia/Jakarta", "Asia/Makassar"))))
        steps.append((step, draw(probes())))
    return steps


# ---- running it -------------------------------------------------------------------------------

def apply(lab: Lab, step: Step) -> None:
    """Carry out one step of a history."""
    if isinstance(step, Ingest):
        lab.ingest(step.arrivals)
    elif isinstance(step, Backfill):
        times = [step.start + i * step.every_s for i in range(len(step.volumes))]
        lab.ingest([(step.device_id, "water_volume", t, v) for t, v in zip(times, step.volumes, strict=True)]
                   + [(step.device_id, "water_pressure", t, step.pressure) for t in times])
    elif isinstance(step, ByHand):
        lab.insert_by_hand(step.arrivals, step.pad_s)
    elif isinstance(step, Refresh):
        lab.refresh(step.max_marks)
    elif isinstance(step, CatchUp):
        lab.catch_up()
    else:
        lab.set_zone(step.zone)


def queries_of(probe: Probe) -> list[RefQuery]:
    """Return every bucket size × aggregate × grouping the probe asks about."""
    return [RefQuery(probe.metric, bucket, agg, utc(start), utc(end), probe.device_ids, probe.site_ids,
                     group_by, probe.tz)
            for bucket, (start, end) in zip(BUCKETS, probe.ranges, strict=True)
            for agg in METRIC_AGGS[probe.metric]
            for group_by in GROUPS]


def same_rows(expected: list[RefRow], actual: list[RefRow], agg: str) -> bool:
    """Tell whether the planner's rows are the reference's: exact, or to 1e-9 for sums and means."""
    if [(r.key, r.time, r.count) for r in expected] != [(r.key, r.time, r.count) for r in actual]:
        return False
    if agg in EXACT:
        return all(e.value == a.value for e, a in zip(expected, actual, strict=True))
    return all(math.isclose(e.value, a.value, rel_tol=1e-9, abs_tol=1e-9)
               for e, a in zip(expected, actual, strict=True))


def describe(query: RefQuery, expected: list[RefRow], actual: list[RefRow]) -> str:
    """Return a failing query as the SQL call and the two answers side by side."""
    call = (f"smartcity_aggregate({query.metric!r}, {query.bucket!r}, {query.agg!r}, "
            f"'{query.start.isoformat()}', '{query.end.isoformat()}', device_ids => {query.device_ids}, "
            f"site_ids => {query.site_ids}, group_by => {query.group_by!r}, tz => {query.tz!r})")
    lines = [call, f"  {'reference':<62} | planner"]
    for i in range(max(len(expected), len(actual))):
        e = _row(expected[i]) if i < len(expected) else "-"
        a = _row(actual[i]) if i < len(actual) else "-"
        lines.append(f"{'  ' if e == a else '! '}{e:<62} | {a}")
    return "\n".join(lines)


def _row(row: RefRow) -> str:
    return f"{row.key} {row.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} {row.value!r} n={row.count}"


def check(lab: Lab, probe: Probe, where: str) -> int:
    """Compare every query of ``probe`` with the reference; return how many rows were compared."""
    queries = queries_of(probe)
    readings = lab.readings()
    answers = lab.aggregate_many(queries)
    failures, compared = [], 0
    for query, actual in zip(queries, answers, strict=True):
        expected = compute_aggregate(readings, DEVICES, query, lab.zone)
        compared += len(expected)
        if not same_rows(expected, actual, query.agg):
            failures.append(describe(query, expected, actual))
    assert not failures, (f"{where}: {len(failures)} of {len(queries)} queries differ from the reference "
                          f"(rollup zone {lab.zone}, {lab.pending()} marks pending); the first:\n"
                          + "\n".join(failures[:3]))
    return compared


def run_history(lab: Lab, history: Sequence[tuple[Step, Probe]]) -> int:
    """Start empty, apply each step and check after it; return the rows compared."""
    lab.reset()
    compared = 0
    for i, (step, probe) in enumerate(history, 1):
        note(f"step {i}: {step}")
        apply(lab, step)
        compared += check(lab, probe, f"after step {i} ({type(step).__name__})")
    return compared


# Found by reading 007, not by the random search (300 random examples on the unfixed SQL missed it):
# readings either side of a Lord Howe winter half hour, in one hour of the rollups, asked over a range
# whose two ends fall in summer (whole hours from UTC) were bucketed together from the hourly rollup.
LORD_HOWE_WINTER = [
    (Ingest((("wm-a1", "water_pressure", _epoch(2026, 6, 10, 13, 15), 1.0),
             ("wm-a1", "water_pressure", _epoch(2026, 6, 10, 13, 45), 2.0))),
     Probe("water_pressure", "Australia/Lord_Howe", None, None, tuple(SPAN for _ in BUCKETS))),
    (CatchUp(), Probe("water_pressure", "Australia/Lord_Howe", None, None, tuple(SPAN for _ in BUCKETS))),
]


# CI runs the same modest set every time; SMARTCITY_PROPERTY_EXAMPLES=500 explores new random ones.
EXPLORE = int(os.environ.get("SMARTCITY_PROPERTY_EXAMPLES", "0"))


@settings(max_examples=EXPLORE or 25, deadline=None, derandomize=not EXPLORE, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(history=LORD_HOWE_WINTER)
@given(history=histories())
def test_the_planner_equals_the_reference_after_every_step(lab: Lab,
                                                           history: list[tuple[Step, Probe]]) -> None:
    run_history(lab, history)
