"""Helpers the fixtures and tests share: waiting on conditions, a scratch directory postgres can use,
a Mosquitto that wants a login (and optionally TLS) with a CA made on the spot."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from smartcity.services import EmbeddedMosquitto

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy; return that, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not met within {timeout} s (last: {result!r})")
        time.sleep(interval)


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """Yield a fresh directory under /tmp that the postgres user can reach when we are root.

    pytest's tmp_path sits under a 0700 directory of the invoking user, which a server running
    as ``postgres`` cannot enter.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 / localhost (PEM files)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Create a self-signed CA and a server certificate for loopback with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.crt"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=smartcity test CA",
            "-keyout", ca_key, "-out", ca_cert)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    if os.geteuid() == 0:
        # A broker started as root reads its key as the mosquitto user, as a deployment would set it up.
        shutil.chown(key, group="mosquitto")
        key.chmod(0o640)
    return TlsFiles(ca_cert, cert, key)


class SecuredMosquitto(EmbeddedMosquitto):
    """An embedded Mosquitto that refuses anonymous clients (password file) and may speak only TLS."""

    def __init__(self, data_dir: Path, port: int, users: Mapping[str, str],
                 tls: TlsFiles | None = None) -> None:
        super().__init__(data_dir, port)
        self.users, self.tls_files = dict(users), tls

    def write_config(self) -> None:
        super().write_config()
        passwords = self.home / "passwords"  # where the broker's user reads (it runs as mosquitto)
        passwords.unlink(missing_ok=True)
        passwords.touch(mode=0o600)
        for user, password in self.users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password],
                           check=True, capture_output=True)
        self._place.hand_over(passwords)
        lines = self.config_file.read_text().replace("allow_anonymous true", "allow_anonymous false")
        lines += f"password_file {passwords}\n"
        if self.tls_files is not None:  # listener options: they apply to the (only) listener above
            lines += (f"cafile {self.tls_files.ca_cert}\ncertfile {self.tls_files.server_cert}\n"
                      f"keyfile {self.tls_files.server_key}\n")
        self.config_file.write_text(lines)

    def login_url(self, user: str, password: str) -> str:
        """Return the broker's URL with a login, percent-encoded as SMARTCITY_MQTT_URL wants it."""
        scheme = "mqtts" if self.tls_files else "mqtt"
        return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"


def leftover_bench_stacks(directory: Path) -> list[str]:
    """Return the names of benchmark stacks left in ``directory``."""
    return sorted(p.name for p in directory.glob("smartcity-bench-*"))


# Tables whose rows tests create; the catalogue tables are seeded once per session. The rollups and
# marks too: device ids restart at 1, so another test's rollup rows would be read as this test's.
# The evaluator's tables (migration 014), children first.
ALERT_TABLES = ("alert_webhook_deliveries", "alert_transitions", "alert_subject_state", "alerts",
                "alert_rule_progress")
DATA_TABLES = ("readings", "latest_readings", "quarantine", "devices", "rollup_1m", "rollup_1h", "rollup_1d",
               "rollup_pending", "retention_horizon", "api_keys", "broker_accounts", *ALERT_TABLES)
