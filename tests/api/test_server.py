"""run_api: serves on the configured port and returns cleanly on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from smartcity.services import free_port
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until

_ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = """
import json, sys
from api.server import run_api
from smartcity.settings import Settings
settings = Settings(_env_file=None, **json.loads(sys.argv[1]))
run_api(settings)
print("run_api returned", flush=True)
"""


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_api_serves_then_returns_on_signal(
    database_url: str, broker_login: BrokerLogins, sig: signal.Signals
) -> None:
    port = free_port()
    login = broker_login("api")
    overrides = {"database_url": database_url, "mqtt_url": f"mqtt://127.0.0.1:{login.port}",
                 "api": {"host": "127.0.0.1", "port": port, "mqtt_url": login_url(login)},
                 "log_level": "WARNING"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    process = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, json.dumps(overrides)],
        cwd=_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/api/v1/health"), timeout=20,
                   message="API answering healthy")
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, stderr
    assert "run_api returned" in stdout
