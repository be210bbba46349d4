"""`smartcity dashboards build|publish`: the Grafana dashboards as code, and pushing them to a Grafana."""

from __future__ import annotations

from pathlib import Path

import click

from smartcity.cli.context import echo_json
from smartcity.settings import Settings

__all__ = ["dashboards"]


@click.group()
def dashboards() -> None:
    """Grafana dashboards: generate their JSON from the Python that defines them, publish them."""


@dashboards.command("build")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 if the JSON on disk differs from what the code builds.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the JSON goes (default: dashboards/json in the source tree).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def dashboards_build(check: bool, directory: Path | None, as_json: bool) -> None:
    """Regenerate dashboards/json/*.json (keys sorted, stable ids) from dashboards/*.py."""
    from dashboards.build import JSON_DIR, write_dashboards  # the SDK loads only for this command

    result = write_dashboards(directory or JSON_DIR, check=check)
    stale = bool(result.written or result.unexpected)
    if as_json:
        echo_json({"directory": str(result.directory), "check": check, "stale": check and stale,
                   "written": [] if check else list(result.written),
                   "out_of_date": list(result.written) if check else [],
                   "unchanged": list(result.unchanged), "unexpected": list(result.unexpected)})
    else:
        verb = "out of date" if check else "written"
        for name in result.written:
            click.echo(f"{verb}: {result.directory / name}")
        for name in result.unexpected:
            click.echo(f"not built by any dashboard: {result.directory / name}")
        if not result.written:
            click.echo(f"{len(result.unchanged)} dashboard(s) up to date in {result.directory}")
    if check and stale:
        raise click.ClickException("dashboard JSON is stale: run `smartcity dashboards build` and commit it")


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
