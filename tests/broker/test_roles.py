"""The README's table of broker rights is the roles table in code, row by row."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smartcity.broker.roles import DEVICE_RIGHTS, ROLES, Right, Role, is_valid_account_name
from smartcity.catalog import is_valid_device_id

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _row(label: str) -> list[str]:
    rows = [line for line in README.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"README has {len(rows)} rows for {label}"
    return sorted(re.findall(r"`((?:read|write) [^`]+)`", rows[0].split("|")[2]))


def _words(rights: tuple[Right, ...]) -> list[str]:
    return sorted(f"{r.access} {r.topic}" for r in rights)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_row_lists_exactly_its_rights(role: Role) -> None:
    assert _row(f"role `{role.value}`") == _words(ROLES[role][0])


def test_the_device_row_lists_exactly_the_device_patterns() -> None:
    assert _row("every device (`%u` = its id)") == _words(DEVICE_RIGHTS)


def test_account_names_cannot_be_device_ids_the_device_rules_would_reach() -> None:
    # Every valid account name is also a syntactically valid device id, which is why registration
    # must refuse the prefix (tests/broker/test_accounts.py) rather than rely on the id pattern.
    assert is_valid_account_name("smartcity-ingest-1") and is_valid_device_id("smartcity-ingest-1")
    assert not is_valid_account_name("ingest-1") and not is_valid_account_name("smartcity-")
