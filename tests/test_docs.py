"""The README documents every command the CLI has (settings are checked against .env.example)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from smartcity.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        names.append(f"{prefix}{name}")
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix}{name} ")
    return names


@pytest.mark.parametrize("command", _commands(main))
def test_every_command_is_in_the_readme(command: str) -> None:
    *group, name = command.split()
    # Written as `smartcity up`, `ingest`, `devices add|list|show`, `smartcity db migrate` or, in a
    # nested group, `broker accounts add|list|revoke`.
    prefix = rf"(smartcity )?{' '.join(group)} [a-z|]*\b" if group else r"(smartcity )?"
    assert re.search(rf"`{prefix}{name}\b", README), f"README does not mention {command!r}"
