"""`smartcity alerts`: the rule file and the evaluator.

The group lives here; its commands live beside it by job (``alert_rules``: checking and listing the
rule file; ``alert_service``: the evaluator service) and join the group when ``smartcity.cli`` imports them.
"""

from __future__ import annotations

import click

__all__ = ["alerts"]


@click.group()
def alerts() -> None:
    """Alert rules (flood, haze, silent devices) and the evaluator that judges them."""
