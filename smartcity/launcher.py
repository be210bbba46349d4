"""`smartcity up`: the whole platform on one machine, embedded services unless URLs are given.

Starts (when no URL is configured) a private PostgreSQL+TimescaleDB and Mosquitto under the data
directory, migrates, registers the demo fleet, then runs ingest, the rollup refresher, the API and
the simulated fleet as child processes of this one. It supervises them, and the embedded broker,
the way systemd's ``Restart=`` and ``StartLimitBurst=`` do (``smartcity.supervisor``): one that dies
is restarted after a backoff while the rest stays up; a crash loop stops the platform with status 1. A stop
request (Ctrl-C, SIGTERM) stops everything in order: simulator, ingest (which flushes and acks),
rollup refresher, API, broker, database.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from smartcity.apikeys import Scope, create_key, is_active
from smartcity.broker.accounts import ensure_account
from smartcity.broker.roles import Role
from smartcity.broker.serve import serve_broker_auth
from smartcity.credentials import ensure_secret_file, generate_password, write_secret_file
from smartcity.db import apply_migrations, seed_catalog
from smartcity.db.connect import connect, database_url, embedded_postgres_dir
from smartcity.db.roles import Service, set_up_service_logins
from smartcity.devices import DeviceExists, register_device, set_device_passwords
from smartcity.logs import redact_url
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, mosquitto_tls
from smartcity.settings import Settings
from smartcity.supervisor import BrokerProcess, ChildProcess, CrashLoop, Supervised, Supervisor

__all__ = ["SERVICE_ACCOUNTS", "ensure_operator_key", "fleet_secret", "migrate_database", "register_fleet",
           "run_platform", "service_login_environment", "set_up_broker_logins"]

if TYPE_CHECKING:
    from simulators.fleet import DeviceSpec

log = logging.getLogger(__name__)


def migrate_database(url: str) -> list[int]:
    """Apply pending migrations and seed the catalogue; return the versions applied now."""
    with connect(url, purpose="migrate") as conn:
        applied = apply_migrations(conn)
        seed_catalog(conn)
    return applied


def register_fleet(url: str, specs: Sequence[DeviceSpec]) -> int:
    """Register each device of ``specs`` that is not registered yet; return how many were new.

    A spec that carries a password makes its device log in with it, whether it is new or was
    registered before (with another password, or before the fleet had a secret).
    """
    added = 0
    with connect(url, purpose="register", autocommit=True) as conn:
        for spec in specs:
            try:
                register_device(conn, spec.device_id, spec.kind, spec.site_id,
                                spec.latitude, spec.longitude, password=spec.mqtt_password)
                added += 1
            except DeviceExists:
                pass
        set_device_passwords(conn, {spec.device_id: spec.mqtt_password for spec in specs
                                    if spec.mqtt_password is not None})
    return added


def ensure_operator_key(url: str, path: Path) -> bool:
    """Keep an active admin API key in ``path`` (mode 0600) for the local operator; return whether
    a new one was created (none was there, or it was revoked)."""
    with connect(url, purpose="register", autocommit=True) as conn:
        if path.exists() and is_active(conn, path.read_text().strip()):
            return False
        key = create_key(conn, Scope.ADMIN, "operator (smartcity up)").key
    write_secret_file(path, key + "\n")
    return True


def fleet_secret(settings: Settings) -> bytes | None:
    """Return the simulated fleet's secret: the setting, else (embedded broker) the one kept in the
    data directory, else None: the devices log in with the broker URL's login."""
    if settings.simulator.fleet_secret is not None:
        return settings.simulator.fleet_secret.get_secret_value().encode()
    if settings.uses_embedded_broker:
        return ensure_secret_file(settings.embedded.data_dir / "fleet-secret")
    return None


def service_login_environment(settings: Settings, service_urls: Mapping[Service, str]) -> dict[str, str]:
    """Return the variables that hand each child service its own login in ``service_urls``
    (``SMARTCITY_INGEST__DATABASE_URL`` …), except where the settings name one already."""
    return {f"SMARTCITY_{service.upper()}__DATABASE_URL": service_url
            for service, service_url in service_urls.items()
            if getattr(settings, service).database_url is None}


# The platform's own broker logins on the embedded broker: one per process, since the broker binds
# client ids to logins. The simulator's devices log in as themselves (fleet secret).
SERVICE_ACCOUNTS: dict[Service, tuple[str, Role]] = {
    "ingest": ("smartcity-ingest-1", Role.INGEST),
    "api": ("smartcity-api-1", Role.API),
    "alerts": ("smartcity-alerts-1", Role.ALERTS),
}


def set_up_broker_logins(url: str, port: int) -> dict[str, str]:
    """Give ingest, the API and the alert evaluator broker accounts of their own, with new passwords
    on every start; return the variables that hand each child its login (``SMARTCITY_INGEST__MQTT_URL`` …)."""
    env = {}
    with connect(url, purpose="register", autocommit=True) as conn:
        for service, (username, role) in SERVICE_ACCOUNTS.items():
            password = generate_password()
            ensure_account(conn, username, role.value, password)
            env[f"SMARTCITY_{service.upper()}__MQTT_URL"] = (
                f"mqtt://{quote(username, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}")
    return env


def _start_postgres(settings: Settings, stack: ExitStack) -> None:
    """Start the embedded database; ``stack`` stops it."""
    postgres = EmbeddedPostgres(embedded_postgres_dir(settings), settings.embedded.postgres_port,
                                settings.embedded.postgres_bin_dir)
    if postgres.is_running():
        log.warning("embedded postgres in %s was left running; restarting it", postgres.data_dir)
        postgres.stop()
    postgres.start()
    stack.callback(postgres.stop)


def _start_broker(settings: Settings, url: str, stack: ExitStack) -> EmbeddedMosquitto:
    """Start the embedded broker with logins only, its files rendered from the registry in ``url``
    and kept in step by a sync thread; ``stack`` stops both."""
    embedded = settings.embedded
    broker = EmbeddedMosquitto(
        embedded.data_dir / "mosquitto", embedded.mqtt_port, embedded.mosquitto_bin,
        embedded.mosquitto_autosave_interval, embedded.mosquitto_autosave_on_changes,
        tls=mosquitto_tls(embedded.mqtt_tls_port, embedded.mqtt_tls_certfile, embedded.mqtt_tls_keyfile,
                          embedded.mqtt_tls_cafile, embedded.mqtt_tls_host))
    broker.use_auth_in_home()
    stack.enter_context(serve_broker_auth(url, broker))  # the files first, then the sync thread
    broker.start()
    stack.callback(broker.stop)
    return broker


def run_platform(settings: Settings, stop: threading.Event) -> int:
    """Run the whole platform until ``stop`` is set or a child crash-loops; return an exit status."""
    with ExitStack() as stack:
        if settings.uses_embedded_database:
            _start_postgres(settings, stack)
        url = database_url(settings)
        applied = migrate_database(url)
        log.info("database ready (migrations applied now: %s)", applied or "none")
        env = {**os.environ, **_prepare_registry(settings, url)}
        broker = None
        if settings.uses_embedded_broker:
            # Logins only, from the registry: the devices' own (the demo fleet registered above)
            # and an account per service, with new passwords on every start.
            env.update(set_up_broker_logins(url, settings.embedded.mqtt_port))
            broker = _start_broker(settings, url, stack)
            log.info("broker logins: the registry's devices and %s (client ids bound to logins)",
                     ", ".join(username for username, _ in SERVICE_ACCOUNTS.values()))
        return _supervise(settings, env, broker, url, stop)


def _prepare_registry(settings: Settings, url: str) -> dict[str, str]:
    """Register the demo fleet, the operator's key and the services' database logins; return the
    variables that give the children their URLs and the fleet its secret."""
    from simulators.fleet import demo_fleet, with_credentials  # optional for library users

    # The simulated devices log in as themselves, with passwords derived from one fleet secret
    # that only the launcher and the simulator child know.
    secret = fleet_secret(settings)
    fleet = demo_fleet() if secret is None else with_credentials(demo_fleet(), secret)
    log.info("demo fleet: %d devices (%d newly registered)", len(fleet), register_fleet(url, fleet))
    service_urls: dict[Service, str] = {}
    if settings.uses_embedded_database:
        # The embedded platform is a single operator's: give them a key to call the API with.
        key_file = settings.embedded.data_dir / "api-key"
        created = ensure_operator_key(url, key_file)
        log.info("%s admin API key in %s (send it as 'Authorization: Bearer <key>')",
                 "new" if created else "the", key_file)
        # Ingest writes, the API reads and the alert evaluator judges through their own roles
        # (migrations 012, 014); the rollup refresher and retention stay the owner, which
        # drop_chunks requires. An external database's logins are its administrator's to make
        # (README "Database roles").
        logins = set_up_service_logins(url, embedded_postgres_dir(settings))
        service_urls = {service: login.url for service, login in logins.items()}
        log.info("database logins %s (passwords in %s, new on every start)",
                 ", ".join(login.login for login in logins.values()), embedded_postgres_dir(settings))
    # The URL as given (login included), not rebuilt from host and port: children log in too.
    env = {"SMARTCITY_DATABASE_URL": url, "SMARTCITY_MQTT_URL": settings.mqtt_url or settings.broker.url}
    if secret is not None:
        env["SMARTCITY_SIMULATOR__FLEET_SECRET"] = secret.decode()
    if settings.mqtt_ca_file is not None:
        env["SMARTCITY_MQTT_CA_FILE"] = str(settings.mqtt_ca_file)
    env.update(service_login_environment(settings, service_urls))
    return env


def _supervise(settings: Settings, env: dict[str, str], broker: EmbeddedMosquitto | None, url: str,
               stop: threading.Event) -> int:
    """Run the children (and watch the embedded broker) until ``stop`` or a crash loop."""
    ingest = ChildProcess("ingest", ["ingest"])
    api = ChildProcess("api", ["api"])
    simulator = ChildProcess("simulator", ["simulate", "--demo"])
    rollup = ChildProcess("rollup", ["rollup"])
    alerts = ChildProcess("alerts", ["alerts", "run"])
    watched: list[Supervised] = [ingest, rollup, alerts, api, simulator]
    if broker is not None:
        # Not the database: its postmaster already recovers from its backends' crashes.
        watched.append(BrokerProcess(broker))
    supervisor = Supervisor(watched, env, settings.supervisor)
    supervisor.start()
    log.info("platform up: API http://%s:%d/api/v1 · MQTT %s · database %s",
             settings.api.host, settings.api.port, settings.broker, redact_url(url))
    status = 0
    # A dead child waits at least its backoff before a restart, so a Ctrl-C that reached the
    # children too (same process group) sets ``stop`` before anything is restarted.
    while not stop.wait(0.25):
        try:
            supervisor.check()
        except CrashLoop as err:
            log.error("%s", err)
            status = 1
            break
    for child in (simulator, ingest, rollup, alerts, api):  # devices stop first, then ingest flushes
        child.stop()
    return status
