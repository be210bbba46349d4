"""docker-compose.yml, read as compose reads it (no Docker engine here): every file it names exists,
every image is pinned, every long-running service has a health check and a restart policy, no
password has a default, Grafana's mounts match its provisioning. Its broker configuration and
entrypoint run on a real Mosquitto: logins only."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest
import yaml
from pytest_httpserver import HTTPServer

from api import create_app
from dashboards.folder import FOLDER_TITLE
from smartcity.contract import status_topic
from smartcity.db.connect import service_database_url
from smartcity.db.roles import LOGIN_ROLES
from smartcity.services import EmbeddedMosquitto, free_port
from smartcity.settings import ApiSettings, IngestSettings, RollupSettings, Settings
from tests.logins import BrokerLogins, login_url
from tests.services import scratch_dir

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ONE_SHOT = {name for name, service in SERVICES.items() if service.get("restart") == "no"}
LONG_RUNNING = sorted(set(SERVICES) - ONE_SHOT)
PROVIDER = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/smartcity.yml").read_text())


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((volume["source"], volume["target"], bool(volume.get("read_only"))))
        else:
            source, target, *mode = volume.split(":")
            mounts.append((source, target, mode == ["ro"]))
    return mounts


def _binds(service: dict[str, Any]) -> list[tuple[Path, str, bool]]:
    return [(ROOT / source, target, ro) for source, target, ro in _mounts(service) if source.startswith(".")]


def test_the_platform_and_grafana_are_all_there() -> None:
    assert {"timescaledb", "mosquitto", "migrate", "db-logins", "ingest", "rollup", "api",
            "simulator", "grafana"} <= set(SERVICES)
    assert {"migrate", "db-logins"} == ONE_SHOT


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_file_a_service_names_exists(name: str) -> None:
    service = SERVICES[name]
    for source, _, _ in _binds(service):
        assert source.exists(), f"{name} mounts {source}, which does not exist"
    if "build" in service:
        assert (ROOT / service["build"] / "Dockerfile").is_file()
    # An entrypoint script is run from a mount: the mount must bring it.
    mounted = {target: source for source, target, _ in _binds(service)}
    for word in service.get("entrypoint", []):
        if word.startswith("/docker/"):
            assert word in mounted and mounted[word].is_file(), f"{name}: {word} is not mounted"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.partition("@")[0].rpartition(":")
    assert "@sha256:" in image or (repository and tag and tag != "latest"), image
    if "build" in SERVICES[name]:  # the project's own image carries the project's version
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        assert tag == version


def test_the_dockerfile_base_is_pinned_and_brings_the_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    copied = re.findall(r"^COPY\s+(\S+)\s", dockerfile, re.MULTILINE)
    for source in copied:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
    assert "docker/healthcheck.py" in copied


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_services_have_a_health_check_and_restart(name: str) -> None:
    service = SERVICES[name]
    assert service["restart"] in ("unless-stopped", "always"), name
    check = service.get("healthcheck")
    assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"
    assert check["test"][0] in ("CMD", "CMD-SHELL")


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_one_shot_services_are_waited_for_to_complete(name: str) -> None:
    # A health check means nothing for a job that exits; what others wait for is its success.
    waiting = [other for other, service in SERVICES.items()
               if service.get("depends_on", {}).get(name, {}).get("condition")
               == "service_completed_successfully"]
    assert waiting, f"nothing waits for {name} to complete"


def test_services_wait_for_healthy_dependencies() -> None:
    for name in ("ingest", "rollup", "api", "simulator"):
        depends = SERVICES[name]["depends_on"]
        assert depends["timescaledb"]["condition"] == "service_healthy"
        assert depends["mosquitto"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    # Grafana, ingest and the API log in through the logins the one-shot job makes.
    for name in ("grafana", "ingest", "api"):
        login = SERVICES[name]["depends_on"]["db-logins"]
        assert login["condition"] == "service_completed_successfully", name


def test_health_checks_name_what_the_services_serve() -> None:
    checks = {name: " ".join(SERVICES[name]["healthcheck"]["test"]) for name in LONG_RUNNING}
    health = re.search(r"http://127\.0\.0\.1:(\d+)(/\S+)", checks["api"])
    assert health is not None and int(health.group(1)) == ApiSettings().port
    app = create_app(Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    assert health.group(2) == "/api/v1/health" and health.group(2) in app.openapi()["paths"]
    metrics = (ROOT / "ingest/metrics.py").read_text()
    for name in ("ingest", "rollup"):
        metric = re.search(r"(smartcity_\w+)", checks[name])
        assert metric is not None and f'"{metric.group(1)}"' in metrics, checks[name]
    assert f":{IngestSettings().metrics_port}/" in checks["ingest"]
    assert f":{RollupSettings().metrics_port}/" in checks["rollup"]


def test_no_password_has_a_default() -> None:
    references = re.findall(r"\$\{(PASER_\w+)(:?[?-])?([^}]*)\}", COMPOSE_TEXT)
    passwords = [r for r in references if "PASSWORD" in r[0]]
    assert {name for name, *_ in passwords} == {"PASER_DB_PASSWORD", "PASER_GRAFANA_DB_PASSWORD",
                                                "PASER_INGEST_DB_PASSWORD", "PASER_API_DB_PASSWORD",
                                                "PASER_MQTT_PASSWORD", "PASER_GRAFANA_ADMIN_PASSWORD"}
    # ${NAME:?message}: compose refuses to start while NAME is unset or empty.
    assert all(operator == ":?" and message for _, operator, message in passwords), passwords
    assert "change-me" not in COMPOSE_TEXT


def test_grafana_is_pinned_anonymous_viewer_and_provisioned_read_only() -> None:
    grafana = SERVICES["grafana"]
    repository, tag = grafana["image"].split(":")
    assert repository == "grafana/grafana-oss"
    assert tuple(int(part) for part in tag.split(".")) >= (12, 0, 2)
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    binds = {target: (source, ro) for source, target, ro in _binds(grafana)}
    assert binds["/etc/grafana/provisioning"] == (ROOT / "dashboards/provisioning", True)
    # The dashboards JSON sits in a directory under the provider's path, named as the folder.
    provider = PROVIDER["providers"][0]["options"]
    json_target = PurePosixPath(provider["path"]) / FOLDER_TITLE
    assert binds[str(json_target)] == (ROOT / "dashboards/json", True)
    # The data source file reads the login's password from Grafana's environment.
    datasource = (ROOT / "dashboards/provisioning/datasources/timescaledb.yml").read_text()
    assert "$GRAFANA_DB_PASSWORD" in datasource and "GRAFANA_DB_PASSWORD" in env


def test_the_database_image_is_the_provisioned_postgres_version() -> None:
    from dashboards.provision import POSTGRES_VERSION
    tag = SERVICES["timescaledb"]["image"].split(":")[1]
    major = re.search(r"-pg(\d+)$", tag)
    assert major is not None and int(major.group(1)) * 100 == POSTGRES_VERSION
    assert SERVICES["db-logins"]["image"] == SERVICES["timescaledb"]["image"]


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Put in ``${NAME:?message}`` references as compose does (every one of them must be given)."""
    return re.sub(r"\$\{(\w+):\?[^}]*\}", lambda m: variables[m.group(1)], value)


SECRETS = {"PASER_DB_PASSWORD": "owner-pw", "PASER_INGEST_DB_PASSWORD": "ingest-pw",
           "PASER_API_DB_PASSWORD": "api-pw", "PASER_MQTT_PASSWORD": "mqtt-pw"}


def _settings_of(name: str) -> Settings:
    """The settings the service's container reads: its environment, interpolated."""
    env = {key: _interpolate(str(value), SECRETS) for key, value in SERVICES[name]["environment"].items()}
    settings_env = {key.removeprefix("SMARTCITY_").lower(): value for key, value in env.items()}
    nested: dict[str, Any] = {}
    for key, value in settings_env.items():
        section, _, field = key.partition("__")
        if field:
            nested.setdefault(section, {})[field] = value
        else:
            nested[key] = value
    return Settings(_env_file=None, **nested)


def test_ingest_and_the_api_connect_through_their_own_logins_and_the_rest_as_owner() -> None:
    logins = SERVICES["db-logins"]["environment"]
    for service in ("ingest", "api"):
        # The owner's password is not in their containers at all.
        assert "PASER_DB_PASSWORD" not in yaml.safe_dump(SERVICES[service])
        assert "SMARTCITY_DATABASE_URL" not in SERVICES[service]["environment"]
        url = urlsplit(service_database_url(_settings_of(service), service))
        # The login the one-shot job makes, with the password it sets; the names `smartcity up` uses.
        assert url.username == logins[f"{service.upper()}_DB_USER"] == LOGIN_ROLES[service]
        assert url.password == SECRETS[f"PASER_{service.upper()}_DB_PASSWORD"]
        assert logins[f"{service.upper()}_DB_PASSWORD"] == (
            f"${{PASER_{service.upper()}_DB_PASSWORD:?set PASER_{service.upper()}_DB_PASSWORD}}")
        assert (url.hostname, url.port, url.path) == ("timescaledb", 5432, "/smartcity")
    for name in ("migrate", "rollup", "simulator"):
        settings = _settings_of(name)
        assert settings.ingest.database_url is None and settings.api.database_url is None
        assert settings.database_url == "postgresql://smartcity:owner-pw@timescaledb:5432/smartcity"
    # The job logs in as the owner the database image creates.
    assert logins["PGUSER"] == SERVICES["timescaledb"]["environment"]["POSTGRES_USER"]


class ComposeMosquitto(EmbeddedMosquitto):
    """Mosquitto running docker/mosquitto.conf as compose mounts it, paths moved into ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, password: str) -> None:
        super().__init__(data_dir, port)
        self.password = password

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf_d = self.data_dir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        shutil.copy(ROOT / "smartcity/mosquitto.conf", conf_d / "platform.conf")
        passwords = self.data_dir / "passwords"
        # The compose entrypoint itself writes the password file (its exec runs `true` here).
        env = {"PATH": os.environ["PATH"], "MQTT_PASSWORD": self.password,
               "MQTT_PASSWORD_FILE": str(passwords)}
        subprocess.run(["sh", str(ROOT / "docker/mosquitto-entrypoint.sh"), "true"], env=env, check=True,
                       capture_output=True, timeout=30)
        text = (ROOT / "docker/mosquitto.conf").read_text()
        text = (text.replace("listener 1883", f"listener {self.port} 127.0.0.1")
                    .replace("/mosquitto/config/conf.d", str(conf_d))
                    .replace("/mosquitto/data/passwords", str(passwords))
                    .replace("/mosquitto/data/", f"{self.data_dir}/"))
        assert "/mosquitto/" not in text, text
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.config_file.write_text(f"user {user}\n{text}")


@pytest.fixture
def compose_broker() -> Iterator[ComposeMosquitto]:
    with scratch_dir("smartcity-compose-mqtt-") as directory:
        broker = ComposeMosquitto(directory, free_port(), "s3cret-Pass_word")
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def _connect(port: int, user: str | None, password: str | None) -> mqtt.ReasonCode:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    if user is not None:
        client.username_pw_set(user, password)
    answers: list[mqtt.ReasonCode] = []
    client.on_connect = lambda c, u, flags, reason, props: answers.append(reason)
    client.connect("127.0.0.1", port)
    try:
        while not answers:
            client.loop(timeout=0.1)  # waits on the socket, not a sleep: CONNACK ends it
    finally:
        client.disconnect()
    return answers[0]


def test_the_compose_broker_takes_logins_only(compose_broker: ComposeMosquitto) -> None:
    port = compose_broker.port
    assert _connect(port, "smartcity", "s3cret-Pass_word").is_failure is False
    for user, password in ((None, None), ("smartcity", "wrong"), ("someone", "s3cret-Pass_word")):
        reason = _connect(port, user, password)
        assert reason.is_failure and reason.getName() in ("Not authorized", "Bad user name or password"), user


def test_the_broker_entrypoint_refuses_without_a_password(tmp_path: Path) -> None:
    result = subprocess.run(["sh", str(ROOT / "docker/mosquitto-entrypoint.sh"), "true"],
                            env={"PATH": os.environ["PATH"], "MQTT_PASSWORD_FILE": str(tmp_path / "p")},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0 and "set MQTT_PASSWORD" in result.stderr
    assert not (tmp_path / "p").exists()


def _healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run docker/healthcheck.py as the containers do: a plain script, its exit status the verdict."""
    return subprocess.run([sys.executable, str(ROOT / "docker/healthcheck.py"), *args], capture_output=True,
                          text=True, timeout=30, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_the_http_check_wants_2xx(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ok").respond_with_json({"status": "ok"})
    httpserver.expect_request("/down").respond_with_json({"status": "degraded"}, status=503)
    assert _healthcheck("http", httpserver.url_for("/ok")).returncode == 0
    down = _healthcheck("http", httpserver.url_for("/down"))
    assert down.returncode == 1 and "answered 503" in down.stderr


@pytest.mark.parametrize(("value", "bounds", "healthy"), [
    ("1.0", ("--min", "1"), True), ("0.0", ("--min", "1"), False),
    ("12.5", ("--max", "600"), True), ("601.0", ("--max", "600"), False)])
def test_the_metric_check_reads_a_prometheus_sample(httpserver: HTTPServer, value: str,
                                                    bounds: tuple[str, str], healthy: bool) -> None:
    text = ("# HELP smartcity_x_total other\nsmartcity_x_total 0.0\n"
            f"# TYPE smartcity_y gauge\nsmartcity_y {value}\n")
    httpserver.expect_request("/metrics").respond_with_data(text, content_type="text/plain")
    result = _healthcheck("metric", httpserver.url_for("/metrics"), "smartcity_y", *bounds)
    assert (result.returncode == 0) is healthy, result.stderr
    missing = _healthcheck("metric", httpserver.url_for("/metrics"), "smartcity_absent", "--min", "0")
    assert missing.returncode == 1 and "no sample smartcity_absent" in missing.stderr


@pytest.mark.slow  # each unhealthy answer waits out the check's 5 s for a retained `online`
def test_the_fleet_check_wants_a_device_online(fresh_mosquitto: EmbeddedMosquitto,
                                               broker_login: BrokerLogins) -> None:
    monitor, gateway = broker_login("monitor", fresh_mosquitto), broker_login("gateway", fresh_mosquitto)
    env = {"SMARTCITY_MQTT_URL": login_url(monitor)}
    auth = {"username": str(gateway.username), "password": str(gateway.password)}
    nobody = _healthcheck("fleet-online", env=env)
    assert nobody.returncode == 1 and "no device's retained status is online" in nobody.stderr
    publish.single(status_topic("sim-health-01"), "online", qos=1, retain=True,
                   hostname="127.0.0.1", port=fresh_mosquitto.port, auth=auth)
    assert _healthcheck("fleet-online", env=env).returncode == 0
    # Its Last Will (or a clean stop) turns the status offline: unhealthy again.
    publish.single(status_topic("sim-health-01"), "offline", qos=1, retain=True,
                   hostname="127.0.0.1", port=fresh_mosquitto.port, auth=auth)
    assert _healthcheck("fleet-online", env=env).returncode == 1
