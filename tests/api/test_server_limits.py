"""The limits through the real server (api.server.run_api: uvicorn, httptools): a chunked body is cut
off at the bound, not read whole; X-Forwarded-For names the client only when the peer is a listed
proxy."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import psycopg
import pytest
from pydantic import ValidationError

from smartcity.services import free_port
from smartcity.settings import ApiSettings
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until

_ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = """
import json, sys
from api.server import run_api
from smartcity.settings import Settings
run_api(Settings(_env_file=None, **json.loads(sys.argv[1])))
"""
_CHUNK = 16 * 1024
_SENT_AT_MOST = 64 * 1024 * 1024  # what the client would send if nobody stopped it


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def serve(database_url: str, broker_login: BrokerLogins) -> Iterator[Any]:
    """Start ``run_api`` in a child process with the given ``api`` settings; return its port."""
    processes: list[subprocess.Popen[str]] = []

    def start(**api: object) -> int:
        port = free_port()
        login = broker_login("api")  # an account per process: the broker binds client ids to logins
        overrides = {"database_url": database_url, "mqtt_url": f"mqtt://127.0.0.1:{login.port}",
                     "log_level": "WARNING",
                     "api": {"host": "127.0.0.1", "port": port, "mqtt_url": login_url(login), **api}}
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SMARTCITY_") and k != "FORWARDED_ALLOW_IPS"}
        process = subprocess.Popen([sys.executable, "-c", _SCRIPT, json.dumps(overrides)], cwd=_ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        processes.append(process)
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/api/v1/health"), timeout=30,
                   message="API answering healthy")
        return port

    yield start
    for process in processes:
        process.terminate()
        process.communicate(timeout=15)


def test_a_chunked_body_is_refused_once_past_the_bound_and_not_read_whole(
        serve: Any, admin_key: str, db: psycopg.Connection) -> None:
    port = serve()
    head = (f"POST /api/v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {admin_key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = f"{_CHUNK:x}\r\n".encode() + b" " * _CHUNK + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + b'1\r\n{\r\n')
        while sent < _SENT_AT_MOST:
            # Send while the socket takes it; stop at the first byte of an answer.
            readable, writable, _ = select.select([sock], [sock], [], 10)
            if readable:
                break
            assert writable, "the server neither answered nor read for 10 s"
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += _CHUNK
        sock.settimeout(10)
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert b"content-type: application/problem+json" in rest.lower()
    assert b"more than the limit of 65,536" in rest
    # The server stopped reading: the client got its answer long before it had sent what it meant
    # to (what it did send sits in socket buffers: a few MiB at most on loopback).
    assert sent < _SENT_AT_MOST // 4, f"{sent:,} bytes sent before the answer"
    row = db.execute("SELECT count(*) FROM devices").fetchone()
    assert row == (0,)


def _statuses(port: int, forwarded_for: list[str]) -> list[tuple[int, str]]:
    answers = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for address in forwarded_for:
            response = client.get("/api/v1/sites", headers={"X-Forwarded-For": address})
            answers.append((response.status_code, response.json().get("detail", "")
                            if response.status_code != 200 else ""))
    return answers


_TIGHT: dict[str, object] = {"public_read": True, "rate_limit_address_per_s": 0.01,
                             "rate_limit_address_burst": 2}


def test_forwarded_for_is_ignored_unless_the_peer_is_a_listed_proxy(serve: Any) -> None:
    port = serve(**_TIGHT)  # uvicorn's own default would trust 127.0.0.1
    answers = _statuses(port, ["203.0.113.5", "203.0.113.6", "203.0.113.7"])
    assert [status for status, _ in answers] == [200, 200, 429]
    assert "the address 127.0.0.1" in answers[2][1]


def test_a_listed_proxy_names_the_client(serve: Any) -> None:
    port = serve(**_TIGHT, forwarded_allow_ips=["127.0.0.1"])
    answers = _statuses(port, ["203.0.113.5", "203.0.113.5", "203.0.113.5", "203.0.113.6"])
    assert [status for status, _ in answers] == [200, 200, 429, 200]
    assert "the address 203.0.113.5" in answers[2][1]


@pytest.mark.parametrize("proxy", ["proxy.internal", "172.18.0.1/16", "*"])
def test_a_proxy_setting_uvicorn_would_not_read_as_an_address_is_refused(proxy: str) -> None:
    # uvicorn takes what it cannot parse as a literal host name and "*" as "trust everyone":
    # either would silently trust the wrong peers.
    with pytest.raises(ValidationError, match="SMARTCITY_API__FORWARDED_ALLOW_IPS"):
        ApiSettings(forwarded_allow_ips=[proxy])


def test_proxies_come_comma_separated() -> None:
    assert ApiSettings(forwarded_allow_ips="10.0.0.5, 172.18.0.0/16").forwarded_allow_ips == [
        "10.0.0.5", "172.18.0.0/16"]
