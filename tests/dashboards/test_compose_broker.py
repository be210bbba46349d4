"""Compose's broker configuration on a real Mosquitto, with the password and ACL files that
`smartcity broker sync --watch` renders from a real registry and the accounts compose's job makes:
devices log in as themselves, anonymous is refused, a device cannot publish as another, the health
checks log in as the monitor, a revoke through the registry disconnects the device."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from smartcity.broker.accounts import revoke_device
from smartcity.broker.authfiles import PASSWORD_FILE
from smartcity.contract import status_topic
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto, free_port
from tests.broker.conftest import open_session
from tests.dashboards.compose_file import (
    BROKER_ACCOUNTS,
    MQTT_SECRETS,
    ROOT,
    SECRETS,
    SERVICES,
    interpolate,
    run_healthcheck,
    unescape_dollars,
)
from tests.services import scratch_dir, wait_until

NOT_AUTHORIZED = 0x87


class ComposeMosquitto(EmbeddedMosquitto):
    """Mosquitto running docker/mosquitto.conf as compose mounts it, paths moved into ``data_dir``:
    its files in ``auth`` (the broker-auth volume)."""

    def __init__(self, data_dir: Path, port: int, auth: Path) -> None:
        super().__init__(data_dir, port)
        self.auth_dir = auth

    @property
    def pid_file(self) -> Path:
        return self.auth_dir / "mosquitto.pid"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf_d = self.data_dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        shutil.copy(ROOT / "smartcity/mosquitto.conf", conf_d / "platform.conf")
        text = (ROOT / "docker/mosquitto.conf").read_text()
        text = (text.replace("listener 1883", f"listener {self.port} 127.0.0.1")
                    .replace("/mosquitto/config/conf.d", str(conf_d))
                    .replace("/mosquitto/auth/", f"{self.auth_dir}/")
                    .replace("/mosquitto/data/", f"{self.data_dir}/"))
        settings = [line for line in text.splitlines() if not line.startswith("#")]
        assert not any("/mosquitto/" in line for line in settings), text
        # The broker runs as the sync's user, as in compose (both uid 1883 there).
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.config_file.write_text(f"user {user}\n{text}")


@dataclass
class ComposeBroker:
    broker: ComposeMosquitto
    auth: Path
    passwords: dict[str, str]  # login → password


def _compose_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCITY_", "PASER_"))}
    # The project image's PATH: `smartcity` is on it.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["SMARTCITY_DATABASE_URL"] = database_url
    return env


@pytest.fixture
def compose_broker(database_url: str, db: psycopg.Connection) -> Iterator[ComposeBroker]:
    """Compose's start order on this machine: the accounts job, the sync (--watch, --pid-file) until
    its files exist, then the broker with compose's configuration."""
    env = _compose_env(database_url)
    secrets = {secret: SECRETS[secret] for secret in MQTT_SECRETS}
    made = subprocess.run(["sh", str(ROOT / "docker/broker-accounts.sh")], env={**env, **secrets},
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    passwords = {name: SECRETS[secret] for name, (_, secret) in BROKER_ACCOUNTS.items()}
    for device_id in ("river-compose-a", "river-compose-b"):
        registration = register_device(db, device_id, "river_level_sensor", "tanah-grogot")
        passwords[device_id] = registration.mqtt_password
    with scratch_dir("smartcity-compose-mqtt-") as directory:
        auth = directory / "auth"
        command = unescape_dollars(" ".join(SERVICES["broker-auth"]["command"]))
        command = command.replace("/var/lib/smartcity/broker", str(auth))
        with open(directory / "sync.log", "wb") as log:
            sync = subprocess.Popen([sys.executable, "-m", "smartcity", *command.split()], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            # The broker's depends_on: the sync's health check passes.
            check = SERVICES["broker-auth"]["healthcheck"]["test"][1].replace(
                "/var/lib/smartcity/broker", str(auth))
            wait_until(lambda: subprocess.run(["sh", "-c", check], check=False).returncode == 0,
                       timeout=20, message="the sync's files")
            broker = ComposeMosquitto(directory / "broker", free_port(), auth)
            broker.start()
            try:
                wait_until(broker.pid_file.exists, message="the broker's pid file")
                yield ComposeBroker(broker, auth, passwords)
            finally:
                broker.stop()
        finally:
            sync.terminate()
            assert sync.wait(10) == 0, (directory / "sync.log").read_text()


def test_the_compose_broker_lets_in_the_registry_and_no_one_else(compose_broker: ComposeBroker) -> None:
    port, passwords = compose_broker.broker.port, compose_broker.passwords
    for login in ("river-compose-a", "smartcity-ingest-1", "smartcity-api-1", "smartcity-monitor-1"):
        session = open_session(port, login, passwords[login])
        assert not session.connack[0].is_failure, login
        session.close()
    for user, password in ((None, None), ("river-compose-a", "wrong-password"),
                           ("smartcity-ingest-1", passwords["smartcity-api-1"]),
                           ("someone", passwords["river-compose-a"])):
        session = open_session(port, user, password)
        assert session.connack[0].is_failure, user
        assert session.connack[0].getName() in ("Not authorized", "Bad user name or password"), user
        session.close()


def test_the_compose_health_checks_log_in_as_the_monitor(compose_broker: ComposeBroker) -> None:
    port, passwords = compose_broker.broker.port, compose_broker.passwords
    check = unescape_dollars(SERVICES["mosquitto"]["healthcheck"]["test"][1]).replace(
        "-h 127.0.0.1", f"-h 127.0.0.1 -p {port}")
    env = {"PATH": os.environ["PATH"], "MQTT_MONITOR_PASSWORD": passwords["smartcity-monitor-1"]}
    healthy = subprocess.run(["sh", "-c", check], env=env, capture_output=True, text=True, timeout=30,
                             check=False)
    assert healthy.returncode == 0, healthy.stderr
    wrong = subprocess.run(["sh", "-c", check], env={**env, "MQTT_MONITOR_PASSWORD": "not-the-password"},
                           capture_output=True, text=True, timeout=30, check=False)
    assert wrong.returncode != 0
    # The simulator's check: a device's retained `online`, read by the monitor account.
    device = open_session(port, "river-compose-b", passwords["river-compose-b"])
    assert not device.publish(status_topic("river-compose-b"), b"online", retain=True).is_failure
    device.close()
    url = interpolate(SERVICES["simulator"]["environment"]["HEALTHCHECK_MQTT_URL"], SECRETS).replace(
        "@mosquitto:1883", f"@127.0.0.1:{port}")
    fleet = run_healthcheck("fleet-online", "--url-env", "HEALTHCHECK_MQTT_URL",
                         env={"HEALTHCHECK_MQTT_URL": url})
    assert fleet.returncode == 0, fleet.stderr
    refused = run_healthcheck("fleet-online", "--url-env", "HEALTHCHECK_MQTT_URL",
                           env={"HEALTHCHECK_MQTT_URL": url.replace(SECRETS["PASER_MQTT_MONITOR_PASSWORD"],
                                                                    "wrong-password")})
    assert refused.returncode == 1 and "refused the login" in refused.stderr


def test_a_compose_device_cannot_publish_as_another(compose_broker: ComposeBroker) -> None:
    port, passwords = compose_broker.broker.port, compose_broker.passwords
    ingest = open_session(port, "smartcity-ingest-1", passwords["smartcity-ingest-1"])
    ingest.subscribe("smartcity/v1/devices/+/telemetry")
    device = open_session(port, "river-compose-a", passwords["river-compose-a"])
    try:
        assert device.publish("smartcity/v1/devices/river-compose-b/telemetry", b"{}") == NOT_AUTHORIZED
        assert not device.publish("smartcity/v1/devices/river-compose-a/telemetry", b"{}").is_failure
        wait_until(lambda: ingest.topics(), message="ingest received the device's own reading")
        assert ingest.topics() == ["smartcity/v1/devices/river-compose-a/telemetry"]
        # The broker binds the client id to the login: the device cannot take ingest's session.
        thief = open_session(port, "river-compose-a", passwords["river-compose-a"],
                             client_id="smartcity-ingest-1", clean_start=False)
        # A message after the attempt still reaches ingest's session: it was never taken over. (The
        # thief's client id is its login, so it took over the device's own connection instead.)
        assert not thief.publish("smartcity/v1/devices/river-compose-a/telemetry", b"{}").is_failure
        wait_until(lambda: len(ingest.topics()) == 2, message="ingest still receiving")
        assert not ingest.disconnects and not thief.connack[0].is_failure
        thief.close()
    finally:
        device.close()
        ingest.close()


def test_a_revoke_through_the_registry_cuts_the_device_off(compose_broker: ComposeBroker,
                                                           db: psycopg.Connection) -> None:
    port, passwords = compose_broker.broker.port, compose_broker.passwords
    device = open_session(port, "river-compose-a", passwords["river-compose-a"])
    other = open_session(port, "river-compose-b", passwords["river-compose-b"])
    try:
        revoke_device(db, "river-compose-a")
        # The sync hears the registry, rewrites the files and signals the pid in the pid file.
        wait_until(lambda: device.disconnects, timeout=10, message="the revoked device disconnected")
        again = open_session(port, "river-compose-a", passwords["river-compose-a"])
        assert again.connack[0].is_failure
        again.close()
        assert not other.disconnects  # the others stay connected
        assert "river-compose-a:" not in (compose_broker.auth / PASSWORD_FILE).read_text()
    finally:
        device.close()
        other.close()
