"""The OpenAPI document is complete: every route, parameter, response and schema property described,
with examples, the problem statuses each route can answer declared, and every tag described.

The walk covers whatever routes the app has, so a route added later fails here until it is complete.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api import create_app
from api.errors import PROBLEM_CONTENT_TYPE
from smartcity.settings import Settings

DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
OPERATIONS = [(path, method, operation) for path, methods in DOCUMENT["paths"].items()
              for method, operation in methods.items()]
IDS = [f"{method.upper()} {path}" for path, method, _ in OPERATIONS]

# The problems each route can answer besides the request limits' 400, 413 and 414, which every route
# can (api.limits). Every route behind a key adds 401 and 403 (api.auth) and 429 (api.ratelimit).
# New routes are held by the generic rules below.
_LIMITS = {400, 413, 414}
_KEY = {401, 403, 429}
EXPECTED_PROBLEMS = {
    ("/api/v1/health", "get"): set(),  # its 503 is a HealthReport, not a problem
    ("/api/v1/sites", "get"): {503} | _KEY,
    ("/api/v1/devices", "get"): {422, 503} | _KEY,
    ("/api/v1/devices", "post"): {409, 422, 503} | _KEY,
    ("/api/v1/devices/{device_id}", "get"): {404, 422, 503} | _KEY,
    ("/api/v1/devices/{device_id}/latest", "get"): {404, 422, 503} | _KEY,
    ("/api/v1/readings", "get"): {406, 422, 503} | _KEY,
    ("/api/v1/aggregates", "get"): {406, 503} | _KEY,  # every malformed parameter is a 400 here
    ("/api/v1/ispu", "get"): {404, 422, 503} | _KEY,
    ("/api/v1/quarantine", "get"): {422, 503} | _KEY,
    ("/api/v1/alerts/rules", "get"): {422, 503} | _KEY,
    ("/api/v1/alerts", "get"): {422, 503} | _KEY,
    ("/api/v1/alerts/{alert_id}", "get"): {404, 422, 503} | _KEY,
    ("/api/v1/alerts/{alert_id}/ack", "post"): {404, 409, 422, 503} | _KEY,
    ("/metrics", "get"): set(),
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]


def _has_example(item: dict[str, Any]) -> bool:
    schema = item.get("schema", {})
    return any(key in holder for holder in (item, schema) for key in ("example", "examples"))


def _properties(name: str, schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (path, schema) of every property of ``schema``, nested ones inline included."""
    for prop, sub in schema.get("properties", {}).items():
        yield f"{name}.{prop}", sub
        for branch in (sub, sub.get("items", {}), *sub.get("anyOf", [])):
            if "properties" in branch:
                yield from _properties(f"{name}.{prop}", branch)


def _response_schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for (path, method, operation), label in zip(OPERATIONS, IDS, strict=True):
        del path, method
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                yield f"{label} {status} {media_type}", content.get("schema", {})


def test_the_document_lists_every_route_of_the_app() -> None:
    assert set(EXPECTED_PROBLEMS) <= {(path, method) for path, method, _ in OPERATIONS}


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_has_a_summary_a_description_and_described_tags(
        path: str, method: str, operation: dict[str, Any]) -> None:
    assert operation.get("summary"), "no summary"
    assert len(operation.get("description", "")) >= 20, "no description"
    described = {tag["name"] for tag in DOCUMENT.get("tags", []) if tag.get("description")}
    assert operation.get("tags"), "no tag"
    assert set(operation["tags"]) <= described, f"tags without a description: {operation['tags']}"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_parameter_has_a_description_and_an_example(
        path: str, method: str, operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        assert parameter.get("description"), f"{parameter['name']}: no description"
        assert _has_example(parameter), f"{parameter['name']}: no example"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_response_is_described_and_errors_are_problem_documents(
        path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    assert "200" in responses or (method == "post" and "201" in responses)
    for status, response in responses.items():
        assert response.get("description"), f"{status}: no description"
        assert response.get("content"), f"{status}: no content"
        if int(status) >= 400 and (path, method, int(status)) != ("/api/v1/health", "get", 503):
            assert list(response["content"]) == [PROBLEM_CONTENT_TYPE], f"{status}: not a problem"
            schema = response["content"][PROBLEM_CONTENT_TYPE]["schema"]
            assert {"type", "title", "status", "detail"} <= set(_resolve(schema)["properties"])
    problems = {int(status) for status, response in responses.items()
                if PROBLEM_CONTENT_TYPE in response.get("content", {})}
    # The request limits (api.limits) hold on every route; the rate limits on every route behind a key.
    assert problems >= _LIMITS
    if 401 in problems:
        assert 429 in problems, "behind a key, but no 429 (api.ratelimit)"
        assert "Retry-After" in responses["429"]["description"]
    if operation.get("parameters"):
        assert problems & {400, 422}, "parameters, but no status for a bad one"
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
        assert 404 in problems, "a path parameter, but no 404"
    expected = EXPECTED_PROBLEMS.get((path, method))
    if expected is not None:
        assert problems - _LIMITS == expected - {400}
        assert 400 in problems


def test_every_schema_and_property_is_described_and_every_model_has_examples() -> None:
    missing = []
    for name, schema in DOCUMENT["components"]["schemas"].items():
        if not schema.get("description"):
            missing.append(f"{name}: no description")
        if not schema.get("examples"):
            missing.append(f"{name}: no examples")
        missing += [f"{path}: no description" for path, sub in _properties(name, schema)
                    if not sub.get("description")]
    for label, schema in _response_schemas():
        if "$ref" not in schema and "properties" in schema:
            missing += [f"{path}: no description" for path, sub in _properties(label, schema)
                        if not sub.get("description")]
    assert not missing, "\n".join(missing)


def test_fastapis_own_validation_error_schema_is_not_offered() -> None:
    # Every error is a problem document (api.errors); FastAPI's default 422 body never goes out.
    assert "HTTPValidationError" not in DOCUMENT["components"]["schemas"]
    assert "ValidationError" not in DOCUMENT["components"]["schemas"]
