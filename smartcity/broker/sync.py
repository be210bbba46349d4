"""Keep a broker's password and ACL files in step with the registry, and reload the broker.

``sync_once`` renders and writes once. ``BrokerAuthSync`` LISTENs on the channel migration 013's
triggers notify, so a revoked device is dropped within milliseconds of the commit; it also syncs
every ``interval`` seconds, a safety net for a notification lost while the connection was down.
After a change it sends the broker SIGHUP: Mosquitto re-reads both files and disconnects logins
that disappeared or whose password changed.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from smartcity.broker.authfiles import render_auth_files, write_auth_files
from smartcity.db.connect import connect
from smartcity.db.queries import broker as broker_sql

__all__ = ["BrokerAuthSync", "pid_file_reloader", "signal_reload", "sync_once"]

log = logging.getLogger(__name__)

Reload = Callable[[], None]

# Seconds after a reload to ask for one more (see BrokerAuthSync._sync).
REPEAT_RELOAD_S = 0.3


def sync_once(conn: psycopg.Connection[Any], directory: Path, gid: int | None = None) -> bool:
    """Render the broker files from the registry into ``directory``; tell whether they changed."""
    return write_auth_files(directory, render_auth_files(conn), gid)


def signal_reload(pid: int) -> None:
    """Ask the broker process ``pid`` to re-read its configuration, password and ACL files."""
    os.kill(pid, signal.SIGHUP)


def pid_file_reloader(pid_file: Path) -> Reload:
    """Return a reload that signals the pid written in ``pid_file`` at the time of the reload."""
    def reload() -> None:
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError) as err:
            raise ProcessLookupError(f"no broker pid in {pid_file}: {err}") from None
        signal_reload(pid)
    return reload


class BrokerAuthSync:
    """Follow the registry from a thread (``start``/``stop``) or in the caller's (``run``)."""

    def __init__(self, database_url: str, directory: Path, reload: Reload | None = None, *,
                 gid: int | None = None, interval: float = 60.0, retry_s: float = 1.0) -> None:
        self.database_url = database_url
        self.directory = directory
        self.reload = reload
        self.gid = gid
        self.interval = interval
        self.retry_s = retry_s
        self.syncs = 0  # renders done
        self.changes = 0  # renders that changed the files (and reloaded the broker)
        self.last_change: float | None = None  # time.monotonic() of the last change
        self._again_at = math.inf  # when to ask the broker to reload once more (see _sync)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> BrokerAuthSync:
        """Sync now, then follow the registry from a thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="broker-auth-sync", daemon=True)
        self._thread.start()
        return self

    def wait_listening(self, timeout: float) -> bool:
        """Wait until the first sync is done and notifications are being received."""
        return self._listening.wait(timeout)

    def stop(self, timeout: float = 5) -> None:
        """Stop following the registry."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self, stop: threading.Event | None = None) -> None:
        """Follow the registry until ``stop`` (or ``self.stop()``) is set; reconnect when it drops."""
        while not self._stopped(stop):
            try:
                self._follow(stop)
            except psycopg.OperationalError as err:
                self._listening.clear()
                log.warning("broker file sync lost the database (%s); retrying in %.0f s",
                            str(err).strip(), self.retry_s)
                (stop or self._stop).wait(self.retry_s)

    def _stopped(self, stop: threading.Event | None) -> bool:
        return self._stop.is_set() or (stop is not None and stop.is_set())

    def _follow(self, stop: threading.Event | None) -> None:
        with connect(self.database_url, purpose="broker-sync", autocommit=True) as conn:
            conn.execute(broker_sql.LISTEN)
            # After LISTEN, so that a change committed meanwhile is either in this render or
            # notified after it.
            self._sync(conn)
            self._listening.set()
            due = time.monotonic() + self.interval
            while not self._stopped(stop):
                # Short waits so stop() is honoured quickly; a notification ends the wait at once.
                wait = max(0.0, min(0.5, due - time.monotonic(), self._again_at - time.monotonic()))
                notified = any(True for _ in conn.notifies(timeout=wait, stop_after=1))
                if notified or time.monotonic() >= due:
                    self._sync(conn)
                    due = time.monotonic() + self.interval
                elif time.monotonic() >= self._again_at:
                    self._again_at = math.inf
                    self._reload()

    def _sync(self, conn: psycopg.Connection[Any]) -> None:
        changed = sync_once(conn, self.directory, self.gid)
        self.syncs += 1
        if not changed:
            return
        self.changes += 1
        self.last_change = time.monotonic()
        log.info("broker files in %s rewritten from the registry", self.directory)
        self._reload()
        # Mosquitto clears its reload flag after re-reading, so a SIGHUP that lands during a reload
        # (two changes in quick succession) is lost and the broker keeps the older files. Asking
        # once more a moment later costs a re-read of unchanged files; missing it leaves a new
        # device refused (or a revoked one connected) until the next change.
        self._again_at = time.monotonic() + REPEAT_RELOAD_S

    def _reload(self) -> None:
        if self.reload is None:
            return
        try:
            self.reload()
        except OSError as err:
            # Not running now (or not ours to signal): it reads the new files when it starts.
            log.warning("broker files changed but the broker could not be reloaded: %s", err)
