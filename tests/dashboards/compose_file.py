"""docker-compose.yml as compose reads it, and what the compose tests share: its services, their
mounts, the secrets a deployment gives, the broker's service accounts, the health-check script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BROKER_ACCOUNTS", "COMPOSE", "COMPOSE_TEXT", "LONG_RUNNING", "MQTT_SECRETS", "ONE_SHOT", "ROOT",
           "SECRETS", "SERVICES", "bind_mounts", "interpolate", "run_healthcheck", "unescape_dollars",
           "volume_mounts"]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = {name for name, service in SERVICES.items() if service.get("restart") == "no"}
LONG_RUNNING = sorted(set(SERVICES) - ONE_SHOT)


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            mounts.append((source, target, mode == ["ro"]))
    return mounts


def bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    """(path, target, read-only) of each of the project's files or folders the service mounts."""
    return [(ROOT / source, target, ro) for source, target, ro in volume_mounts(service)
            if source.startswith(".")]


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Put in ``${NAME:?message}`` references as compose does (every one of them must be given)."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: variables[m.group(1)], value)


def unescape_dollars(text: str) -> str:
    """Undo compose's ``$$`` escape, as the container sees the text."""
    return text.replace("$$", "$")


SECRETS = {"PASER_DB_PASSWORD": "owner-pw", "PASER_INGEST_DB_PASSWORD": "ingest-pw",
           "PASER_API_DB_PASSWORD": "api-pw", "PASER_MQTT_INGEST_PASSWORD": "mqtt-ingest-Pw_1",
           "PASER_MQTT_API_PASSWORD": "mqtt-api-Pw_2", "PASER_MQTT_MONITOR_PASSWORD": "mqtt-monitor-Pw_3",
           "PASER_FLEET_SECRET": "fleet-Secret_4", "PASER_GRAFANA_DB_PASSWORD": "grafana-pw",
           "PASER_GRAFANA_ADMIN_PASSWORD": "grafana-admin-pw", "PASER_ALERTS_DB_PASSWORD": "alerts-pw",
           "PASER_MQTT_ALERTS_PASSWORD": "mqtt-alerts-Pw_5"}


# The broker's service accounts, as docker/broker-accounts.sh makes them: name → (role, secret).
BROKER_ACCOUNTS = {"smartcity-ingest-1": ("ingest", "PASER_MQTT_INGEST_PASSWORD"),
                   "smartcity-api-1": ("api", "PASER_MQTT_API_PASSWORD"),
                   "smartcity-monitor-1": ("monitor", "PASER_MQTT_MONITOR_PASSWORD"),
                   "smartcity-alerts-1": ("alerts", "PASER_MQTT_ALERTS_PASSWORD")}
MQTT_SECRETS = {secret for _, secret in BROKER_ACCOUNTS.values()}


def run_healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run docker/healthcheck.py as the containers do: a plain script, its exit status the verdict."""
    return subprocess.run([sys.executable, str(ROOT / "docker/healthcheck.py"), *args], capture_output=True,
                          text=True, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
