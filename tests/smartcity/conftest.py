"""Fixtures of the planner's tests: the water-meter lab in the session's cluster."""

from __future__ import annotations

from collections.abc import Iterator

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
