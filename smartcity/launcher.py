"""`smartcity up`: the whole platform on one machine, embedded services unless URLs are given.

Starts (when no URL is configured) a private PostgreSQL+TimescaleDB and Mosquitto under the data
directory, migrates, registers the demo fleet, then runs ingest, the API and the simulated fleet
as child processes of this one. It supervises them, and the embedded broker, the way systemd's
``Restart=`` and ``StartLimitBurst=`` do: one that dies is restarted after a backoff (doubling,
capped, reset once it ran stably) while the rest stays up; a crash loop (too many crashes of one
within a window) stops the platform with status 1. A stop request (Ctrl-C, SIGTERM) stops
everything in order: simulator, ingest (which flushes and acks), API, broker, database.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from smartcity.db import apply_migrations, seed_catalog
from smartcity.db.connect import connect, database_url, embedded_postgres_dir
from smartcity.devices import DeviceExists, register_device
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, ServiceError
from smartcity.settings import Settings, SupervisorSettings

__all__ = [
    "BrokerProcess",
    "ChildProcess",
    "CrashLoop",
    "RestartBackoff",
    "Supervised",
    "Supervisor",
    "migrate_database",
    "register_fleet",
    "run_platform",
]

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
    started_at: float = 0.0  # time.monotonic() of the last start

    def start(self, env: dict[str, str]) -> None:
        """Start ``python -m smartcity <args>`` with ``env``."""
        self.process = subprocess.Popen([sys.executable, "-m", "smartcity", *self.args], env=env)
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    @property
    def pid(self) -> int:
        return 0 if self.process is None else self.process.pid

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


class BrokerProcess:
    """The embedded broker as a supervised child: after a crash it restarts from its persistence."""

    name = "mosquitto"

    def __init__(self, broker: EmbeddedMosquitto) -> None:
        self.broker = broker
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.broker.pid or 0

    def start(self, env: dict[str, str]) -> None:
        """Start the broker unless it runs (``up`` starts it before the children)."""
        if not self.broker.is_running():
            self.broker.start()
            self.started_at = time.monotonic()

    def exited(self) -> int | None:
        """Return the exit status if the broker has exited, else None."""
        return self.broker.exit_status()


class Supervised(Protocol):
    """What the supervisor needs of a process it keeps running."""

    name: str
    started_at: float

    @property
    def pid(self) -> int: ...

    def start(self, env: dict[str, str]) -> None: ...

    def exited(self) -> int | None: ...


class RestartBackoff:
    """When to restart one child after it died, and when to give up on it.

    The delay starts at ``backoff_initial_s`` and doubles per crash up to ``backoff_max_s``; a run
    of at least ``stable_after_s`` resets it. More than ``max_restarts`` crashes within
    ``restart_window_s`` is a crash loop (systemd's StartLimitBurst/StartLimitIntervalSec).
    """

    def __init__(self, policy: SupervisorSettings) -> None:
        self.policy = policy
        self.crashes: deque[float] = deque()
        self.next_delay = policy.backoff_initial_s

    def after_crash(self, now: float, ran_for: float) -> float | None:
        """Record a crash at ``now`` after ``ran_for`` seconds of running; return the restart delay.

        Returns None for a crash loop: the child should not be restarted.
        """
        policy = self.policy
        if ran_for >= policy.stable_after_s:
            self.next_delay = policy.backoff_initial_s
        self.crashes.append(now)
        while self.crashes[0] <= now - policy.restart_window_s:
            self.crashes.popleft()
        if len(self.crashes) > policy.max_restarts:
            return None
        delay = min(self.next_delay, policy.backoff_max_s)
        self.next_delay = min(delay * 2, policy.backoff_max_s)
        return delay


class CrashLoop(RuntimeError):
    """A child crashed more often than the supervisor settings allow; restarting will not help."""


def _describe_exit(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


class Supervisor:
    """Keep child processes running: restart the dead ones after their backoff, detect crash loops.

    Every unexpected exit counts as a crash, status 0 included: the children are services that
    only end when asked to (compose's ``unless-stopped``).
    """

    def __init__(self, children: Sequence[Supervised], env: dict[str, str],
                 policy: SupervisorSettings) -> None:
        self.children = children
        self.env = env
        self.policy = policy
        self.backoff = {child.name: RestartBackoff(policy) for child in children}
        self.restart_at: dict[str, float] = {}  # dead children waiting for their restart

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            child.start(self.env)

    def check(self) -> None:
        """Notice dead children and restart those whose backoff has passed.

        Raises:
            CrashLoop: a child crashed too often; the caller stops the platform.
        """
        now = time.monotonic()
        for child in self.children:
            if child.name in self.restart_at:
                if now >= self.restart_at[child.name]:
                    del self.restart_at[child.name]
                    try:
                        child.start(self.env)
                    except ServiceError as err:  # e.g. the broker's port was taken meanwhile
                        self._crashed(child, now, f"could not be restarted ({err})")
                continue
            status = child.exited()
            if status is not None:
                self._crashed(child, now, f"(pid {child.pid}) {_describe_exit(status)}")

    def _crashed(self, child: Supervised, now: float, how: str) -> None:
        """Schedule the restart of ``child``, which ``how`` describes.

        Raises:
            CrashLoop: it crashed too often.
        """
        backoff = self.backoff[child.name]
        delay = backoff.after_crash(now, now - child.started_at)
        policy = self.policy
        if delay is None:
            raise CrashLoop(
                f"{child.name} {how}: more than {policy.max_restarts} crashes within"
                f" {policy.restart_window_s:g} s, a crash loop; stopping the platform"
                " (SMARTCITY_SUPERVISOR__MAX_RESTARTS, SMARTCITY_SUPERVISOR__RESTART_WINDOW_S)"
            )
        log.error("%s %s; restarting it in %.1f s (%d crash(es) within %g s; more than %d stop the"
                  " platform)", child.name, how, delay, len(backoff.crashes), policy.restart_window_s,
                  policy.max_restarts)
        self.restart_at[child.name] = now + delay


@contextmanager
def _embedded_services(settings: Settings) -> Iterator[EmbeddedMosquitto | None]:
    """Start the embedded database and broker that are configured; yield the broker if any."""
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
                                       settings.embedded.mosquitto_bin,
                                       settings.embedded.mosquitto_autosave_interval,
                                       settings.embedded.mosquitto_autosave_on_changes)
            broker.start()
            stack.callback(broker.stop)
        else:
            broker = None
        yield broker


def run_platform(settings: Settings, stop: threading.Event) -> int:
    """Run the whole platform until ``stop`` is set or a child crash-loops; return an exit status."""
    from simulators.fleet import demo_fleet  # the simulator is optional for library users

    with _embedded_services(settings) as broker:
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
        watched: list[Supervised] = [ingest, api, simulator]
        if broker is not None:
            # Not the database: its postmaster already recovers from its backends' crashes.
            watched.append(BrokerProcess(broker))
        supervisor = Supervisor(watched, env, settings.supervisor)
        supervisor.start()
        log.info("platform up: API http://%s:%d/api/v1 · MQTT %s · database %s",
                 settings.api.host, settings.api.port, settings.broker, _redact(url))
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
        for child in (simulator, ingest, api):  # devices stop first, then ingest flushes
            child.stop()
    return status


def _redact(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}:***@{host}" if at else url
