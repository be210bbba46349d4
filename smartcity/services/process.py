"""Processes of the embedded services: free ports, waiting for a listener, running a command."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["ServiceError", "free_port", "port_is_open", "run_command", "wait_for_port"]

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


def run_command(command: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and return its result.

    Raises:
        ServiceError: it exited with a non-zero status (its output is in the message).
    """
    result: subprocess.CompletedProcess[str] = subprocess.run(
        command, capture_output=True, text=True, **kwargs
    )
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(map(str, command))} failed:\n{result.stderr or result.stdout}")
    return result
