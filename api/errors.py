"""Every error the API returns, as RFC 9457 ``application/problem+json``, from one handler.

Exceptions the routes raise (``ApiError`` and its subclasses carry their own status)::

    ApiError
     ├── BadRequest          400  the request cannot be answered as asked (/aggregates: any bad input)
     ├── Unauthorized        401  no API key, or one that is malformed, unknown or revoked
     ├── Forbidden           403  the key's scope is below the route's
     ├── NotFound            404  an addressed resource does not exist
     ├── Conflict            409  the resource to create exists already
     ├── ContentTooLarge     413  the request body is larger than ``api.max_body_bytes``
     ├── QueryTooLong        414  the query string is longer than ``api.max_query_length``
     ├── InvalidParameter    422  a parameter names something the catalogue does not know
     ├── TooManyRequests     429  a rate limit's bucket is empty (``api.ratelimit``)
     └── ServiceUnavailable  503  a backing service (database, broker) cannot be reached

Others are mapped too: FastAPI's ``RequestValidationError`` → 422 naming each parameter,
Starlette's ``HTTPException`` (unknown route, wrong method) → its status, a database that cannot
be reached (``PoolTimeout``, ``OperationalError``) or a statement cancelled by the API's
``statement_timeout`` → 503, and anything else → 500 without
internals in the body (they go to the log, once: `CatchUnexpected` keeps Starlette from
re-raising them to the server, which would log the traceback a second time).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.broker import BrokerUnavailable

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "PROBLEM_DESCRIPTIONS",
    "PROBLEM_RESPONSES",
    "ApiError",
    "BadRequest",
    "CatchUnexpected",
    "Conflict",
    "ContentTooLarge",
    "Forbidden",
    "InvalidParameter",
    "NotFound",
    "ProblemResponse",
    "QueryTooLong",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "install_error_handlers",
    "problem_responses",
    "to_problem",
]

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
_TYPE_PREFIX = "urn:smartcity:problem:"


class ApiError(Exception):
    """An error a route reports to the client; subclasses fix the status and problem type."""

    status: HTTPStatus = HTTPStatus.INTERNAL_SERVER_ERROR
    problem_type: str = "about:blank"
    title: str = "Internal Server Error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class BadRequest(ApiError):
    """The request cannot be answered as asked: a value the planner refuses, an answer too big."""

    status = HTTPStatus.BAD_REQUEST
    problem_type = _TYPE_PREFIX + "bad-request"
    title = "Bad request"


class Unauthorized(ApiError):
    """No usable API key: missing, malformed, unknown or revoked (RFC 6750's challenge attached)."""

    status = HTTPStatus.UNAUTHORIZED
    problem_type = _TYPE_PREFIX + "unauthorized"
    title = "API key required"

    def __init__(self, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        challenge = 'Bearer realm="smartcity"'
        if error:
            challenge += f', error="{error}"'
        self.headers = {"WWW-Authenticate": challenge}


class Forbidden(ApiError):
    """The key is valid but its scope is below what the route needs."""

    status = HTTPStatus.FORBIDDEN
    problem_type = _TYPE_PREFIX + "forbidden"
    title = "Scope too low"


class NotFound(ApiError):
    """The addressed resource does not exist."""

    status = HTTPStatus.NOT_FOUND
    problem_type = _TYPE_PREFIX + "not-found"
    title = "Resource not found"


class Conflict(ApiError):
    """The resource to create exists already."""

    status = HTTPStatus.CONFLICT
    problem_type = _TYPE_PREFIX + "conflict"
    title = "Resource exists"


class ContentTooLarge(ApiError):
    """The request body is larger than the API reads (``api.max_body_bytes``)."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    problem_type = _TYPE_PREFIX + "content-too-large"
    title = "Request body too large"


class TooManyRequests(ApiError):
    """A rate limit refused the request; ``Retry-After`` says when a token is back."""

    status = HTTPStatus.TOO_MANY_REQUESTS
    problem_type = _TYPE_PREFIX + "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, limit: int, remaining: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after), "RateLimit-Limit": str(limit),
                        "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(retry_after)}


class QueryTooLong(ApiError):
    """The query string is longer than the API reads (``api.max_query_length``)."""

    status = HTTPStatus.REQUEST_URI_TOO_LONG
    problem_type = _TYPE_PREFIX + "query-too-long"
    title = "Query string too long"


class InvalidParameter(ApiError):
    """A request parameter is malformed or names something unknown."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY
    problem_type = _TYPE_PREFIX + "invalid-parameter"
    title = "Invalid request parameter"

    def __init__(self, name: str, message: str, location: str = "query") -> None:
        super().__init__(
            f"{location} parameter {name!r}: {message}",
            errors=[{"in": location, "name": name, "message": message}],
        )


class ServiceUnavailable(ApiError):
    """A backing service cannot be reached."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    problem_type = _TYPE_PREFIX + "service-unavailable"
    title = "Service unavailable"


class ProblemResponse(Response):
    """A problem document, serialised with orjson."""

    media_type = PROBLEM_CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# What each problem status means on this API, for the OpenAPI document; a route may say more.
PROBLEM_DESCRIPTIONS = {
    400: "The request cannot be answered as asked: the problem says what to change (and `hint` how)",
    404: "The addressed resource does not exist",
    413: "The request body is larger than the API reads (`max_bytes`)",
    414: "The query string is longer than the API reads",
    422: "A parameter is malformed or names something unknown: `errors` lists each",
    429: "Too many requests from this API key or address: retry after `Retry-After` seconds",
    503: "The database or the broker cannot be reached: retry after `Retry-After` seconds",
}


def problem_responses(*statuses: int, descriptions: Mapping[int, str] | None = None
                      ) -> dict[int | str, dict[str, Any]]:
    """Return ``responses=`` for a router, so the OpenAPI document shows the real error bodies.

    ``descriptions`` (``{404: "No such device"}``) replace the general ones of ``PROBLEM_DESCRIPTIONS``.
    """
    said = descriptions or {}
    return {
        status: {
            "description": said.get(status) or PROBLEM_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            # The schema is a component the app's document adds (api.app, complete_openapi).
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


PROBLEM_RESPONSES = problem_responses(404, 422, 503)


def _validation_error(errors: Sequence[Any]) -> InvalidParameter:
    items = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or location
        items.append({"in": location, "name": name, "message": str(error.get("msg", "invalid"))})
    first = items[0] if items else {"in": "request", "name": "request", "message": "invalid"}
    problem = InvalidParameter(first["name"], first["message"], first["in"])
    if len(items) > 1:
        problem.detail += f" (and {len(items) - 1} more)"
    problem.extensions["errors"] = items
    return problem


def to_problem(exc: Exception) -> ApiError:
    """Turn any exception a request raised into the ``ApiError`` to report."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        return _validation_error(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        status = HTTPStatus(exc.status_code)
        problem = ApiError(str(exc.detail) if exc.detail else status.phrase)
        problem.status, problem.title = status, status.phrase
        return problem
    if isinstance(exc, psycopg.errors.QueryCanceled):  # statement_timeout (an OperationalError)
        return ServiceUnavailable("the query ran longer than the API allows; ask for less: a shorter"
                                  " range, a larger bucket, fewer devices or sites")
    if isinstance(exc, PoolTimeout | psycopg.OperationalError):
        return ServiceUnavailable("the database cannot be reached; try again shortly")
    if isinstance(exc, BrokerUnavailable):
        return ServiceUnavailable("the MQTT broker cannot be reached; try again shortly")
    return ApiError("an unexpected error occurred; it has been logged")


def _instance(request: Request) -> str:
    # Percent-encoded again: the decoded path may hold a NUL or a line break from the client.
    return quote(request.url.path, safe="/:@!$&'()*+,;=-._~")


async def handle_error(request: Request, exc: Exception) -> Response:
    """Render any exception as a problem document."""
    problem = to_problem(exc)
    if problem.status >= 500:
        log.error("%s %s failed: %s", request.method, _instance(request), exc,
                  exc_info=problem.status == HTTPStatus.INTERNAL_SERVER_ERROR)
    body = {
        "type": problem.problem_type,
        "title": problem.title,
        "status": int(problem.status),
        "detail": problem.detail,
        "instance": _instance(request),
        **problem.extensions,
    }
    headers = getattr(exc, "headers", None) or {}
    if problem.status == HTTPStatus.SERVICE_UNAVAILABLE:
        headers = {**headers, "Retry-After": "5"}
    return ProblemResponse(body, status_code=int(problem.status), headers=headers)


class CatchUnexpected:
    """ASGI middleware: an exception no handler took becomes a 500 problem, logged once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            if started:  # too late for a problem document: let the server cut the response
                raise
            response = await handle_error(Request(scope, receive), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of error through ``handle_error``."""
    for exc_class in (ApiError, RequestValidationError, StarletteHTTPException, PoolTimeout,
                      psycopg.OperationalError, BrokerUnavailable):
        app.add_exception_handler(exc_class, handle_error)
    app.add_middleware(CatchUnexpected)
