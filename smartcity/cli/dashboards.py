"""`smartcity dashboards publish`: the dashboards, their folder and data source, pushed to a Grafana."""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.cli.context import echo_json
from smartcity.settings import Settings

__all__ = ["dashboards"]


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code: publish them to a running Grafana."""


@dashboards.command("publish")
@click.option("--dir", "directory", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Dashboards JSON to push (default: dashboards/json, what `dashboards build` writes).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def dashboards_publish(settings: Settings, directory: Path | None, as_json: bool) -> None:
    """Create or update the data source, the folder and every dashboard in the Grafana of
    SMARTCITY_GRAFANA__URL (token: SMARTCITY_GRAFANA__TOKEN). Running it again updates, never duplicates."""
    from dashboards.publish import DASHBOARDS_DIR, PublishError, connect_grafana, publish

    try:
        report = publish(connect_grafana(settings.grafana), settings.grafana, directory or DASHBOARDS_DIR)
    except PublishError as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(report.to_dict())
        return
    click.echo(f"{report.url}: data source {report.datasource}, folder {report.folder}")
    for pushed in report.dashboards:
        click.echo(f"  {pushed['uid']}  version {pushed['version']}  {pushed['title']}  ({pushed['file']})")
