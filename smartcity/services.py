"""Private PostgreSQL (with TimescaleDB preloaded) and Mosquitto processes, for `up` and for tests.

Both run from the installed binaries in a directory of their own, listen on loopback only, and
keep their data there across restarts. Neither runs as root: when we are root the cluster belongs
to the ``postgres`` system user (its commands run through ``runuser``) and the broker drops to the
``mosquitto`` user; where that user cannot enter the data directory, the server's files live under
/var/lib/smartcity (see ``ServerHome``). Mosquitto's settings come from the shared
``smartcity/mosquitto.conf``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = [
    "EmbeddedMosquitto",
    "EmbeddedPostgres",
    "embedded_postgres_url",
    "MosquittoTls",
    "ServerHome",
    "ServiceError",
    "find_mosquitto",
    "find_postgres_bin_dir",
    "free_port",
    "mosquitto_base_config",
    "mosquitto_tls",
    "port_is_open",
    "wait_for_port",
]

log = logging.getLogger(__name__)

POSTGRES_ROOT = Path("/usr/lib/postgresql")
# Where clusters live when we are root and the postgres user cannot enter the data directory.
SHARED_CLUSTER_ROOT = Path("/var/lib/smartcity")


class ServiceError(RuntimeError):
    """An embedded service could not be found, started or stopped."""


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(host: str, port: int) -> bool:
    """Tell whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float) -> None:
    """Block until ``host:port`` accepts TCP connections.

    Raises:
        ServiceError: nothing accepted within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not port_is_open(host, port):
        if time.monotonic() > deadline:
            raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.05)


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


def find_mosquitto(preferred: Path | None = None) -> Path:
    """Find the mosquitto broker binary."""
    candidates = [preferred] if preferred is not None else []
    found = shutil.which("mosquitto")
    candidates += [Path(found)] if found else []
    candidates.append(Path("/usr/sbin/mosquitto"))
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise ServiceError("mosquitto not found; run `make setup` (Debian package mosquitto)")


def _run(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result: subprocess.CompletedProcess[str] = subprocess.run(
        command, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(map(str, command))} failed:\n{result.stderr or result.stdout}")
    return result


def embedded_postgres_url(data_dir: Path, port: int, database: str = "smartcity") -> str:
    """Return the URL of the embedded cluster kept in ``data_dir``.

    Raises:
        FileNotFoundError: the cluster was never initialised there.
    """
    password = (data_dir / "password").read_text().strip()
    return f"postgresql://smartcity:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


class ServerHome:
    """Where a server that runs as another user keeps its files for ``data_dir``.

    When we are root, PostgreSQL and Mosquitto run as their own system users, and those must
    reach every file the server opens. ``data_dir`` itself is the home when that user can enter
    it. A clone under /root or a ``mktemp -d`` folder has a 0700 parent, though: then the home is
    ``root/<name>-<hash of data_dir>/`` and a pointer file in ``data_dir`` names it, so the user's
    folders keep their permissions. Without a ``user`` (we are not root) the home is ``data_dir``.
    """

    def __init__(self, data_dir: Path, user: str | None, root: Path = SHARED_CLUSTER_ROOT,
                 pointer_name: str = "cluster-location") -> None:
        self.data_dir = data_dir
        self.user = user
        self.root = root
        self.pointer_file = data_dir / pointer_name

    @property
    def home(self) -> Path:
        """Return the home chosen earlier (the pointer's target), else ``data_dir``."""
        if self.pointer_file.is_file():
            return Path(self.pointer_file.read_text().strip())
        return self.data_dir

    def hand_over(self, path: Path) -> None:
        """Give ``path`` to the server's user (nothing to do when it runs as us)."""
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def can_reach(self, path: Path, test: str = "-x") -> bool:
        """Tell whether the server's user can enter (``-x``) or read (``-r``) ``path``."""
        if self.user is None:
            return True
        # Ask the kernel as the server user rather than reading mode bits: ACLs, groups and
        # mount options all count.
        result = subprocess.run(["runuser", "-u", self.user, "--", "test", test, str(path)],
                                capture_output=True)
        return result.returncode == 0

    def shared_home(self) -> Path:
        """Return this data directory's home under ``root``: readable name, unique hash."""
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        words = [part.lstrip(".") for part in self.data_dir.parts[-3:] if part.lstrip("./")]
        # Short: PostgreSQL's Unix socket goes in the cluster directory, and socket paths are
        # limited to 107 bytes.
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(words))[:20]
        return self.root / f"{name}-{digest}"

    def choose(self) -> Path:
        """Decide where the server's files live; remember a home outside ``data_dir`` by a pointer."""
        if self.pointer_file.is_file():
            home = self.home
        elif self.can_reach(self.data_dir):
            return self.data_dir
        else:
            home = self.shared_home()
            if home.exists():
                # Left by an earlier data directory of this path that was deleted with its
                # password: unusable, but data, so set aside rather than removed.
                aside = home.with_name(f"{home.name}.orphaned-{int(time.time())}")
                home.rename(aside)
                log.warning("set aside an orphaned server home for %s: %s", self.data_dir, aside)
            log.info("the %s user cannot enter %s (a parent folder is private); keeping the "
                     "server's files in %s, recorded in %s", self.user, self.data_dir, home,
                     self.pointer_file)
        self.root.mkdir(mode=0o755, parents=True, exist_ok=True)
        home.mkdir(mode=0o700, exist_ok=True)
        self.hand_over(home)
        self.pointer_file.write_text(f"{home}\n")
        return home


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
            _run(self._command(
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
        _run(self._command(
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
            _run(self._command("pg_ctl", "-D", str(self.cluster_dir), "-m", mode, "-w", "stop"))
            log.info("postgres on port %d stopped", self.port)


def mosquitto_base_config() -> str:
    """Return the broker settings every deployment shares (``smartcity/mosquitto.conf``)."""
    return resources.files("smartcity").joinpath("mosquitto.conf").read_text()


@dataclass(frozen=True)
class MosquittoTls:
    """A TLS listener of the embedded broker (SMARTCITY_EMBEDDED__MQTT_TLS_…)."""

    port: int
    certfile: Path
    keyfile: Path
    cafile: Path | None = None
    host: str = "127.0.0.1"


def mosquitto_tls(port: int | None, certfile: Path | None, keyfile: Path | None,
                  cafile: Path | None = None, host: str = "127.0.0.1") -> MosquittoTls | None:
    """Return the TLS listener the settings describe (SMARTCITY_EMBEDDED__MQTT_TLS_…), or None."""
    if port is None or certfile is None or keyfile is None:
        return None
    return MosquittoTls(port, certfile.resolve(), keyfile.resolve(),
                        cafile.resolve() if cafile is not None else None, host)


# The system user Debian's mosquitto package creates; the broker drops to it when started as root.
MOSQUITTO_USER = "mosquitto"


def _mosquitto_user() -> str | None:
    """Return the user the broker runs as when it is not us: ``mosquitto`` when we are root."""
    if os.geteuid() != 0:
        return None  # Mosquitto ignores `user` unless started as root: it runs as us
    try:
        pwd.getpwnam(MOSQUITTO_USER)
    except KeyError:
        raise ServiceError(f"we are root and there is no {MOSQUITTO_USER!r} user to run the broker "
                           "as; install Debian's mosquitto package (`make setup`)") from None
    return MOSQUITTO_USER


class EmbeddedMosquitto:
    """A private Mosquitto broker in ``data_dir`` with persistence on, listening on loopback.

    Its configuration is this broker's listeners, paths and user followed by the shared base
    (``mosquitto_base_config``) that docker-compose's broker includes too.

    Without ``auth`` it takes anonymous clients. With ``auth`` (the directory holding the password
    and ACL files that ``smartcity.broker`` renders from the registry) it takes logins only, binds
    every client id to its login name, and ``reload()`` makes it re-read the files. ``tls`` adds a
    TLS listener with the same rules. Started as root, the broker runs as the ``mosquitto`` user:
    its files live in ``home``, which is ``data_dir`` when that user can enter it, else a
    directory under /var/lib/smartcity named by a pointer in ``data_dir`` (``ServerHome``).
    """

    def __init__(self, data_dir: Path, port: int, binary: Path | None = None,
                 autosave_interval: int | None = None, autosave_on_changes: bool | None = None,
                 *, auth: Path | None = None, tls: MosquittoTls | None = None,
                 home_root: Path = SHARED_CLUSTER_ROOT) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.binary = find_mosquitto(binary)
        # None: the base configuration's value.
        self.autosave_interval = autosave_interval
        self.autosave_on_changes = autosave_on_changes
        self.auth = auth.resolve() if auth is not None else None
        self.tls = tls
        self._place = ServerHome(self.data_dir, _mosquitto_user(), home_root, "broker-location")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        """Return the directory holding the broker's configuration, persistence, log and pid file."""
        return self._place.home

    @property
    def config_file(self) -> Path:
        # In the home: the broker re-reads it on SIGHUP, as its own user.
        return self.home / "mosquitto.conf"

    @property
    def pid_file(self) -> Path:
        return self.home / "mosquitto.pid"

    @property
    def run_as(self) -> str:
        """Return the user the broker process runs as."""
        return self._place.user or pwd.getpwuid(os.geteuid()).pw_name

    def prepare_home(self) -> Path:
        """Create the broker's home, reachable and writable by the user it runs as; return it.

        An ``auth`` directory inside it is reachable by the broker as well.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        home = self._place.choose()
        left = self.data_dir / "mosquitto.db"
        if home != self.data_dir and left.exists() and not (home / "mosquitto.db").exists():
            # A root-run broker of an earlier version kept its persistence in data_dir, which the
            # mosquitto user cannot reach: carry the retained messages and sessions over.
            shutil.move(left, home / "mosquitto.db")
            log.info("moved the broker's persistence from %s to %s", left, home)
        # The broker writes its persistence, log and pid file here after dropping privileges,
        # including files a root-run broker of an earlier version left.
        self._place.hand_over(home)
        for name in ("mosquitto.db", "mosquitto.log", "mosquitto.pid"):
            if (home / name).exists():
                self._place.hand_over(home / name)
        return home

    def _listener_lines(self) -> list[str]:
        # Listener options apply to the listener above them, so they are repeated under each.
        per_listener = ["use_username_as_clientid true"] if self.auth is not None else []
        lines = [f"listener {self.port} 127.0.0.1", *per_listener]
        if self.tls is not None:
            lines += [f"listener {self.tls.port} {self.tls.host}",
                      f"certfile {self.tls.certfile}", f"keyfile {self.tls.keyfile}"]
            lines += [f"cafile {self.tls.cafile}"] if self.tls.cafile is not None else []
            lines += per_listener
        return lines

    def _login_lines(self) -> list[str]:
        if self.auth is None:
            return ["allow_anonymous true"]
        from smartcity.broker.authfiles import ACL_FILE, PASSWORD_FILE  # late: broker imports db

        return ["allow_anonymous false", f"password_file {self.auth / PASSWORD_FILE}",
                f"acl_file {self.auth / ACL_FILE}"]

    def write_config(self) -> None:
        """Write the broker configuration; regenerated on every start so settings apply."""
        home = self.prepare_home()
        lines = [
            "# Generated by smartcity on every start: this broker's listeners, logins, paths and",
            "# user, then the platform's shared settings (smartcity/mosquitto.conf).",
            *self._listener_lines(),
            *self._login_lines(),
            f"persistence_location {home}/",
            f"user {self.run_as}",
            f"pid_file {self.pid_file}",
            f"log_dest file {home / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "",
            mosquitto_base_config(),
        ]
        # A later value of these options replaces the earlier one in Mosquitto's parser.
        if self.autosave_interval is not None:
            lines += ["# SMARTCITY_EMBEDDED__MOSQUITTO_AUTOSAVE_INTERVAL",
                      f"autosave_interval {self.autosave_interval}"]
        if self.autosave_on_changes is not None:
            lines += ["# SMARTCITY_EMBEDDED__MOSQUITTO_AUTOSAVE_ON_CHANGES",
                      f"autosave_on_changes {str(self.autosave_on_changes).lower()}"]
        self.config_file.write_text("\n".join(lines) + "\n")
        self.config_file.chmod(0o644)  # read again on SIGHUP by the broker's user; no secrets

    def _check_readable(self) -> None:
        """Fail with the fix when the broker's user could not read a file it needs (it would exit)."""
        needed: list[tuple[Path, str]] = []
        if self.auth is not None:
            from smartcity.broker.authfiles import ACL_FILE, PASSWORD_FILE

            needed += [(self.auth / PASSWORD_FILE, "render it first (smartcity.broker.sync_once)"),
                       (self.auth / ACL_FILE, "render it first (smartcity.broker.sync_once)")]
        if self.tls is not None:
            hint = f"chgrp {MOSQUITTO_USER} FILE; chmod 640 FILE, and let it enter the folders above"
            needed += [(path, hint) for path in (self.tls.certfile, self.tls.keyfile, self.tls.cafile)
                       if path is not None]
        for path, hint in needed:
            if not path.is_file():
                raise ServiceError(f"mosquitto needs {path}, which does not exist: {hint}")
            if not self._place.can_reach(path, "-r"):
                raise ServiceError(f"mosquitto runs as {self.run_as!r} and cannot read {path}: {hint}")

    def start(self, timeout: float = 20) -> None:
        """Start the broker and wait until it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return
        for port in (self.port, *([self.tls.port] if self.tls else [])):
            if port_is_open("127.0.0.1", port):
                raise ServiceError(f"port {port} is already taken; cannot start mosquitto there")
        self.write_config()
        self._check_readable()
        stderr_file = self.home / "mosquitto.stderr"
        with stderr_file.open("wb") as stderr:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True,
            )
        try:
            wait_for_port("127.0.0.1", self.port, timeout)
            if self.tls is not None:
                host = "127.0.0.1" if self.tls.host in ("0.0.0.0", "::", "") else self.tls.host
                wait_for_port(host, self.tls.port, timeout)
        except ServiceError:
            self._process.kill()
            self._process.wait()
            self._process = None
            raise ServiceError(
                f"mosquitto did not start on port {self.port}: {stderr_file.read_text()}"
            ) from None
        log.info("mosquitto listening on 127.0.0.1:%d (pid %d, data %s)",
                 self.port, self._process.pid, self.data_dir)

    def is_running(self) -> bool:
        """Tell whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """Return the process id of the broker started last, alive or not."""
        return None if self._process is None else self._process.pid

    def reload(self) -> None:
        """Make the broker re-read its configuration, password and ACL files (SIGHUP).

        Logins that disappeared or whose password changed are disconnected at once.

        Raises:
            ProcessLookupError: the broker is not running.
        """
        if self._process is None or self._process.poll() is not None:
            raise ProcessLookupError(f"mosquitto on port {self.port} is not running")
        self._process.send_signal(signal.SIGHUP)

    def exit_status(self) -> int | None:
        """Return the exit status if the broker started last has exited by itself, else None."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """Crash the broker (SIGKILL): it keeps only its last persistence snapshot."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None
        log.info("mosquitto on port %d killed", self.port)

    def stop(self, timeout: float = 10) -> None:
        """Stop the broker cleanly (it saves its persistence file on SIGTERM)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        log.info("mosquitto on port %d stopped", self.port)

