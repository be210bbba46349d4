"""Limits on what one request may ask, each refused with a 4xx problem that states the bound.

- ``QueryLimits`` (ASGI middleware, every route): the query string's length (414) and its number of
  parameters, repeats included (400), checked before routing, so no route parses an oversized query.
- ``QueryTime``: a query parameter's time, with an offset and between 1970 and 2200 (422 otherwise),
  so range arithmetic and the database's time functions never overflow.
- ``check_range``: a start–end range no longer than a route's bound (400).

Settings: ``api.max_query_length``, ``api.max_query_params``; routes pass their own range bound.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, BadRequest, QueryTooLong, handle_error

__all__ = ["EARLIEST_TIME", "LATEST_TIME", "QueryLimits", "QueryTime", "check_range"]

# Readings carry epoch times (the contract), and no one asks about the 23rd century: anything
# outside is a typo, and within it no arithmetic of a day or a month's width can overflow.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def _check_time(value: datetime) -> datetime:
    # The year first: converting a time of year 1 or 9999 with an offset to UTC overflows.
    if not EARLIEST_TIME.year <= value.year < LATEST_TIME.year or not (
            EARLIEST_TIME <= value < LATEST_TIME):
        raise PydanticCustomError(
            "time_out_of_range", "must lie between {earliest} and {latest}",
            {"earliest": EARLIEST_TIME.isoformat(), "latest": LATEST_TIME.isoformat()})
    return value


QueryTime = Annotated[AwareDatetime, AfterValidator(_check_time)]


def check_range(start: datetime, end: datetime, longest: timedelta, *, what: str = "start to end") -> None:
    """Refuse a range longer than ``longest``.

    Raises:
        BadRequest: the range is longer; the problem states the bound.
    """
    if end - start > longest:
        span_days = (end - start) / timedelta(days=1)
        raise BadRequest(
            f"{what} spans {span_days:,.1f} days, more than the limit of {longest.days:,} days",
            hint="ask for a shorter range, in several requests if need be", max_range_days=longest.days)


class QueryLimits:
    """ASGI middleware: refuse a query string over ``max_length`` bytes or ``max_params`` parameters.

    Two byte scans of the raw query string and no parsing: a request without one (``latest``) pays
    a length check.
    """

    def __init__(self, app: ASGIApp, *, max_length: int, max_params: int) -> None:
        self.app = app
        self.max_length = max_length
        self.max_params = max_params

    def _refusal(self, query: bytes) -> ApiError | None:
        if len(query) > self.max_length:
            return QueryTooLong(f"the query string holds {len(query):,} bytes, more than the limit of"
                                f" {self.max_length:,}", max_length=self.max_length)
        params = query.count(b"&") + 1
        if params > self.max_params:
            return BadRequest(f"the query string holds {params:,} parameters, more than the limit of"
                              f" {self.max_params:,} (repeated ones count each time)",
                              max_params=self.max_params)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        problem = self._refusal(query) if query else None
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = await handle_error(Request(scope, receive), problem)
        await response(scope, receive, send)
