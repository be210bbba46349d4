"""Limits on what one request may ask, each refused with a 4xx problem that states the bound.

- ``QueryLimits`` (ASGI middleware, every route): the query string's length (414), its number of
  parameters, repeats included (400), and no NUL character (400), checked before routing, so no
  route parses an oversized query.
- ``BodyLimit`` (ASGI middleware, every route): a request body over ``max_bytes`` (413), refused
  from its ``Content-Length`` before any of it is read, or, sent chunked, as soon as what has
  arrived passes the bound; the server reads no more of it.
- ``QueryTime``: a query parameter's time, RFC 3339 with an offset and a UTC time (422 otherwise).
- ``check_range``: a start–end range no longer than a route's bound (400); ``range_start``: a
  default start that cannot overflow.

Settings: ``api.max_query_length``, ``api.max_query_params``, ``api.max_body_bytes``; routes pass
their own range bound.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, BadRequest, ContentTooLarge, QueryTooLong, handle_error

__all__ = ["BodyLimit", "QueryLimits", "QueryTime", "check_range", "range_start"]

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


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # The server (httptools, h11) refuses a malformed Content-Length with a 400 itself.
            return int(value) if value.isdigit() else None
    return None


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once the body passes the bound."""


class BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with a 413 problem.

    A declared ``Content-Length`` over the bound is refused before the app runs. A chunked body is
    counted as the app receives it: the chunk that passes the bound raises in the app's ``receive``,
    and whatever the app makes of that (FastAPI turns it into a 400), the client gets the 413. The
    server reads a body only as the app asks for it (uvicorn pauses the socket past 64 KiB), so the
    rest is never read.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _problem(self, size: str) -> ContentTooLarge:
        return ContentTooLarge(f"the request body holds {size} bytes, more than the limit of"
                               f" {self.max_bytes:,}", max_bytes=self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send, self._problem(f"{length:,}"))
            return
        received = 0
        exceeded = started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not exceeded:  # once exceeded, the app's own answer to the raise is dropped
                started = started or message["type"] == "http.response.start"
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:  # a response under way is cut short by the server instead
            await self._refuse(scope, receive, send, self._problem(f"at least {received:,}"))

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, problem: ContentTooLarge) -> None:
        response = await handle_error(Request(scope, receive), problem)
        # The rest of the body is not read: the connection cannot carry another request after it.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
