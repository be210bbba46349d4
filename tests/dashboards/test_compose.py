"""docker-compose.yml, read as compose reads it (no Docker engine here): every file it names exists,
every image is pinned, every long-running service has a health check and a restart policy, no
password has a default, every service logs in with its own account, Grafana's mounts match its
provisioning, and the broker reads the files the sync writes. tests/dashboards/test_compose_broker.py
runs its broker on a real Mosquitto; test_healthcheck.py runs the containers' health-check script."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from api import create_app
from dashboards.folder import FOLDER_TITLE
from smartcity.broker.authfiles import ACL_FILE, PASSWORD_FILE
from smartcity.broker.roles import Role
from smartcity.db.connect import service_database_url
from smartcity.db.roles import LOGIN_ROLES
from smartcity.settings import AlertsSettings, ApiSettings, IngestSettings, RollupSettings, Settings
from tests.dashboards.compose_file import (
    BROKER_ACCOUNTS,
    COMPOSE,
    COMPOSE_TEXT,
    LONG_RUNNING,
    MQTT_SECRETS,
    ONE_SHOT,
    ROOT,
    SECRETS,
    SERVICES,
    bind_mounts,
    interpolate,
    volume_mounts,
)

PROVIDER = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/smartcity.yml").read_text())


def test_the_platform_and_grafana_are_all_there() -> None:
    assert {"timescaledb", "mosquitto", "broker-auth", "migrate", "db-logins", "broker-accounts",
            "ingest", "rollup", "api", "simulator", "grafana"} <= set(SERVICES)
    assert {"migrate", "db-logins", "broker-accounts"} == ONE_SHOT


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_file_a_service_names_exists(name: str) -> None:
    service = SERVICES[name]
    for source, _, _ in bind_mounts(service):
        assert source.exists(), f"{name} mounts {source}, which does not exist"
    if "build" in service:
        assert (ROOT / service["build"] / "Dockerfile").is_file()
    # An entrypoint script is run from a mount: the mount must bring it.
    mounted = {target: source for source, target, _ in bind_mounts(service)}
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
    for name in ("ingest", "rollup", "alerts", "api", "simulator"):
        depends = SERVICES[name]["depends_on"]
        assert depends["timescaledb"]["condition"] == "service_healthy"
        assert depends["mosquitto"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    # Grafana, ingest and the API log in through the logins the one-shot job makes.
    for name in ("grafana", "ingest", "api", "alerts"):
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
    alert_metrics = (ROOT / "smartcity/alerts/metrics.py").read_text()
    metric = re.search(r"(smartcity_\w+)", checks["alerts"])
    assert metric is not None and f'"{metric.group(1)}"' in alert_metrics, checks["alerts"]
    assert f":{AlertsSettings().metrics_port}/" in checks["alerts"]


def test_no_password_has_a_default() -> None:
    references = re.findall(r"\$\{(PASER_\w+)(:?[?-])?([^}]*)\}", COMPOSE_TEXT)
    passwords = [r for r in references if "PASSWORD" in r[0] or "SECRET" in r[0]]
    assert {name for name, *_ in passwords} == {
        "PASER_DB_PASSWORD", "PASER_GRAFANA_DB_PASSWORD", "PASER_INGEST_DB_PASSWORD",
        "PASER_API_DB_PASSWORD", "PASER_MQTT_INGEST_PASSWORD", "PASER_MQTT_API_PASSWORD",
        "PASER_MQTT_MONITOR_PASSWORD", "PASER_FLEET_SECRET", "PASER_GRAFANA_ADMIN_PASSWORD",
        "PASER_ALERTS_DB_PASSWORD", "PASER_MQTT_ALERTS_PASSWORD"}
    # Every PASER_ variable is a secret: nothing else is read from outside.
    assert len(passwords) == len(references)
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
    binds = {target: (source, ro) for source, target, ro in bind_mounts(grafana)}
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


def _settings_of(name: str) -> Settings:
    """The settings the service's container reads: its environment, interpolated."""
    env = {key: interpolate(str(value), SECRETS) for key, value in SERVICES[name]["environment"].items()
           if key.startswith("SMARTCITY_")}
    settings_env = {key.removeprefix("SMARTCITY_").lower(): value for key, value in env.items()}
    nested: dict[str, Any] = {}
    for key, value in settings_env.items():
        section, _, field = key.partition("__")
        if field:
            nested.setdefault(section, {})[field] = value
        else:
            nested[key] = value
    return Settings(_env_file=None, **nested)


def test_ingest_the_api_and_alerts_connect_through_their_own_logins_and_the_rest_as_owner() -> None:
    logins = SERVICES["db-logins"]["environment"]
    for service in ("ingest", "api", "alerts"):
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
    for name in ("migrate", "rollup", "simulator", "broker-accounts", "broker-auth"):
        settings = _settings_of(name)
        assert settings.ingest.database_url is None and settings.api.database_url is None
        assert settings.alerts.database_url is None
        assert settings.database_url == "postgresql://smartcity:owner-pw@timescaledb:5432/smartcity"
    # The job logs in as the owner the database image creates.
    assert logins["PGUSER"] == SERVICES["timescaledb"]["environment"]["POSTGRES_USER"]


def test_the_accounts_job_makes_one_account_per_service_from_its_secret() -> None:
    script = (ROOT / "docker/broker-accounts.sh").read_text()
    made = re.findall(r"^smartcity broker accounts add (\S+) --role (\S+) --password-env (\S+)$", script,
                      re.MULTILINE)
    assert {name: (role, env) for name, role, env in made} == BROKER_ACCOUNTS
    assert {role for role, _ in BROKER_ACCOUNTS.values()} <= {role.value for role in Role}
    job = SERVICES["broker-accounts"]
    for secret in MQTT_SECRETS:
        assert job["environment"][secret] == f"${{{secret}:?set {secret}}}"
    # The registry's accounts table is the owner's alone (migration 013).
    assert job["environment"]["SMARTCITY_DATABASE_URL"].startswith("postgresql://smartcity:")
    assert job["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_every_service_logs_in_to_the_broker_as_its_own_account() -> None:
    for name in ("migrate", "broker-accounts", "broker-auth", "ingest", "rollup", "api", "simulator"):
        # Where the broker is, without a login: nothing logs in with a shared account.
        assert _settings_of(name).mqtt_url in (None, "mqtt://mosquitto:1883"), name
    for service, account in (("ingest", "smartcity-ingest-1"), ("api", "smartcity-api-1"),
                             ("alerts", "smartcity-alerts-1")):
        address = _settings_of(service).service_broker(service)
        _, secret = BROKER_ACCOUNTS[account]
        assert (address.username, address.password) == (account, SECRETS[secret]), service
        assert (address.host, address.port) == ("mosquitto", 1883)
        # No other account's password is in the container.
        others = MQTT_SECRETS - {secret}
        assert not any(other in yaml.safe_dump(SERVICES[service]) for other in others), service
    simulator = SERVICES["simulator"]["environment"]
    assert simulator["SMARTCITY_SIMULATOR__FLEET_SECRET"] == "${PASER_FLEET_SECRET:?set PASER_FLEET_SECRET}"
    assert SERVICES["simulator"]["command"] == ["simulate", "--demo", "--register"]
    # Its health check reads the devices' status as the monitor account.
    check = SERVICES["simulator"]["healthcheck"]["test"]
    assert check[-3:] == ["fleet-online", "--url-env", "HEALTHCHECK_MQTT_URL"]
    monitor = urlsplit(interpolate(simulator["HEALTHCHECK_MQTT_URL"], SECRETS))
    assert (monitor.username, monitor.password, monitor.hostname) == (
        "smartcity-monitor-1", SECRETS["PASER_MQTT_MONITOR_PASSWORD"], "mosquitto")
    broker_check = " ".join(SERVICES["mosquitto"]["healthcheck"]["test"])
    assert "-u smartcity-monitor-1" in broker_check and "$$MQTT_MONITOR_PASSWORD" in broker_check
    assert SERVICES["mosquitto"]["environment"]["MQTT_MONITOR_PASSWORD"] == (
        "${PASER_MQTT_MONITOR_PASSWORD:?set PASER_MQTT_MONITOR_PASSWORD}")
    for name in ("ingest", "api", "alerts", "simulator"):
        assert SERVICES[name]["depends_on"]["broker-accounts"] == {
            "condition": "service_completed_successfully"}, name


def _dependencies(name: str) -> set[str]:
    """What compose starts before ``name``: depends_on, plus the services whose namespaces it joins
    (compose adds those itself)."""
    service = SERVICES[name]
    found = set(service.get("depends_on", {}))
    for key in ("pid", "network_mode", "ipc"):
        if str(service.get(key, "")).startswith("service:"):
            found.add(service[key].removeprefix("service:"))
    return found


def test_services_start_in_an_order_compose_can_follow() -> None:
    # A cycle (e.g. the sync joining the broker's PID namespace while the broker waits for the
    # sync's files) makes compose refuse the whole file.
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        assert name not in visiting, f"dependency cycle through {name}"
        if name in order:
            return
        visiting.add(name)
        for dependency in sorted(_dependencies(name)):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in SERVICES:
        visit(name)
    assert order.index("broker-accounts") < order.index("broker-auth") < order.index("mosquitto")
    assert order.index("mosquitto") < min(order.index(n) for n in ("ingest", "api", "simulator"))


def _conf_value(key: str) -> str:
    match = re.search(rf"^{key} (\S+)$", (ROOT / "docker/mosquitto.conf").read_text(), re.MULTILINE)
    assert match is not None, f"docker/mosquitto.conf has no {key}"
    return match.group(1)


def test_the_broker_reads_the_files_the_sync_writes_and_is_signalled_by_it() -> None:
    broker, sync = SERVICES["mosquitto"], SERVICES["broker-auth"]
    conf = (ROOT / "docker/mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.MULTILINE)
    # A listener option: right under the one listener.
    assert re.search(r"^listener 1883\n(#.*\n)*use_username_as_clientid true$", conf, re.MULTILINE)
    # The broker joins the sync's PID namespace (not the other way round: compose starts a service
    # after the one whose namespace it joins, and the broker must wait for the files).
    assert broker["pid"] == "service:broker-auth" and "pid" not in sync
    assert broker["depends_on"]["broker-auth"] == {"condition": "service_healthy"}
    command = sync["command"]
    assert command[:2] == ["broker", "sync"] and "--watch" in command
    directory = PurePosixPath(command[command.index("--dir") + 1])
    pid_file = PurePosixPath(command[command.index("--pid-file") + 1])
    # One volume: the sync's --dir is the broker's /mosquitto/auth.
    sync_mount = {target: source for source, target, _ in volume_mounts(sync)}
    broker_mount = {target: source for source, target, _ in volume_mounts(broker)}
    assert sync_mount[str(directory)] == "broker-auth" == broker_mount["/mosquitto/auth"]
    assert "broker-auth" in COMPOSE["volumes"]

    def as_sync_sees(path: str) -> PurePosixPath:
        return directory / PurePosixPath(path).relative_to("/mosquitto/auth")

    assert as_sync_sees(_conf_value("password_file")) == directory / PASSWORD_FILE
    assert as_sync_sees(_conf_value("acl_file")) == directory / ACL_FILE
    assert as_sync_sees(_conf_value("pid_file")) == pid_file
    # Healthy (and the broker started) only once both files exist.
    check = " ".join(sync["healthcheck"]["test"])
    assert f"test -f {directory / PASSWORD_FILE}" in check and f"test -f {directory / ACL_FILE}" in check
    # The sync runs as the broker's user (eclipse-mosquitto's uid 1883): a signal to another user's
    # process would be refused without CAP_KILL, and the files it writes are 0600.
    assert sync["user"] == "1883:1883"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--uid 1883" in dockerfile and f"install -d -o 1883 -g 1883 -m 0700 {directory}" in dockerfile
    assert broker["entrypoint"][0] == "/usr/sbin/mosquitto"
