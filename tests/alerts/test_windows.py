"""Rolling windows in numpy equal the same windows computed one by one, the slow obvious way."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartcity.alerts.windows import coverage, rolling_aggregate, rolling_slope_per_hour

buckets = st.lists(st.one_of(st.none(), st.tuples(st.floats(-50, 50), st.integers(1, 5))), min_size=1,
                   max_size=40)


def arrays(cells: list[tuple[float, int] | None]) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([[np.nan if c is None else c[0] for c in cells]])
    counts = np.array([[0.0 if c is None else float(c[1]) for c in cells]])
    return values, counts


def slow(aggregate: str, window: list[tuple[float, int] | None]) -> float:
    present = [c for c in window if c is not None]
    if not present:
        return math.nan
    vals = [v for v, _ in present]
    return {"avg": sum(v * n for v, n in present) / sum(n for _, n in present), "sum": sum(vals),
            "count": sum(vals), "min": min(vals), "max": max(vals), "first": vals[0],
            "last": vals[-1]}[aggregate]


@pytest.mark.parametrize("aggregate", ["avg", "sum", "count", "min", "max", "first", "last"])
@given(cells=buckets, k=st.integers(1, 10))
@settings(max_examples=60)
def test_rolling_aggregate(aggregate: str, cells: list[tuple[float, int] | None], k: int) -> None:
    if k > len(cells):
        k = len(cells)
    values, counts = arrays(cells)
    got = rolling_aggregate(aggregate, values, counts, k)[0]
    want = [slow(aggregate, cells[j: j + k]) for j in range(len(cells) - k + 1)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    got_cov = coverage(counts, k)[0]
    np.testing.assert_allclose(got_cov, [sum(c is not None for c in cells[j: j + k]) / k
                                         for j in range(len(cells) - k + 1)])


@given(cells=buckets, k=st.integers(2, 10))
@settings(max_examples=100)
def test_slope_is_least_squares(cells: list[tuple[float, int] | None], k: int) -> None:
    k = min(k, len(cells))
    values, counts = arrays(cells)
    got = rolling_slope_per_hour(values, counts, k, 1 / 60)[0]
    for j in range(len(cells) - k + 1):
        pts = [(i / 60, c[0]) for i, c in enumerate(cells[j: j + k], start=j) if c is not None]
        if len(pts) < 2:
            assert math.isnan(got[j])
            continue
        want = np.polyfit([x for x, _ in pts], [y for _, y in pts], 1)[0]
        assert got[j] == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_slope_of_a_steady_rise() -> None:
    minutes = np.arange(180.0)
    values = (2.0 + 0.5 * minutes / 60).reshape(1, -1)  # 0.5 per hour
    got = rolling_slope_per_hour(values, np.ones_like(values), 60, 1 / 60)
    np.testing.assert_allclose(got, 0.5, rtol=1e-9)
