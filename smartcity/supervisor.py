"""Child processes kept running the way systemd's ``Restart=`` and ``StartLimitBurst=`` keep them.

A child that dies is restarted after a backoff (doubling, capped, reset once it ran stably) while
the rest stays up; a crash loop (too many crashes of one child within a window) is reported to the
caller, which stops everything. Used by ``smartcity up`` (and ``ChildProcess`` by the benchmarks).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from smartcity.services import EmbeddedMosquitto, ServiceError
from smartcity.settings import SupervisorSettings

__all__ = [
    "BrokerProcess",
    "ChildProcess",
    "CrashLoop",
    "RestartBackoff",
    "Supervised",
    "Supervisor",
]

log = logging.getLogger(__name__)


@dataclass
class ChildProcess:
    """A `smartcity` subcommand running as a child process."""

    name: str
    args: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() of the last start
    stdout: int | None = None  # a file descriptor for the child's stdout; None: this process's

    def start(self, env: dict[str, str]) -> None:
        """Start ``python -m smartcity <args>`` with ``env``."""
        self.process = subprocess.Popen([sys.executable, "-m", "smartcity", *self.args], env=env,
                                        stdout=self.stdout)
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
