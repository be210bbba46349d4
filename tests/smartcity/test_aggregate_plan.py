"""Where the planner reads from: the same answers whether nothing or everything is refreshed, and
over refreshed data the rollups, not the raw chunks, except at the edges of the range.

The history is three water meters, one reading of each metric every two hours (for 40 or 92 days). Values
are multiples of 0.25, so every sum is exact in any order and "identical" means identical.
Which chunks a query reads is taken from the executed plans of the planner's statements
(``auto_explain`` with nested statements, sent to the client as notices).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.aggregate_reference import AGGS, RefQuery, compute_aggregate
from tests.smartcity.aggregate_lab import DEVICES, FLEET, Arrival, Lab

FIRST = datetime(2025, 12, 8, tzinfo=UTC)  # a Monday
EVERY = timedelta(hours=2)

CHUNKS = ("SELECT format('%%I', c.chunk_name), c.range_start, c.range_end"
          " FROM timescaledb_information.chunks c WHERE c.hypertable_name = %s")
SCANNED = re.compile(r"on (_hyper_\d+_\d+_chunk)\b")


def history(days: int) -> list[Arrival]:
    """Return ``days`` days of two-hourly readings per meter from FIRST; each meter is replaced once."""
    out: list[Arrival] = []
    for n, device in enumerate(FLEET):
        counter = 1_000.0 * (n + 1)
        for i in range(days * 12):
            epoch = int((FIRST + i * EVERY).timestamp()) + 60 * n  # meters a minute apart
            counter = 0.25 * (i % 7) if i == 200 + 50 * n else counter + 0.25 * (i % 9)
            out.append((device.device_id, "water_volume", epoch, counter))
            out.append((device.device_id, "water_pressure", epoch, 0.25 * (i % 37)))
    return out


def load(lab: Lab, days: int) -> Lab:
    assert lab.ingest(history(days)) == len(FLEET) * days * 12 * 2
    assert lab.pending() == len(FLEET) * days * 12  # every hour of every meter
    return lab


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def queries() -> list[RefQuery]:
    """Every bucket, aggregate and grouping over ranges from a few hours to 40 days, edges unaligned."""
    ranges = {
        "1m": (t(2025, 12, 10, 9, 59, 30), t(2025, 12, 10, 14, 0, 30)),
        "5m": (t(2025, 12, 10, 9, 58), t(2025, 12, 11, 10, 2)),
        "15m": (t(2025, 12, 30, 15, 7, 1), t(2026, 1, 1, 16, 7)),
        "1h": (t(2025, 12, 20, 0, 30), t(2025, 12, 27, 23, 30)),
        "1d": (t(2025, 12, 10, 3, 17, 30), t(2026, 1, 15, 19, 1)),
        "1w": (t(2025, 12, 8), t(2026, 1, 17)),
        "1mo": (t(2025, 11, 30, 16), t(2026, 1, 31, 16)),
    }
    out = []
    for metric in ("water_volume", "water_pressure"):
        for bucket, (start, end) in ranges.items():
            # Whole-hour zones agree on minutes and hours; they differ on days, weeks and months.
            zones = (None, "UTC", "Asia/Jakarta") if bucket in ("1d", "1w", "1mo") else (None,)
            for agg in AGGS:
                if agg == "increase" and metric != "water_volume":
                    continue
                for group_by in ("device", "site", "none"):
                    for tz in zones:
                        out.append(RefQuery(metric, bucket, agg, start, end, None, None, group_by, tz))
    return out


@pytest.mark.slow
def test_nothing_refreshed_and_everything_refreshed_give_identical_answers(fresh_lab: Lab) -> None:
    lab = load(fresh_lab, 40)
    asked = queries()
    unrefreshed = lab.aggregate_many(asked)
    lab.catch_up()
    refreshed = lab.aggregate_many(asked)
    readings = lab.readings()
    for query, before, after in zip(asked, unrefreshed, refreshed, strict=True):
        assert before == after, query
        assert before == compute_aggregate(readings, DEVICES, query, lab.zone), query
    assert sum(len(rows) for rows in refreshed) > 10_000  # the check compared real answers


@pytest.fixture
def explained(fresh_lab: Lab) -> Iterator[tuple[Lab, list[str]]]:
    """The lab whose connection sends the executed plan of every nested statement as a notice."""
    plans: list[str] = []

    def keep(diag: psycopg.errors.Diagnostic) -> None:
        if diag.message_primary and "plan:" in diag.message_primary:
            plans.append(diag.message_primary)

    loaded = load(fresh_lab, 92)
    conn = loaded.conn
    conn.execute("LOAD 'auto_explain'")
    for name, value in (("log_min_duration", "0"), ("log_nested_statements", "on"), ("log_analyze", "on"),
                        ("log_timing", "off"), ("log_level", "notice")):
        conn.execute(f"SET auto_explain.{name} = {value}")
    conn.add_notice_handler(keep)
    try:
        yield loaded, plans
    finally:
        conn.remove_notice_handler(keep)
        conn.execute("SET auto_explain.log_min_duration = -1")


def chunks_read(lab: Lab, plans: list[str], table: str) -> set[tuple[datetime, datetime]]:
    """Return the time ranges of ``table``'s chunks that the plans scanned (not those never executed)."""
    ranges = {name: (lo, hi) for name, lo, hi in lab.conn.execute(CHUNKS, (table,))}
    scanned = set()
    for plan in plans:
        for line in plan.splitlines():
            found = SCANNED.search(line)
            if found and found[1] in ranges and "never executed" not in line:
                scanned.add(ranges[found[1]])
    return scanned


def test_a_90_day_daily_query_over_refreshed_data_reads_raw_chunks_only_at_the_edges(
        explained: tuple[Lab, list[str]]) -> None:
    lab, plans = explained
    lab.catch_up()
    start = datetime(2025, 12, 10, 3, 17, 30, tzinfo=UTC)  # unaligned: a raw half minute at each end
    end = start + timedelta(days=90)
    query = RefQuery("water_pressure", "1d", "avg", start, end, None, ("tanah-grogot",), "site", None)
    plans.clear()
    answer = lab.aggregate_many([query])[0]
    assert answer == compute_aggregate(lab.readings(), DEVICES, query, lab.zone)
    assert len(answer) == 91
    total = len(lab.conn.execute(CHUNKS, ("readings",)).fetchall())
    raw = chunks_read(lab, plans, "readings")
    assert total >= 92 and len(raw) <= 2, sorted(raw)
    assert all(lo <= start < hi or lo < end <= hi for lo, hi in raw), sorted(raw)
    assert chunks_read(lab, plans, "rollup_1d"), "the days inside the range come from the daily rollups"

    # The check can fail: a late reading in mid-range leaves its hour pending, and that hour's
    # chunk is read raw (the rest of its day from the hourly rollups) until the next refresh.
    late = datetime(2026, 1, 20, 5, 30, tzinfo=UTC)
    lab.ingest([("wm-a1", "water_pressure", int(late.timestamp()), 3.0)])
    plans.clear()
    answer = lab.aggregate_many([query])[0]
    assert answer == compute_aggregate(lab.readings(), DEVICES, query, lab.zone)
    assert any(lo <= late < hi for lo, hi in chunks_read(lab, plans, "readings"))
    lab.catch_up()
    plans.clear()
    lab.aggregate_many([query])
    assert not any(lo <= late < hi for lo, hi in chunks_read(lab, plans, "readings"))
