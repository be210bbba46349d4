"""The services a benchmark runs against: the configured database and broker, or private ones.

Unless ``SMARTCITY_DATABASE_URL`` / ``SMARTCITY_MQTT_URL`` name external services, a run starts its
own PostgreSQL and Mosquitto on free ports in a temporary directory, removed when the run ends.
With ``broker_auth`` the private broker takes logins only, as the platform runs it: the password and
ACL files are rendered from the registry once the database is prepared, before the broker starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from smartcity.apikeys import Scope, create_key
from smartcity.bench.cpu import find_pid
from smartcity.broker.authfiles import broker_group
from smartcity.broker.sync import sync_once
from smartcity.db.connect import connect, database_url
from smartcity.db.queries import bench as bench_sql
from smartcity.services import EmbeddedMosquitto, EmbeddedPostgres, free_port
from smartcity.settings import Settings

__all__ = ["BenchStack", "bench_read_key", "bench_services", "used_database_refusal"]


@dataclass
class BenchStack:
    """Where a run's database and broker are, and the main pid of each one it started."""

    database_url: str
    mqtt_url: str  # as given, login included: what the workers are told (SMARTCITY_MQTT_URL)
    mqtt_ca_file: Path | None
    cpu_pids: dict[str, int] = field(default_factory=dict)  # embedded service → main pid

    def child_env(self, api_port: int) -> dict[str, str]:
        """The environment of a platform child (`smartcity ingest`, `api`, …) the run starts.

        Children log at WARNING unless SMARTCITY_LOG_LEVEL says otherwise: an access-log line per
        request would cost the API part of what a bench measures.
        """
        env = {
            **{k: v for k, v in os.environ.items() if k != "SMARTCITY_MQTT_CA_FILE"},
            "SMARTCITY_DATABASE_URL": self.database_url,
            "SMARTCITY_MQTT_URL": self.mqtt_url,
            "SMARTCITY_API__HOST": "127.0.0.1",
            "SMARTCITY_API__PORT": str(api_port),
            "SMARTCITY_LOG_LEVEL": os.environ.get("SMARTCITY_LOG_LEVEL", "WARNING"),
            # One key drives every client: its bucket is raised out of reach, not switched off, so
            # the limiter's cost is in what a bench measures (README "Benchmarks").
            "SMARTCITY_API__RATE_LIMIT_KEY_PER_S": os.environ.get("SMARTCITY_API__RATE_LIMIT_KEY_PER_S",
                                                                  "1000000"),
            "SMARTCITY_API__RATE_LIMIT_KEY_BURST": os.environ.get("SMARTCITY_API__RATE_LIMIT_KEY_BURST",
                                                                  "1000000"),
        }
        if self.mqtt_ca_file is not None:
            env["SMARTCITY_MQTT_CA_FILE"] = str(self.mqtt_ca_file)
        return env


@contextmanager
def bench_services(settings: Settings, prepare: Callable[[str], None] | None = None, *,
                   broker_auth: bool = False) -> Iterator[BenchStack]:
    """Yield the database and broker: the configured ones, or private ones in a temporary directory.

    ``prepare`` gets the database URL before the broker starts (migrations, devices, accounts).
    ``broker_auth`` starts the private broker with the registry's logins and ACLs.

    Raises:
        ValueError: ``broker_auth`` with an external broker, whose logins are not the run's to set.
    """
    if broker_auth and not settings.uses_embedded_broker:
        raise ValueError("authentication on needs the bench's own broker: with SMARTCITY_MQTT_URL set,"
                         " run with --auth off (everything logs in with that URL's login)")
    with ExitStack() as stack:
        directory: Path | None = None
        if settings.uses_embedded_database or settings.uses_embedded_broker:
            directory = Path(tempfile.mkdtemp(prefix="smartcity-bench-"))
            directory.chmod(0o755)  # the postgres user must reach its cluster when we are root
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
        pids: dict[str, int] = {}
        if directory is not None and settings.uses_embedded_database:
            postgres = EmbeddedPostgres(directory / "postgres", free_port(),
                                        settings.embedded.postgres_bin_dir)
            stack.callback(postgres.stop, "immediate")  # throwaway data: no shutdown checkpoint
            postgres.start()
            url = postgres.url
            pids["postgres"] = int((postgres.cluster_dir / "postmaster.pid").read_text().split()[0])
        else:
            url = database_url(settings)
        if prepare is not None:
            prepare(url)
        if directory is not None and settings.uses_embedded_broker:
            auth = directory / "broker-auth" if broker_auth else None
            if auth is not None:
                # Every account exists by now, so one render before the start is enough: no sync
                # needs to follow the registry during the run.
                with connect(url, purpose="bench", autocommit=True) as conn:
                    sync_once(conn, auth, broker_group())
            broker = EmbeddedMosquitto(directory / "mosquitto", free_port(), settings.embedded.mosquitto_bin,
                                       settings.embedded.mosquitto_autosave_interval,
                                       settings.embedded.mosquitto_autosave_on_changes, auth=auth)
            stack.callback(broker.stop)
            broker.start()
            mqtt_url, ca_file = broker.url, None
            if (pid := find_pid(str(broker.config_file))) is not None:
                pids["mosquitto"] = pid
        else:
            mqtt_url, ca_file = settings.mqtt_url or "", settings.mqtt_ca_file
        yield BenchStack(url, mqtt_url, ca_file, pids)



def used_database_refusal(url: str, device_ids: Iterable[str], bench: str) -> str | None:
    """Why ``bench`` may not run on this database, or None: it must hold no readings of the fleet.

    A bench stores its own readings and reports on them; mixed with earlier ones, its figures and
    checks would be wrong. Only an external database (SMARTCITY_DATABASE_URL) can hold them; the
    embedded one is new.
    """
    with connect(url, purpose="bench") as conn:
        row = conn.execute(bench_sql.ANY_READINGS_OF, (list(device_ids),)).fetchone()
    if row is None or not row[0]:
        return None
    return (f"the database already holds readings of the demo fleet; bench {bench} stores its own:"
            " point SMARTCITY_DATABASE_URL at an empty database, or unset it to use a private one")


def bench_read_key(url: str) -> dict[str, str]:
    """Create a read key in the (migrated) database at ``url``; return the headers that send it.

    The benchmarks go through authentication as every client does: the key's cached check is
    part of what a request costs.
    """
    with connect(url, purpose="bench", autocommit=True) as conn:
        key = create_key(conn, Scope.READ, "bench").key
    return {"Authorization": f"Bearer {key}"}
