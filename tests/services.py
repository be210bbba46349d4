"""Helpers the fixtures and tests share: waiting on conditions, a scratch directory postgres can use."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

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
