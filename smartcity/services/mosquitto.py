"""A private Mosquitto broker: anonymous, or logins only with the registry's password and ACL files."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from smartcity.services.home import SHARED_CLUSTER_ROOT, ServerHome
from smartcity.services.process import ServiceError, port_is_open, wait_for_port

__all__ = [
    "MOSQUITTO_USER",
    "EmbeddedMosquitto",
    "MosquittoTls",
    "find_mosquitto",
    "mosquitto_base_config",
    "mosquitto_tls",
]

log = logging.getLogger(__name__)


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

    def use_auth_in_home(self) -> Path:
        """Take logins from an ``auth`` folder inside the broker's home, which its user can reach
        wherever ``data_dir`` is; return that folder (render the files there before ``start``)."""
        self.auth = self.prepare_home() / "auth"
        return self.auth

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
