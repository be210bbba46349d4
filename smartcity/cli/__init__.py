"""The `smartcity` command: a thin layer that parses, calls a library function and prints.

Domain errors become CLI errors (exit status 1, a one-line message) only here, at the edge. The
services and the simulator are here; the admin groups (`db`, `devices`, `quarantine`) and the
benchmarks have a module each.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click
import psycopg
from pydantic import ValidationError

from simulators.encode import FORMATS, Format
from simulators.faults import FAULT_NAMES
from simulators.scenarios import SCENARIOS
from smartcity.cli import alert_rules  # noqa: F401  (its commands join the alerts group)
from smartcity.cli import alert_service as _alert_service  # noqa: F401  (adds `alerts run`)
from smartcity.cli.admin import db, devices, quarantine
from smartcity.cli.alerts import alerts
from smartcity.cli.apikeys import apikeys
from smartcity.cli.bench import bench
from smartcity.cli.broker import broker
from smartcity.cli.commands import device_command, device_commands
from smartcity.cli.context import echo_json, stop_event
from smartcity.cli.dashboards import dashboards
from smartcity.db.connect import DatabaseNotConfigured, database_url
from smartcity.devices import DeviceError
from smartcity.logs import configure_logging
from smartcity.services import ServiceError
from smartcity.settings import Settings, UnknownSettingError, load_settings

__all__ = ["main"]


class _Group(click.Group):
    """Turns the domain's expected errors into one-line CLI errors."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DeviceError, DatabaseNotConfigured, ServiceError) as err:
            raise click.ClickException(str(err)) from None
        except psycopg.OperationalError as err:
            raise click.ClickException(f"cannot reach the database: {str(err).strip()}") from None


@click.group(cls=_Group)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Smart-city sensor platform for Kabupaten Paser: MQTT ingest, TimescaleDB, HTTP API."""
    try:
        settings = load_settings()
    except ValidationError as err:
        raise click.ClickException(f"invalid settings:\n{err}") from None
    except UnknownSettingError as err:
        raise click.ClickException(str(err)) from None
    configure_logging(settings.log_level, settings.log_format)
    ctx.obj = settings


@main.command()
@click.pass_obj
def up(settings: Settings) -> None:
    """Run the whole platform: embedded services, ingest, API and the simulated demo fleet."""
    from smartcity.launcher import run_platform

    raise SystemExit(run_platform(settings, stop_event()))


@main.command()
@click.pass_obj
def ingest(settings: Settings) -> None:
    """Run one ingest worker (MQTT → TimescaleDB) until SIGINT/SIGTERM."""
    from ingest.service import run_ingest, tune_garbage_collector

    tune_garbage_collector()
    run_ingest(settings, stop_event())


@main.command()
@click.pass_obj
def api(settings: Settings) -> None:
    """Serve the HTTP API until SIGINT/SIGTERM."""
    from api.server import run_api

    run_api(settings)


@main.command()
@click.option("--once", is_flag=True, help="Catch up once, print what was refreshed and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the result as JSON.")
@click.pass_obj
def rollup(settings: Settings, once: bool, as_json: bool) -> None:
    """Keep the rollups current (refresh what ingest marked) until SIGINT/SIGTERM."""
    from ingest.rollup import TimezoneRefused, catch_up_once, run_rollup
    from smartcity.db.retention import RetentionError

    if as_json and not once:
        raise click.UsageError("--json needs --once (the service logs, it prints no records)")
    try:
        if not once:
            run_rollup(settings, stop_event())
            return
        done = catch_up_once(database_url(settings), settings.rollup, stop_event())
    except TimezoneRefused as err:
        raise click.ClickException(f"SMARTCITY_ROLLUP__TIMEZONE: {err}") from None
    except RetentionError as err:
        raise click.ClickException(str(err)) from None
    if done is None:
        raise click.Abort()
    if as_json:
        echo_json(done.to_dict())
        return
    r = done.refreshed
    click.echo(f"refreshed {r.marks} pending hours in {r.rounds} rounds ({r.seconds:.2f} s): {r.minutes}"
               f" minute, {r.hours} hour and {r.days} day rollups rebuilt"
               + (f"; {r.skipped} hours older than raw retention left alone" if r.skipped else "")
               + (f"; daily rollups rebuilt in {done.timezone}" if done.days_rebuilt else "")
               + (f"; waited {done.waited_s:.1f} s for another refresher" if done.waited_s else ""))


def _pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, float]:
    """Parse repeated ``NAME=NUMBER`` options (``NAME`` alone means 1)."""
    pairs: dict[str, float] = {}
    for value in values:
        name, _, number = value.partition("=")
        try:
            pairs[name] = float(number) if number else 1.0
        except ValueError:
            raise click.BadParameter(f"{value!r} is not NAME=NUMBER", ctx, param) from None
    return pairs


@main.command()
@click.option("--demo", "use_demo", is_flag=True, help="Run the Paser demo fleet (the default).")
@click.option("--size", type=click.IntRange(min=1), help="Run a generated fleet of this many devices.")
@click.option("--kind-mix", multiple=True, callback=_pairs, metavar="KIND=WEIGHT",
              help="Weight of a device kind in a generated fleet (repeat; default: all kinds evenly).")
@click.option("--site", "sites", multiple=True, callback=_pairs, metavar="SITE[=WEIGHT]",
              help="Place a generated fleet in these districts (repeat; default: all ten).")
# Scenario, fault and format names come from the simulators' own tables, so an option never
# offers what the simulators cannot play, nor hides what they can.
@click.option("--scenario", type=click.Choice(list(SCENARIOS)), default="normal", show_default=True,
              help="What the days look like (see README).")
@click.option("--fault", "faults", multiple=True, callback=_pairs, metavar="NAME=P",
              help=f"Inject a fault with probability P per report (repeat): {', '.join(FAULT_NAMES)}.")
@click.option("--qos", type=click.Choice(["0", "1"]), default="1", show_default=True)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True,
              help="Telemetry payload format.")
@click.option("--interval", type=click.FloatRange(min=0.01), help="Seconds between reports.")
@click.option("--duration", type=click.FloatRange(min=0), help="Stop after this many seconds.")
@click.option("--backfill", metavar="DURATION",
              help="Store this much history (e.g. 30d) in bulk, then exit; registers the fleet.")
@click.option("--seed", type=int, help="Random seed (same seed, same readings).")
@click.option("--register", is_flag=True, help="Register the fleet's devices first.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def simulate(settings: Settings, use_demo: bool, size: int | None, kind_mix: dict[str, float],
             sites: dict[str, float], scenario: str, faults: dict[str, float], qos: str, fmt: Format,
             interval: float | None, duration: float | None, backfill: str | None,
             seed: int | None, register: bool, as_json: bool) -> None:
    """Publish simulated sensor readings over MQTT like real devices, or backfill history."""
    from simulators.backfill import parse_duration
    from simulators.fleet import with_credentials
    from simulators.service import SimulationPlan, fleet_for, run_plan
    from smartcity.launcher import register_fleet

    try:
        plan = SimulationPlan(
            seed=settings.simulator.seed if seed is None else seed,
            interval_s=interval or (300.0 if backfill else settings.simulator.interval_s),
            size=None if use_demo else size, mix=kind_mix or None, sites=sites or None,
            scenario=scenario, qos=int(qos), fmt=fmt, faults=faults, duration_s=duration,
            backfill_s=parse_duration(backfill) if backfill else None,
        )
        plan.fault_rates()
        specs = fleet_for(plan)
        if settings.simulator.fleet_secret is not None:
            specs = with_credentials(specs, settings.simulator.fleet_secret.get_secret_value().encode())
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    url = database_url(settings) if (register or backfill) else None
    if url is not None:
        register_fleet(url, specs)
    result = run_plan(plan, specs, settings.broker, url, stop_event())
    if as_json:
        echo_json(dataclasses.asdict(result))
    else:
        click.echo(f"{result}")


main.add_command(alerts)
main.add_command(apikeys)
main.add_command(bench)
main.add_command(broker)
main.add_command(dashboards)
main.add_command(db)
main.add_command(devices)
devices.add_command(device_command)  # `devices command` and `devices commands`: actuators
devices.add_command(device_commands)
main.add_command(quarantine)
