"""`smartcity up`: the whole platform on one machine, embedded services unless URLs are given.

Starts (when no URL is configured) a private PostgreSQL+TimescaleDB and Mosquitto under the data
directory, migrates, registers the demo fleet, then runs ingest, the API and the simulated fleet
as child processes of this one. A stop request (Ctrl-C, SIGTERM) or a child that dies stops
everything in order: simulator, ingest (which flushes and acks), API, broker, database.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from smartcity.db import apply_migrations, seed_catalog
from smartcity.db.connect import connect, database_url, embedded_postgres_dir
from smartcity.devices import DeviceExists, register_device
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres
from smartcity.settings import Settings

__all__ = ["ChildProcess", "migrate_database", "register_fleet", "run_platform"]

log = logging.getLogger(__name__)


def migrate_database(url: str) -> list[int]:
    """Apply pending migrations and seed the catalogue; return the versions applied now."""
    with connect(url, purpose="migrate") as conn:
        applied = apply_migrations(conn)
        seed_catalog(conn)
    return applied


def register_fleet(url: str, specs: list) -> int:  # list[simulators.fleet.DeviceSpec]
    """Register each device of ``specs`` that is not registered yet; return how many were new."""
    added = 0
    with connect(url, purpose="register", autocommit=True) as conn:
        for spec in specs:
            try:
                register_device(conn, spec.device_id, spec.kind, spec.site_id,
                                spec.latitude, spec.longitude)
                added += 1
            except DeviceExists:
                pass
    return added


@dataclass
class ChildProcess:
    """A `smartcity` subcommand running as a child process."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> None:
        """Start ``python -m smartcity <args>`` with ``env``."""
        self.process = subprocess.Popen([sys.executable, "-m", "smartcity", *self.args], env=env)
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def exited(self) -> int | None:
        """Return the exit code if the child has exited, else None."""
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30) -> None:
        """Ask the child to stop (SIGTERM: it flushes and exits), killing it after ``timeout``."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("%s did not stop within %.0f s; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait()
        log.info("stopped %s", self.name)


@contextmanager
def _embedded_services(settings: Settings) -> Iterator[None]:
    with ExitStack() as stack:
        data_dir = settings.embedded.data_dir
        if settings.uses_embedded_database:
            postgres = EmbeddedPostgres(embedded_postgres_dir(settings),
                                        settings.embedded.postgres_port,
                                        settings.embedded.postgres_bin_dir)
            if postgres.is_running():
                log.warning("embedded postgres in %s was left running; restarting it", data_dir)
                postgres.stop()
            postgres.start()
            stack.callback(postgres.stop)
        if settings.uses_embedded_broker:
            broker = EmbeddedMosquitto(data_dir / "mosquitto", settings.embedded.mqtt_port,
                                       settings.embedded.mosquitto_bin)
            broker.start()
            stack.callback(broker.stop)
        yield


def run_platform(settings: Settings, stop: threading.Event) -> int:
    """Run the whole platform until ``stop`` is set or a child dies; return an exit status."""
    from simulators.fleet import demo_fleet  # the simulator is optional for library users

    with _embedded_services(settings):
        url = database_url(settings)
        applied = migrate_database(url)
        log.info("database ready (migrations applied now: %s)", applied or "none")
        fleet = demo_fleet()
        log.info("demo fleet: %d devices (%d newly registered)", len(fleet), register_fleet(url, fleet))
        # The URL as given (login included), not rebuilt from host and port: children log in too.
        env = {**os.environ, "SMARTCITY_DATABASE_URL": url,
               "SMARTCITY_MQTT_URL": settings.mqtt_url or settings.broker.url}
        if settings.mqtt_ca_file is not None:
            env["SMARTCITY_MQTT_CA_FILE"] = str(settings.mqtt_ca_file)
        ingest = ChildProcess("ingest", ["ingest"])
        api = ChildProcess("api", ["api"])
        simulator = ChildProcess("simulator", ["simulate", "--demo"])
        children = [ingest, api, simulator]
        for child in children:
            child.start(env)
        log.info("platform up: API http://%s:%d/api/v1 · MQTT %s · database %s",
                 settings.api.host, settings.api.port, settings.broker, _redact(url))
        status = 0
        while not stop.wait(0.5):
            dead = [(c.name, c.exited()) for c in children if c.exited() is not None]
            if dead:
                log.error("child process %s exited with status %s; stopping the platform", *dead[0])
                status = 1
                break
        for child in (simulator, ingest, api):  # devices stop first, then ingest flushes
            child.stop()
    return status


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if at else url
