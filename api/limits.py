"""Limits on what one request may ask, each refused with a 4xx problem that states the bound.

- ``QueryLimits`` (ASGI middleware, every route): the query string's length (414), its number of
  parameters, repeats included (400), and no NUL character (400), checked before routing, so no
  route parses an oversized query.
- ``QueryTime``: a query parameter's time, RFC 3339 with an offset and a UTC time (422 otherwise).
- ``check_range``: a start–end range no longer than a route's bound (400); ``range_start``: a
  default start that cannot overflow.

Settings: ``api.max_query_length``, ``api.max_query_params``; routes pass their own range bound.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError, BadRequest, QueryTooLong, handle_error

__all__ = ["QueryLimits", "QueryTime", "check_range", "range_start"]

# RFC 3339's date-time, loosely: pydantic's own parser then checks every field. Without this, pydantic
# would also take a bare number ("0", "1.5e9") as epoch seconds, which the contract does not offer.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _check_text(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise PydanticCustomError(
            "rfc3339", "must be an RFC 3339 datetime with an offset, e.g. 2026-09-15T12:30:00+08:00")
    return value


def _check_time(value: datetime) -> datetime:
    try:
        # A time of year 1 or 9999 may not exist in UTC: the database and every comparison need it.
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("time_out_of_range", "is out of range: it has no UTC time") from None
    return value


QueryTime = Annotated[AwareDatetime, BeforeValidator(_check_text), AfterValidator(_check_time)]


def range_start(end: datetime, span: timedelta) -> datetime:
    """Return ``end - span``, or the earliest time there is when that is earlier."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return end - span if end - earliest > span else earliest


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
    """ASGI middleware: refuse a query string over ``max_length`` bytes or ``max_params`` parameters,
    or holding a NUL.

    Byte scans of the raw query string and no parsing: a request without one (``latest``) pays a
    length check.
    """

    def __init__(self, app: ASGIApp, *, max_length: int, max_params: int) -> None:
        self.app = app
        self.max_length = max_length
        self.max_params = max_params

    def _refusal(self, query: bytes) -> ApiError | None:
        if len(query) > self.max_length:
            return QueryTooLong(f"the query string holds {len(query):,} bytes, more than the limit of"
                                f" {self.max_length:,}", max_length=self.max_length)
        if b"%00" in query:  # no parameter can hold one, and the database refuses them in text
            return BadRequest("the query string holds a NUL character (%00), which no parameter may contain")
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
