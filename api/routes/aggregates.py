"""GET /aggregates: a metric's buckets per device, per site or over all, from the planner.

A thin route over ``smartcity_aggregate`` (migration 007), the one planner every reader shares:
one pooled connection, one statement, the body serialised by orjson. Every bad request is a 400
problem: the planner's own refusals (SQLSTATE class 22) with its message and hint, malformed
parameters, ranges longer than ``api.aggregate_max_range_days`` and answers that would hold more
points than ``api.aggregate_max_points``. ``Accept: text/csv`` streams the same rows as CSV (key,
time, value, count).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute

from api.buckets import max_buckets
from api.csv import csv_chunks, start_csv_response
from api.deps import Pool, PoolDep, SettingsDep
from api.errors import BadRequest, problem_responses, to_problem
from api.limits import check_range, range_start
from api.models import AggregateOut
from api.negotiation import CSV, AcceptDep
from api.params import AggregateParams
from api.queries.aggregates import AggregateRequest, open_aggregate_stream, run_aggregate
from smartcity.catalog import METRICS

__all__ = ["CSV_BATCH_ROWS", "CSV_COLUMNS", "DEFAULT_SPAN", "router"]

DEFAULT_SPAN = timedelta(hours=24)
CSV_COLUMNS = ("key", "time", "value", "count")
CSV_BATCH_ROWS = 2000


class _BadRequestRoute(APIRoute):
    """A route whose malformed parameters are a 400, like every other refusal of /aggregates."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problem = to_problem(exc)
                raise BadRequest(problem.detail, **problem.extensions) from None

        return handle


router = APIRouter(tags=["aggregates"], route_class=_BadRequestRoute, responses=problem_responses(
    400, 406, 503, descriptions={400: "Any bad input: a malformed or unknown parameter (`errors` lists"
                                      " each), a value the planner refuses, a range or an answer over its"
                                      " limit (the bound is stated)"}))


class _JsonResponse(Response):
    media_type = "application/json"


def _too_big(points_bound: int, limit: int) -> BadRequest:
    return BadRequest(
        f"the answer could hold up to {points_bound:,} points, more than the limit of"
        f" {limit:,}", hint="use a larger bucket, a shorter range, fewer devices or sites, or"
        " group_by=site or none")


def _refused(err: psycopg.errors.DataError) -> BadRequest:
    return BadRequest(err.diag.message_primary or str(err).strip(),
                      **({"hint": err.diag.message_hint} if err.diag.message_hint else {}))


async def _csv(pool: Pool, request: AggregateRequest, buckets: int, limit: int) -> Response:
    try:
        stream = await open_aggregate_stream(pool, request, max_buckets=buckets, max_points=limit,
                                             batch_rows=CSV_BATCH_ROWS)
    except psycopg.errors.DataError as err:
        raise _refused(err) from None
    if stream.points_bound > limit:
        await stream.batches.aclose()
        raise _too_big(stream.points_bound, limit)
    return await start_csv_response(csv_chunks(CSV_COLUMNS, stream.batches))


@router.get("/aggregates", response_model=AggregateOut, summary="Aggregate a metric in time buckets",
            responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}, "example":
          "key,time,value,count\r\naq-tanah-grogot-01,2026-11-30T04:00:00+00:00,23.4,360\r\n"}},
          "description": "The buckets (JSON), or the same rows as CSV"}})
async def read_aggregates(pool: PoolDep, settings: SettingsDep, accept: AcceptDep,
                          params: Annotated[AggregateParams, Query()]) -> Response:
    """Aggregate a metric into time buckets, exact whatever the rollups' lag.

    `device` and `site` may repeat. Days, weeks and months follow `tz`; empty buckets are left out.
    `Accept: text/csv` streams the rows as CSV: key, time, value, count. An answer may hold a
    bounded number of points (buckets × series) and span a bounded range: a bigger question is a 400
    that states the bound.
    """
    end = params.end or datetime.now(UTC)
    start = params.start or range_start(end, DEFAULT_SPAN)
    if settings.api.aggregate_max_range_days is not None:
        check_range(start, end, timedelta(days=settings.api.aggregate_max_range_days))
    limit = settings.api.aggregate_max_points
    request = AggregateRequest(
        metric=params.metric, bucket=params.bucket, agg=params.agg, start=start, end=end,
        devices=params.device or None, sites=params.site or None, group_by=params.group_by,
        tz=params.tz,
    )
    buckets = max_buckets(params.bucket, start, end)
    if accept == CSV:
        return await _csv(pool, request, buckets, limit)
    try:
        async with pool.connection() as conn:
            answer = await run_aggregate(conn, request, max_buckets=buckets, max_points=limit)
    except psycopg.errors.DataError as err:  # the planner's refusals, and values it cannot take
        raise _refused(err) from None
    if answer.points_bound > limit:
        raise _too_big(answer.points_bound, limit)
    series: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    key = None
    for row_key, time, value, count in answer.rows:
        if row_key != key:
            key, points = row_key, []
            series.append({"key": key, "points": points})
        points.append({"time": time, "value": value, "count": count})
    body = {"metric": params.metric, "unit": METRICS[params.metric].unit, "bucket": params.bucket,
            "agg": params.agg, "series": series}
    return _JsonResponse(orjson.dumps(body))
