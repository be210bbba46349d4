"""`smartcity alerts rules` and `smartcity alerts check`: list or validate a rule file.

A bad file prints every problem as ``PATH:LINE: field: why`` (the way compilers report, so editors
jump to the line) and exits 1.
"""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.alerts.describe import describe_rule
from smartcity.alerts.rulefile import DEFAULT_RULES_PATH, RuleFileError, load_rules
from smartcity.alerts.rules import RuleFile
from smartcity.cli.alerts import alerts
from smartcity.cli.context import echo_json
from smartcity.settings import Settings

__all__ = ["check", "rules"]


def _load_or_exit(path: Path) -> RuleFile:
    try:
        return load_rules(path)
    except RuleFileError as err:
        for line in err.lines():
            click.echo(line, err=True)
        count = len(err.problems)
        raise click.ClickException(f"{count} problem{'s' if count != 1 else ''} in {path}") from None


def _rules_path(settings: Settings, path: Path | None) -> Path:
    return path or settings.alerts.rules_file or DEFAULT_RULES_PATH


@alerts.command()
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False),
              help="The rule file (default: SMARTCITY_ALERTS__RULES_FILE, else the shipped Paser rules).")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON (as the API lists them).")
@click.pass_obj
def rules(settings: Settings, path: Path | None, as_json: bool) -> None:
    """List the alert rules of the rule file, validated."""
    path = _rules_path(settings, path)
    loaded = _load_or_exit(path)
    if as_json:
        echo_json({"file": str(path), **loaded.model_dump(mode="json", by_alias=True)})
        return
    click.echo(f"{path}: {len(loaded.rules)} rules")
    width = max((len(rule.id) for rule in loaded.rules), default=0)
    for rule in loaded.rules:
        off = "" if rule.enabled else " (disabled)"
        click.echo(f"{rule.id:<{width}}  {rule.severity:<8}  {describe_rule(rule)}{off}")


@alerts.command()
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
def check(path: Path) -> None:
    """Validate a rule file: print every problem (PATH:LINE: field: why) or how many rules it holds."""
    loaded = _load_or_exit(path)
    click.echo(f"{path}: {len(loaded.rules)} rules, no problems")
