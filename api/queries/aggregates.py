"""Aggregates for /aggregates: the planner's rows, or the bound that refused them."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from api.deps import Pool
from api.queries.streaming import fetch_batches, held_snapshot
from smartcity.db.queries import aggregates as aggregate_sql

__all__ = ["AggregateRequest", "AggregateRows", "AggregateStream", "open_aggregate_stream", "run_aggregate"]

Row = tuple[str, datetime, float | None, int]


@dataclass(frozen=True, slots=True)
class AggregateRequest:
    """One question for the planner, as ``smartcity_aggregate`` takes it."""

    metric: str
    bucket: str
    agg: str
    start: datetime
    end: datetime
    devices: list[str] | None
    sites: list[str] | None
    group_by: str
    tz: str | None


@dataclass(frozen=True, slots=True)
class AggregateRows:
    """The planner's rows by key and time; empty when ``points_bound`` exceeded the limit."""

    points_bound: int
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class AggregateStream:
    """The planner's rows being streamed; ``batches`` is empty when ``points_bound`` exceeded the limit."""

    points_bound: int
    batches: AsyncGenerator[list[Row], None]


def _params(request: AggregateRequest, max_buckets: int, max_points: int) -> dict[str, Any]:
    return {
        "metric": request.metric, "bucket": request.bucket, "agg": request.agg,
        "start": request.start, "end": request.end, "devices": request.devices,
        "sites": request.sites, "group_by": request.group_by, "tz": request.tz,
        "buckets": max_buckets, "max_points": max_points,
    }


async def _stream(pool: Pool, params: dict[str, Any], batch_rows: int) -> AsyncGenerator[Any, None]:
    async with held_snapshot(pool) as conn:
        batches = fetch_batches(conn, aggregate_sql.SELECT_AGGREGATE, params, batch_rows=batch_rows)
        try:
            bound, *rows = await anext(batches)
            yield int(bound[3])
            if rows:
                yield rows
            async for rows in batches:
                yield rows
        finally:
            await batches.aclose()


async def open_aggregate_stream(pool: Pool, request: AggregateRequest, *, max_buckets: int,
                                max_points: int, batch_rows: int) -> AggregateStream:
    """Start streaming the planner's rows, holding a pooled connection until they are read or closed.

    Raises:
        psycopg.errors.InvalidParameterValue: the planner refused the request (SQLSTATE 22023).
    """
    stream = _stream(pool, _params(request, max_buckets, max_points), batch_rows)
    try:
        bound = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    return AggregateStream(bound, stream)


async def run_aggregate(conn: AsyncConnection[Any], request: AggregateRequest, *,
                        max_buckets: int, max_points: int) -> AggregateRows:
    """Ask the planner, unless the answer could hold more than ``max_points`` points.

    ``max_buckets`` is the most buckets one series can have over the range.

    Raises:
        psycopg.errors.InvalidParameterValue: the planner refused the request (SQLSTATE 22023).
    """
    params = _params(request, max_buckets, max_points)
    # Binary rows: no text to format in the server and to parse here, ~0.5 ms of 1,440 points.
    async with conn.cursor(binary=True) as cur:
        await cur.execute(aggregate_sql.SELECT_AGGREGATE, params)
        bound, *rows = await cur.fetchall()
    return AggregateRows(int(bound[3]), rows)
