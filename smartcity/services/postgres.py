"""A private PostgreSQL cluster with TimescaleDB preloaded, owned by ``postgres`` when we are root."""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
from pathlib import Path
from urllib.parse import quote

from smartcity.services.home import SHARED_CLUSTER_ROOT, ServerHome
from smartcity.services.process import ServiceError, run_command

__all__ = ["POSTGRES_ROOT", "EmbeddedPostgres", "embedded_postgres_url", "find_postgres_bin_dir"]

log = logging.getLogger(__name__)


POSTGRES_ROOT = Path("/usr/lib/postgresql")


def find_postgres_bin_dir(preferred: Path | None = None) -> Path:
    """Find the bin directory of the newest PostgreSQL major that has TimescaleDB installed."""
    if preferred is not None:
        if not (preferred / "postgres").exists():
            raise ServiceError(f"no postgres binary in SMARTCITY_EMBEDDED__POSTGRES_BIN_DIR={preferred}")
        return preferred
    majors = sorted(
        (int(p.name) for p in POSTGRES_ROOT.glob("*") if p.name.isdigit()), reverse=True
    )
    for major in majors:
        base = POSTGRES_ROOT / str(major)
        if (base / "bin" / "postgres").exists() and list((base / "lib").glob("timescaledb*.so")):
            return base / "bin"
    raise ServiceError(
        "no PostgreSQL with TimescaleDB found under /usr/lib/postgresql; run `make setup`"
    )


def embedded_postgres_url(data_dir: Path, port: int, database: str = "smartcity") -> str:
    """Return the URL of the embedded cluster kept in ``data_dir``.

    Raises:
        FileNotFoundError: the cluster was never initialised there.
    """
    password = (data_dir / "password").read_text().strip()
    return f"postgresql://smartcity:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


class EmbeddedPostgres:
    """A private PostgreSQL cluster for ``data_dir`` with TimescaleDB preloaded.

    The superuser is ``smartcity`` with a generated password kept in ``data_dir/password``;
    the database ``smartcity`` is created on first start. The cluster and its log live in
    ``data_dir`` too, except when we are root and the ``postgres`` user cannot enter
    ``data_dir``: then they live under ``cluster_root`` (see ``ServerHome``).
    """

    user = "smartcity"
    database = "smartcity"

    def __init__(self, data_dir: Path, port: int, bin_dir: Path | None = None,
                 cluster_root: Path = SHARED_CLUSTER_ROOT) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.bin_dir = find_postgres_bin_dir(bin_dir)
        self.cluster_root = cluster_root
        self._as_postgres = os.geteuid() == 0
        self._place = ServerHome(self.data_dir, "postgres" if self._as_postgres else None,
                                 cluster_root)

    @property
    def pointer_file(self) -> Path:
        """The file in ``data_dir`` naming the cluster's home when it lives elsewhere."""
        return self._place.pointer_file

    @property
    def home(self) -> Path:
        """Return the directory that holds the cluster and its log."""
        return self._place.home

    @property
    def cluster_dir(self) -> Path:
        return self.home / "cluster"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "password"

    @property
    def url(self) -> str:
        """Return the connection URL (with the password) of the cluster's database."""
        return embedded_postgres_url(self.data_dir, self.port)

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *command] if self._as_postgres else command

    def _hand_over(self, path: Path) -> None:
        """Give ``path`` to the postgres user when we are root (the server refuses root)."""
        self._place.hand_over(path)

    def initialise(self) -> bool:
        """Create the cluster if it does not exist yet; return True when it was created."""
        if (self.cluster_dir / "PG_VERSION").exists():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Our own directory (never its parents): the server user may enter it where it can
        # reach it at all; the password file in it stays 0600.
        self.data_dir.chmod(0o755)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.password_file.chmod(0o600)
        home = self._place.choose()
        pwfile = home / ".initdb-password"
        pwfile.write_text(self.password_file.read_text())
        self._hand_over(pwfile)
        cluster_dir = home / "cluster"
        cluster_dir.mkdir(mode=0o700, exist_ok=True)
        self._hand_over(cluster_dir)
        try:
            run_command(self._command(
                "initdb", "-D", str(cluster_dir), "-U", self.user, f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
            ))
        finally:
            pwfile.unlink(missing_ok=True)
        return True

    def start(self, timeout: float = 60) -> None:
        """Start the server, create the database if needed, and wait until it accepts queries."""
        created = self.initialise()
        self.log_file.touch()
        self._hand_over(self.log_file)
        options = " ".join([
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.cluster_dir}",
            "-c shared_preload_libraries=timescaledb",
            "-c timescaledb.telemetry_level=off",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
            "-c synchronous_commit=on",
        ])
        run_command(self._command(
            "pg_ctl", "-D", str(self.cluster_dir), "-l", str(self.log_file),
            "-o", options, "-w", "-t", str(int(timeout)), "start",
        ))
        if created:
            self._create_database()
        log.info("postgres listening on 127.0.0.1:%d (data %s, log %s)",
                 self.port, self.cluster_dir, self.log_file)

    def _create_database(self) -> None:
        from psycopg import sql

        from smartcity.db.connect import connect  # late: smartcity.db imports this module

        admin_url = embedded_postgres_url(self.data_dir, self.port, "postgres")
        with connect(admin_url, purpose="setup", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def is_running(self) -> bool:
        """Tell whether the cluster's server is up."""
        result = subprocess.run(
            self._command("pg_ctl", "-D", str(self.cluster_dir), "status"),
            capture_output=True, text=True,
        )
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` rolls back open transactions, ``immediate`` crashes it)."""
        if self.is_running():
            run_command(self._command("pg_ctl", "-D", str(self.cluster_dir), "-m", mode, "-w", "stop"))
            log.info("postgres on port %d stopped", self.port)
