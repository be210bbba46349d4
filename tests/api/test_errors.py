"""Problem documents (RFC 9457) for errors no resource route raises on purpose."""

from __future__ import annotations

import io
import logging
import socket
import threading

import psycopg
import pytest
import uvicorn
from psycopg_pool import PoolTimeout

from api import create_app
from api.broker import BrokerUnavailable
from smartcity.logs import TextFormatter
from smartcity.services import free_port
from smartcity.settings import Settings
from tests.api.client import TestClient
from tests.services import wait_until


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404
    assert response.json()["instance"] == "/api/v1/nothing-here"


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/api/v1/sites")

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Method Not Allowed"


def test_unexpected_error_is_a_500_problem_without_internals(settings: Settings) -> None:
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internal state")

    app.add_api_route("/api/v1/explode", explode)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/api/v1/explode")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 500
    assert {"type", "title", "detail"} <= set(body)
    assert "secret" not in response.text


@pytest.mark.parametrize("exc", [
    PoolTimeout("couldn't get a connection after 5.00 sec"),
    psycopg.OperationalError("connection refused"),
    BrokerUnavailable("broker 127.0.0.1:1883 is not connected"),
])
def test_unreachable_services_are_503_problems(settings: Settings, exc: Exception) -> None:
    # A route that fails the way a pooled connection or publish fails when the service is down;
    # the real outage is covered by the health tests (waiting out the pool timeout costs 5 s).
    app = create_app(settings)

    async def fail() -> None:
        raise exc

    app.add_api_route("/api/v1/fail", fail)
    with TestClient(app) as client:
        response = client.get("/api/v1/fail")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["type"] == "urn:smartcity:problem:service-unavailable"
    assert body["status"] == 503
    assert str(exc) not in body["detail"]


def test_unexpected_error_is_logged_once_and_never_reaches_the_server(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("secret internal state")

    app.add_api_route("/api/v1/explode", explode)
    # raise_server_exceptions=True (the default): an exception re-raised past the app fails here.
    with caplog.at_level(logging.ERROR), TestClient(app) as client:
        response = client.get("/api/v1/explode")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret" not in response.text and "Traceback" not in response.text
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "secret internal state" in caplog.text  # the log has it, once


@pytest.mark.parametrize("device_id", [
    "%00", "aq%00kuaro", "ab", "x" * 65, "AQ-KUARO-01", "-aq-kuaro", "aq%0Akuaro", "aq%1B%5B31mred",
    "aq kuaro", "aq.kuaro", "%C3%A9t%C3%A9-01",
])
@pytest.mark.parametrize("suffix", ["", "/latest"])
def test_malformed_device_ids_in_the_path_are_422_problems(
        client: TestClient, device_id: str, suffix: str) -> None:
    response = client.get(f"/api/v1/devices/{device_id}{suffix}")

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["errors"][0]["in"] == "path" and body["errors"][0]["name"] == "device_id"
    assert "pattern" in body["errors"][0]["message"]
    # The instance is the path as sent (percent-encoded), never a raw control character.
    assert body["instance"].startswith("/api/v1/devices/")
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in body["instance"])
    assert "\\u00" not in response.text


def test_a_wellformed_unknown_device_is_still_a_404(client: TestClient) -> None:
    assert client.get("/api/v1/devices/aq-nowhere-99").status_code == 404
    assert client.get("/api/v1/devices/aq-nowhere-99/latest").status_code == 404


def test_nul_path_gives_a_clean_problem_and_a_clean_log(
        client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        response = client.get("/api/v1/devices/%00")
    assert response.status_code == 422
    assert response.json()["instance"] == "/api/v1/devices/%00"
    assert "\x00" not in caplog.text and "Traceback" not in caplog.text


def test_uvicorn_access_log_line_for_a_nul_path_has_no_raw_control_character(
        settings: Settings, admin_key: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter("%(name)s: %(message)s"))
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20, message="uvicorn started")
        # A raw request: HTTP clients normalise paths, a device or attacker need not.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /api/v1/devices/%00%1B[2J HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Authorization: Bearer " + admin_key.encode() + b"\r\n\r\n")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 422")
        wait_until(lambda: "/api/v1/devices/" in stream.getvalue(), message="access log line written")
    finally:
        server.should_exit = True
        thread.join(10)
        access.removeHandler(handler)
        access.setLevel(previous)
    line = next(line for line in stream.getvalue().splitlines() if "/api/v1/devices/" in line)
    assert "/api/v1/devices/%00%1B%5B2J" in line and "422" in line
    assert not any(ord(ch) < 0x20 for ch in line)


@pytest.mark.parametrize(("path", "takes"), [
    ("/api/v1/devices", "kind, site"), ("/api/v1/sites", "none"), ("/api/v1/ispu", "at, site")])
def test_an_unknown_query_parameter_is_a_422_listing_what_the_route_takes(
        client: TestClient, path: str, takes: str) -> None:
    # A misspelt filter must not widen the answer: ?sit=kuaro would otherwise list every device.
    response = client.get(path, params={"sit": "kuaro"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["detail"] == f"query parameter 'sit': is not a parameter of this route, which takes: {takes}"
    assert body["errors"] == [{"in": "query", "name": "sit", "message":
                               f"is not a parameter of this route, which takes: {takes}"}]
