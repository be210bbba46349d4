"""Raw readings for /readings: the series a request names, and pages of them merged in key order.

The order is (time, device id, metric). Each series (one device's one metric) is read through the
readings key (device, metric, time) between a lower and an upper bound of its own, and the
database merges the series by time (``select_readings_page``). A keyset position ``after`` a key
becomes, for every series, the first time it may still contribute: the key's own time if the
series sorts after the key's (device, metric), else one microsecond later, timestamptz's
resolution. So no OR of row comparisons reaches the planner and every branch stays a range scan.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from api.deps import Pool
from api.pagination import ReadingKey
from api.queries.streaming import fetch_batches, held_snapshot
from smartcity.catalog import METRICS
from smartcity.db.queries import readings as reading_sql

__all__ = [
    "ReadingStream", "Series", "SeriesSelection", "Window", "find_page_end", "open_reading_stream",
    "read_page", "select_series",
]

_TICK = timedelta(microseconds=1)

Row = tuple[datetime, int, float]  # time, series position, value


@dataclass(frozen=True, slots=True)
class Series:
    """One device's one metric, as the request names it and as the readings key stores it."""

    device_id: str
    metric: str
    device_key: int
    metric_key: int

    @property
    def unit(self) -> str:
        """Return the metric's catalogue unit."""
        return METRICS[self.metric].unit

    def sorts_after(self, key: ReadingKey) -> bool:
        """Tell whether this series' readings at ``key.time`` come after ``key``."""
        return (self.device_id, self.metric) > (key.device_id, key.metric)


@dataclass(frozen=True, slots=True)
class SeriesSelection:
    """The series of a request in key order, and the devices it named that are not registered."""

    series: list[Series]
    unknown_devices: list[str]


@dataclass(frozen=True, slots=True)
class Window:
    """The rows to read: those in [start, end), after ``after`` if it is set."""

    start: datetime
    end: datetime
    after: ReadingKey | None = None

    def bounds(self, series: Series) -> tuple[datetime, datetime]:
        """Return [lower, upper) of ``series`` in this window."""
        lower = self.start
        if self.after is not None:
            first = self.after.time if series.sorts_after(self.after) else self.after.time + _TICK
            lower = max(lower, first)
        return lower, self.end


@dataclass(frozen=True, slots=True)
class ReadingStream:
    """A page being streamed: the key of its last row if more rows follow it, and its rows."""

    page_end: ReadingKey | None
    batches: AsyncGenerator[list[Row], None]


async def select_series(conn: AsyncConnection[Any], devices: Sequence[str], sites: Sequence[str],
                        metrics: Sequence[str]) -> SeriesSelection:
    """Return the series of the devices named (those in ``sites``, if any) or else of the sites named.

    ``metrics``, if any, limits the series to those metrics.
    """
    cur = await conn.execute(reading_sql.SELECT_READING_SERIES, {
        "devices": list(devices) or None, "sites": list(sites) or None, "metrics": list(metrics) or None})
    rows = await cur.fetchall()
    known = {device_id for device_id, *_ in rows}
    # Sorted here, not in SQL: the order must be Python's (code points), which the cursor compares.
    series = sorted((Series(device_id, metric, device_key, metric_key)
                     for device_id, metric, device_key, metric_key, selected in rows
                     if metric is not None and selected),
                    key=lambda one: (one.device_id, one.metric))
    return SeriesSelection(series, sorted(set(devices) - known))


def _branch_params(series: Sequence[Series], window: Window, limit: int) -> list[Any]:
    params: list[Any] = []
    for one in series:
        lower, upper = window.bounds(one)
        params += [one.device_key, one.metric_key, lower, upper, limit]
    return params


async def read_page(conn: AsyncConnection[Any], series: Sequence[Series], window: Window,
                    limit: int) -> list[Row]:
    """Return up to ``limit`` readings of ``series`` in the window, in key order."""
    if not series:
        return []
    params = [*_branch_params(series, window, limit), limit]
    async with conn.cursor(binary=True) as cur:
        await cur.execute(reading_sql.select_readings_page(len(series)), params)
        return await cur.fetchall()


async def find_page_end(conn: AsyncConnection[Any], series: Sequence[Series], window: Window,
                        rows: int) -> ReadingKey | None:
    """Return the key of the last row of a page of ``rows`` rows, or None when no row follows it.

    None means the window holds at most ``rows`` rows: the page is the whole answer.
    """
    if not series:
        return None
    params = [*_branch_params(series, window, rows + 1), rows - 1]
    async with conn.cursor(binary=True) as cur:
        await cur.execute(reading_sql.select_page_boundary(len(series)), params)
        keys = await cur.fetchall()
    if len(keys) < 2:
        return None
    time, position = keys[0]
    return ReadingKey(time, series[position].device_id, series[position].metric)


async def _stream(pool: Pool, series: Sequence[Series], window: Window, limit: int,
                  batch_rows: int) -> AsyncGenerator[Any, None]:
    if not series:
        yield None
        return
    # One snapshot for the probe and the rows: the page streamed is exactly the rows up to the
    # key the probe found, whatever is inserted meanwhile, so the next page loses nothing.
    async with held_snapshot(pool) as conn:
        yield await find_page_end(conn, series, window, limit)
        params = [*_branch_params(series, window, limit), limit]
        async for rows in fetch_batches(conn, reading_sql.select_readings_page(len(series)), params,
                                        batch_rows=batch_rows):
            yield rows


async def open_reading_stream(pool: Pool, series: Sequence[Series], window: Window, *, limit: int,
                              batch_rows: int) -> ReadingStream:
    """Start streaming up to ``limit`` readings of ``series`` in the window, in key order.

    The pooled connection is held until the batches are exhausted or closed.
    """
    stream = _stream(pool, series, window, limit, batch_rows)
    try:
        page_end = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    return ReadingStream(page_end, stream)
