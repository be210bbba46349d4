"""CORS (api.app.cors_options): closed by default; when origins are listed, exactly those may read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from api import create_app
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient

LISTED = "https://dashboard.paserkab.go.id"
OTHER = "https://evil.example"
PREFLIGHT = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


@pytest.fixture
def cors_client(settings: Settings, admin_headers: dict[str, str]) -> Iterator[TestClient]:
    listed = settings.model_copy(update={"api": settings.api.model_copy(update={
        "cors_origins": [LISTED, "http://localhost:3000"]})})
    with TestClient(create_app(listed), headers=admin_headers) as client:
        yield client


def _cors_headers(headers: object) -> set[str]:
    return {name.lower() for name in headers if name.lower().startswith("access-control-")}  # type: ignore[attr-defined]


def test_by_default_no_answer_carries_a_cors_header(client: TestClient) -> None:
    for origin in (LISTED, OTHER):
        simple = client.get("/api/v1/sites", headers={"Origin": origin})
        assert simple.status_code == 200 and not _cors_headers(simple.headers)
        preflight = client.options("/api/v1/sites", headers={"Origin": origin, **PREFLIGHT})
        assert preflight.status_code == 405 and not _cors_headers(preflight.headers)


def test_an_origin_not_listed_gets_no_allow_origin(cors_client: TestClient) -> None:
    simple = cors_client.get("/api/v1/sites", headers={"Origin": OTHER})
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers
    preflight = cors_client.options("/api/v1/sites", headers={"Origin": OTHER, **PREFLIGHT})
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    # A listed origin with another port or scheme is another origin.
    for near in ("https://dashboard.paserkab.go.id:8443", "http://dashboard.paserkab.go.id"):
        assert "access-control-allow-origin" not in cors_client.get(
            "/api/v1/sites", headers={"Origin": near}).headers


def test_a_listed_origin_may_read_and_send_its_key(cors_client: TestClient) -> None:
    simple = cors_client.get("/api/v1/sites", headers={"Origin": LISTED})
    assert simple.status_code == 200
    assert simple.headers["access-control-allow-origin"] == LISTED
    assert "access-control-allow-credentials" not in simple.headers  # keys are bearer tokens
    assert "retry-after" in simple.headers["access-control-expose-headers"].lower()
    preflight = cors_client.options("/api/v1/devices", headers={
        "Origin": LISTED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == LISTED
    assert set(preflight.headers["access-control-allow-methods"].split(", ")) == {
        "GET", "HEAD", "OPTIONS", "POST"}
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers


def test_a_listed_origin_can_read_refusals_too(cors_client: TestClient) -> None:
    # A page must be able to show why it was refused (a wrong key here), not a bare network error.
    response = cors_client.get("/api/v1/sites", headers={"Origin": LISTED, "Authorization": "Bearer x"})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == LISTED


def test_methods_other_than_read_and_post_are_not_allowed(cors_client: TestClient) -> None:
    preflight = cors_client.options("/api/v1/devices", headers={
        "Origin": LISTED, "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code == 400


@pytest.mark.parametrize("origin", ["*", "https://dashboard.example/path", "dashboard.example",
                                    "ftp://files.example"])
def test_an_origin_setting_that_is_not_an_origin_is_refused(origin: str) -> None:
    with pytest.raises(ValidationError, match="SMARTCITY_API__CORS_ORIGINS"):
        ApiSettings(cors_origins=[origin])


def test_origins_come_comma_separated_or_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTCITY_API__CORS_ORIGINS", f"{LISTED}, http://localhost:3000")
    assert Settings(_env_file=None).api.cors_origins == [LISTED, "http://localhost:3000"]  # type: ignore[call-arg]
    monkeypatch.setenv("SMARTCITY_API__CORS_ORIGINS", f'["{LISTED}"]')
    assert Settings(_env_file=None).api.cors_origins == [LISTED]  # type: ignore[call-arg]
    monkeypatch.setenv("SMARTCITY_API__CORS_ORIGINS", "")
    assert Settings(_env_file=None).api.cors_origins == []  # type: ignore[call-arg]
