"""The rollups recomputed from the raw readings in Python, to hold the database's against."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

Key = tuple[int, int, datetime]  # device, metric, bucket start

_COLUMNS = "count, sum, min, max, first, first_time, last, last_time, increase"


def _bucket(time: datetime, width: str, zone: str) -> datetime:
    if width == "1m":
        return time.replace(second=0, microsecond=0)
    if width == "1h":
        return time.replace(minute=0, second=0, microsecond=0)
    local = time.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _rise(previous: float, current: float) -> float:
    return current - previous if current >= previous else current


def raw_rollups(db: psycopg.Connection, width: str,
                zone: str = "Asia/Makassar") -> dict[Key, tuple[Any, ...]]:
    """Return what rollup_<width> should hold, computed here from every stored reading."""
    rows = db.execute(
        "SELECT r.device, r.metric, r.time, r.value, m.cumulative FROM readings r"
        " JOIN metrics m ON m.metric_id = r.metric ORDER BY r.device, r.metric, r.time").fetchall()
    groups: dict[Key, list[tuple[datetime, float, bool]]] = {}
    for device, metric, time, value, cumulative in rows:
        key = (device, metric, _bucket(time.astimezone(UTC), width, zone))
        groups.setdefault(key, []).append((time.astimezone(UTC), value, cumulative))
    expected = {}
    for key, points in groups.items():
        values = [v for _, v, _ in points]
        increase = (sum(_rise(a, b) for a, b in zip(values, values[1:], strict=False))
                    if points[0][2] else None)
        expected[key] = (len(values), sum(values), min(values), max(values), values[0], points[0][0],
                         values[-1], points[-1][0], increase)
    return expected


def stored_rollups(db: psycopg.Connection, width: str) -> dict[Key, tuple[Any, ...]]:
    """Return the rows of rollup_<width>, keyed like ``raw_rollups``."""
    rows = db.execute(f"SELECT device, metric, bucket, {_COLUMNS} FROM rollup_{width}").fetchall()
    return {(d, m, b.astimezone(UTC)): tuple(v.astimezone(UTC) if isinstance(v, datetime) else v
                                             for v in rest) for d, m, b, *rest in rows}


def assert_rollups_equal_raw(db: psycopg.Connection, zone: str = "Asia/Makassar",
                             widths: Sequence[str] = ("1m", "1h", "1d")) -> int:
    """Assert that every rollup row equals the recomputation from raw readings; return the rows checked."""
    checked = 0
    for width in widths:
        expected, stored = raw_rollups(db, width, zone), stored_rollups(db, width)
        assert set(stored) == set(expected), (
            f"rollup_{width}: {len(set(expected) - set(stored))} buckets missing,"
            f" {len(set(stored) - set(expected))} extra")
        for key, want in expected.items():
            got = stored[key]
            # Sums of floats depend on the order of addition: the rest is exact.
            assert got[0] == want[0] and got[2:8] == want[2:8], (width, key, got, want)
            assert got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-9), (width, key, got, want)
            if want[8] is None:
                assert got[8] is None, (width, key, got, want)
            else:
                assert got[8] == pytest.approx(want[8], rel=1e-12, abs=1e-9), (width, key, got, want)
        checked += len(expected)
    return checked


def buckets_equal_raw(db: psycopg.Connection, width: str) -> tuple[set[Key], set[Key]]:
    """Return the (device, metric, bucket) keys of rollup_<width> that match raw and those that don't."""
    expected, stored = raw_rollups(db, width), stored_rollups(db, width)
    good, bad = set(), set()
    for key in set(expected) | set(stored):
        want, got = expected.get(key), stored.get(key)
        same = (want is not None and got is not None and got[0] == want[0] and got[2:8] == want[2:8]
                and abs(got[1] - want[1]) <= 1e-9 * max(1.0, abs(want[1])))
        (good if same else bad).add(key)
    return good, bad


def hour_of(time: datetime) -> datetime:
    """Return the start of the UTC hour of ``time``."""
    return time.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

