"""Fixtures: the planner's water-meter lab in the session's cluster; a private temporary folder."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartcity.services import EmbeddedPostgres
from tests.smartcity.aggregate_lab import Lab


@pytest.fixture(scope="module")
def lab(postgres: EmbeddedPostgres) -> Iterator[Lab]:
    """The fleet registered once per module (hypothesis runs many examples on it; each resets it)."""
    lab = Lab.open(postgres.url)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def fresh_lab(lab: Lab) -> Lab:
    """The lab with no readings, rollups or marks, days in Asia/Makassar."""
    lab.reset()
    return lab


@pytest.fixture
def bench_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary folder of this test's own, as TMPDIR for it and its child processes.

    A benchmark's temporary stack must be gone when it ends; looking in a folder nobody else
    uses tells that apart from another benchmark running on the machine at the same time.
    Readable by all (0755), so the embedded cluster's ``postgres`` user can enter it as root.
    """
    path = Path(tempfile.mkdtemp(prefix="smartcity-test-tmp-"))
    path.chmod(0o755)
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

