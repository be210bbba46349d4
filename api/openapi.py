"""The OpenAPI document: FastAPI's, completed with what the routes cannot say themselves.

- The tags, each described (a route whose tag is missing here fails tests/api/test_openapi.py).
- The problem document (``Problem``) as a component every error response refers to.
- The request limits' 400, 413 and 414 (``api.limits``), which every route can answer.
- FastAPI's default 422 body (``HTTPValidationError``) removed: every error is a problem document
  (``api.errors``), and a route that can answer 422 declares it.
- The rate limits' headers (``api.ratelimit``) on every 429.
- The API-key scheme (``api.auth``), required by every operation that can answer 401: the key is
  checked by a plain function, not a FastAPI security dependency, which would declare it itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.auth import SECURITY_SCHEME, SECURITY_SCHEME_NAME
from api.errors import problem_responses
from api.models import Problem

__all__ = ["OPENAPI_TAGS", "complete_openapi", "install_openapi"]

OPENAPI_TAGS: list[dict[str, Any]] = [
    {"name": "health", "description": "Whether the API, its database and its MQTT broker are up."},
    {"name": "sites", "description": "The ten districts (kecamatan) of Kabupaten Paser."},
    {"name": "devices", "description": "Registered devices, their connection state and latest values."},
    {"name": "readings", "description": "Raw readings, a page at a time (keyset cursors), or streamed"
                                        " as CSV."},
    {"name": "aggregates", "description": "A metric in time buckets per device, per site or over all,"
                                          " exact whatever the rollups' lag."},
    {"name": "air quality", "description": "ISPU (Permen LHK P.14/2020) and US AQI per site."},
    {"name": "alerts", "description": "Flood, haze and silent-device alerts, their rules, and who"
                                      " acknowledged them."},
    {"name": "quarantine", "description": "Admin: rejected input with its reason codes."},
    {"name": "operations", "description": "For operators: Prometheus metrics of the API."},
]
_DEFAULT_422_SCHEMAS = ("HTTPValidationError", "ValidationError")
_LIMIT_RESPONSES = problem_responses(400, 413, 414)
_RATE_LIMIT_HEADERS: dict[str, Any] = {
    "Retry-After": {"description": "Whole seconds until the bucket has a token again",
                    "schema": {"type": "integer", "minimum": 1, "examples": [3]}},
    "RateLimit-Limit": {"description": "The bucket's size (the burst)",
                        "schema": {"type": "integer", "examples": [500]}},
    "RateLimit-Remaining": {"description": "Tokens left: 0 on a 429",
                            "schema": {"type": "integer", "examples": [0]}},
    "RateLimit-Reset": {"description": "Whole seconds until a token is back (as Retry-After)",
                        "schema": {"type": "integer", "examples": [3]}},
}


def _is_default_422(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Complete FastAPI's ``document`` in place (see the module's docstring) and return it."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for name in _DEFAULT_422_SCHEMAS:
        schemas.pop(name, None)
    document["components"].setdefault("securitySchemes", {})[SECURITY_SCHEME_NAME] = SECURITY_SCHEME
    for methods in document.get("paths", {}).values():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses and _is_default_422(responses["422"]):
                del responses["422"]
            for status, response in _LIMIT_RESPONSES.items():
                responses.setdefault(str(status), response)
            if "429" in responses:
                responses["429"] = {**responses["429"], "headers": _RATE_LIMIT_HEADERS}
            # The routes behind a key are those build_router gave its 401 (api.auth).
            if "401" in responses:
                operation["security"] = [{SECURITY_SCHEME_NAME: []}]
            # Ordered by status, as readers of the document expect.
            operation["responses"] = dict(sorted(responses.items()))
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return FastAPI's document, completed (once per document FastAPI builds)."""
    build = app.openapi
    done: list[int] = []  # id() of the document last completed

    def openapi() -> dict[str, Any]:
        document = build()
        if not done or done[0] != id(document):
            done[:] = [id(complete_openapi(document))]
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it
