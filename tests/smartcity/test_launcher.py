"""`smartcity up` as a user runs it: embedded services, demo fleet, readings in the API, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx2 as httpx
import psycopg
import pytest

from smartcity.services import EmbeddedMosquitto, embedded_postgres_url, free_port, port_is_open
from tests.services import scratch_dir, wait_until

pytestmark = pytest.mark.slow


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
    env.update({
        "SMARTCITY_EMBEDDED__DATA_DIR": str(data_dir),
        "SMARTCITY_EMBEDDED__POSTGRES_PORT": str(ports["pg"]),
        "SMARTCITY_EMBEDDED__MQTT_PORT": str(ports["mqtt"]),
        "SMARTCITY_API__PORT": str(ports["api"]),
        "SMARTCITY_SIMULATOR__INTERVAL_S": "1",
        "SMARTCITY_INGEST__METRICS_PORT": str(ports["metrics"]),
    })
    return subprocess.Popen([sys.executable, "-m", "smartcity", "up"], env=env, cwd=data_dir.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _latest(api: str, device_id: str) -> dict:
    try:
        response = httpx.get(f"{api}/devices/{device_id}/latest", timeout=2)
    except httpx.TransportError:
        return {}
    return response.json()["metrics"] if response.status_code == 200 else {}


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    return output.decode(errors="replace")


def test_up_serves_simulated_readings_stops_cleanly_and_keeps_data() -> None:
    ports = {"pg": free_port(), "mqtt": free_port(), "api": free_port(), "metrics": free_port()}
    api = f"http://127.0.0.1:{ports['api']}/api/v1"
    with scratch_dir("smartcity-up-") as root:
        data_dir = root / ".smartcity"
        process = _start(data_dir, ports)
        try:
            first = wait_until(lambda: _latest(api, "aq-tanah-grogot-01"), timeout=60,
                               interval=0.5, message="simulated readings in the API")
            health = httpx.get(f"{api}/health", timeout=2).json()
            metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics", timeout=2).text
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        assert set(first) == {"pm25", "pm10", "co", "no2", "o3", "so2", "hc"}
        assert health == {"status": "ok", "database": "ok", "broker": "ok"}
        assert "smartcity_ingest_readings_stored_total" in metrics
        assert f"127.0.0.1:{ports['api']}" in output and f"127.0.0.1:{ports['mqtt']}" in output
        assert not any(port_is_open("127.0.0.1", port) for port in ports.values())

        process = _start(data_dir, ports)
        try:
            wait_until(lambda: _latest(api, "aq-tanah-grogot-01"), timeout=60, interval=0.5,
                       message="API back after restart")
            url = embedded_postgres_url(data_dir / "postgres", ports["pg"])
            with psycopg.connect(url) as conn:
                kept = conn.execute(
                    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device"
                    " WHERE d.device_id = 'aq-tanah-grogot-01' AND r.time = %s",
                    (datetime.fromisoformat(first["pm25"]["time"]),),
                ).fetchone()[0]
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        assert kept == 7  # the first run's reading of every pollutant survived the restart


def test_up_uses_external_services_when_urls_are_given(
        database_url: str, db: psycopg.Connection, mosquitto: EmbeddedMosquitto) -> None:
    api_port = free_port()
    with scratch_dir("smartcity-up-ext-") as root:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTCITY_")}
        env.update({
            "SMARTCITY_DATABASE_URL": database_url,
            "SMARTCITY_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto.port}",
            "SMARTCITY_API__PORT": str(api_port),
            "SMARTCITY_SIMULATOR__INTERVAL_S": "1",
            "SMARTCITY_INGEST__CLIENT_ID": f"up-ext-{api_port}",
            "SMARTCITY_INGEST__SHARE_GROUP": f"upext{api_port}",
            "SMARTCITY_INGEST__METRICS_PORT": "0",
        })
        process = subprocess.Popen([sys.executable, "-m", "smartcity", "up"], env=env, cwd=root,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: db.execute("SELECT count(*) FROM readings").fetchone()[0] > 0,
                       timeout=60, interval=0.5, message="readings in the external database")
        finally:
            output = _stop(process)
        assert process.returncode == 0, output
        assert not (root / ".smartcity").exists()  # no embedded service was started
        assert "postgres listening" not in output and "mosquitto listening" not in output
    assert mosquitto.is_running()
