"""schemathesis against the app's own OpenAPI document: no 5xx, and every answer as documented.

Each operation gets requests generated from its parameters' schemas and examples, valid and invalid
(schemathesis' positive and negative modes), sent to the live app (real database and broker, a
device with readings) through the ``client`` fixture. The checks: no server error, a documented
status code, a documented content type, a body that matches its schema, and invalid input refused
with a 4xx. Bounded and derandomized, so a run takes seconds and repeats itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case

from api import create_app
from smartcity.devices import register_device
from smartcity.settings import Settings
from tests.api.alerts_seed import clear_alerts, insert_alert
from tests.api.client import TestClient
from tests.api.particulates import store_a_day_of_particulates

# The device the OpenAPI examples name, so the examples phase reaches real rows.
EXAMPLE_DEVICE = "aq-tanah-grogot-01"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, negative_data_rejection]


@pytest.fixture
def api_headers(admin_headers: dict[str, str]) -> dict[str, str]:
    """Headers every generated request carries: an admin key, so every route is reached."""
    return admin_headers


# Loaded when the module is collected (schemathesis parametrizes from it then); the document is the
# code's, whatever the settings, and `example_data` checks the live app serves the same one.
DOCUMENT = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
schema = schemathesis.openapi.from_dict(DOCUMENT)
# The key comes from `api_headers`; a mutated or missing one is tests/api/test_auth.py's subject.
schema.config.generation.update(with_security_parameters=False)
# Invalid input may also be refused by the query limits before routing: 414 for an over-long query.
_rejection = schema.config.checks.negative_data_rejection
schema.config.checks.negative_data_rejection = type(_rejection)(
    expected_statuses=[*_rejection.expected_statuses, "414"])


@pytest.fixture
def bare_client(settings: Settings) -> Iterator[TestClient]:
    """A client of the live app that sends only what each case says: the negative cases leave the
    key out, and the app must then refuse them. The key's rate limit is out of reach (still on):
    hundreds of cases a second from one key are not what the limit is for (tests/api/test_ratelimit.py)."""
    high = settings.model_copy(update={"api": settings.api.model_copy(update={
        "rate_limit_key_per_s": 1e6, "rate_limit_key_burst": 1_000_000})})
    with TestClient(create_app(high)) as client:
        yield client


@pytest.fixture
def example_data(bare_client: TestClient, db: psycopg.Connection, database_url: str) -> None:
    """Register the example device with a day of readings; check the live app's document."""
    register_device(db, EXAMPLE_DEVICE, "air_quality_station", "tanah-grogot")
    store_a_day_of_particulates(database_url, db, EXAMPLE_DEVICE)
    clear_alerts(db)  # then seven, so the examples' alert 7 exists
    for minutes in range(7):
        insert_alert(db, "river-waspada", "river-tanah-grogot-01", "tanah-grogot", fired_minutes=minutes,
                     resolved_minutes=minutes + 1 if minutes < 6 else None)
    response = bare_client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=60, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_answers_as_its_openapi_document_says(
        case: Case, bare_client: TestClient, api_headers: dict[str, str], example_data: None) -> None:
    kwargs = case.as_transport_kwargs(base_url=str(bare_client.base_url), headers=api_headers)
    assert not kwargs.get("cookies"), "the API documents no cookie parameter"
    response = bare_client.request(kwargs["method"], kwargs["url"], headers=kwargs.get("headers"),
                              params=kwargs.get("params"))
    case.validate_response(response, checks=CHECKS, headers=api_headers)
