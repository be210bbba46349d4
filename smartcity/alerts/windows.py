"""Trailing windows over a grid of buckets, in numpy: one read of a span, every judged time's value.

A series is a row of ``n`` buckets of one width (a minute or an hour); judged time ``j`` looks at
buckets ``[j, j + k)`` where ``k`` is the window in buckets, so the grid starts one window before
the first judged time and there are ``n - k + 1`` judged times. Empty buckets are NaN values and
zero counts. Every function takes ``values`` and ``counts`` of shape (subjects, n).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Array", "BoolArray", "coverage", "rolling_aggregate", "rolling_slope_per_hour"]

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _rolling_sum(x: Array, k: int) -> Array:
    """Sums of ``k`` consecutive columns of ``x`` (NaN taken as 0)."""
    c = np.cumsum(np.nan_to_num(x), axis=1)
    c = np.concatenate([np.zeros((x.shape[0], 1)), c], axis=1)
    out: Array = c[:, k:] - c[:, :-k]
    return out


def coverage(counts: Array, k: int) -> Array:
    """The share of each window's buckets that hold readings."""
    return _rolling_sum((counts > 0).astype(np.float64), k) / k


def rolling_aggregate(aggregate: str, values: Array, counts: Array, k: int) -> Array:
    """The ``aggregate`` of each window from per-bucket aggregates; NaN where a window is empty.

    ``avg`` weights each bucket's mean by its count (the planner's own rule for wider buckets);
    ``sum`` and ``count`` add up; ``min``, ``max``, ``first`` and ``last`` take the extreme bucket.
    """
    present = counts > 0
    n_present = _rolling_sum(present.astype(np.float64), k)
    if aggregate == "avg":
        weight = _rolling_sum(counts, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            out: Array = _rolling_sum(np.where(present, values * counts, 0.0), k) / weight
    elif aggregate in ("sum", "count"):
        out = _rolling_sum(np.where(present, values, 0.0), k)
    elif aggregate in ("min", "max"):
        fill = np.inf if aggregate == "min" else -np.inf
        windows = np.lib.stride_tricks.sliding_window_view(np.where(present, values, fill), k, axis=1)
        out = windows.min(axis=2) if aggregate == "min" else windows.max(axis=2)
    elif aggregate in ("first", "last"):
        n = values.shape[1]
        index = np.broadcast_to(np.arange(n), values.shape)
        if aggregate == "last":  # the latest present bucket at or before each column
            latest = np.maximum.accumulate(np.where(present, index, -1), axis=1)[:, k - 1:]
            pick = latest
        else:  # the earliest present bucket at or after each window's start
            nxt = np.minimum.accumulate(np.where(present, index, n)[:, ::-1], axis=1)[:, ::-1]
            pick = nxt[:, : n - k + 1]
        safe = np.clip(pick, 0, n - 1)
        out = np.take_along_axis(values, safe, axis=1)
    else:
        raise ValueError(f"unknown aggregate {aggregate!r}")
    return np.where(n_present > 0, out, np.nan)


def rolling_slope_per_hour(values: Array, counts: Array, k: int, bucket_h: float) -> Array:
    """The least-squares slope (unit per hour) of each window's bucket means; NaN below 2 points."""
    present = counts > 0
    x = np.broadcast_to(np.arange(values.shape[1], dtype=np.float64) * bucket_h, values.shape)
    y = np.where(present, values, 0.0)
    xm = np.where(present, x, 0.0)
    n = _rolling_sum(present.astype(np.float64), k)
    sx, sy = _rolling_sum(xm, k), _rolling_sum(y, k)
    sxy, sxx = _rolling_sum(xm * y, k), _rolling_sum(xm * xm, k)
    denominator = n * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope: Array = (n * sxy - sx * sy) / denominator
    return np.where((n >= 2) & (denominator > 1e-12), slope, np.nan)
