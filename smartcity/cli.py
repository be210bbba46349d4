"""The `smartcity` command: a thin layer that parses, calls a library function and prints.

Domain errors become CLI errors (exit status 1, a one-line message) only here, at the edge.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click
import orjson
import psycopg
from pydantic import ValidationError

from simulators.encode import FORMATS, Format
from simulators.faults import FAULT_NAMES
from simulators.scenarios import SCENARIOS
from smartcity.catalog import DEVICE_KINDS, SITES
from smartcity.contract import Reason
from smartcity.db.connect import DatabaseNotConfigured, connect, database_url
from smartcity.devices import DeviceError, get_device, list_devices, register_device
from smartcity.logs import configure_logging
from smartcity.services import ServiceError
from smartcity.settings import Settings, UnknownSettingError, load_settings

if TYPE_CHECKING:  # the bench itself is imported only when `bench` runs
    from smartcity.bench.publisher import Client

__all__ = ["main"]


def _stop_event() -> threading.Event:
    """Return an event set by SIGINT or SIGTERM, so services can shut down cleanly."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        logging.getLogger("smartcity").info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    try:
        return connect(database_url(settings), purpose="cli", autocommit=True)
    except psycopg.OperationalError as err:
        raise click.ClickException(f"cannot connect to the database: {err}") from None


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

    raise SystemExit(run_platform(settings, _stop_event()))


@main.command()
@click.pass_obj
def ingest(settings: Settings) -> None:
    """Run one ingest worker (MQTT → TimescaleDB) until SIGINT/SIGTERM."""
    from ingest.service import run_ingest, tune_garbage_collector

    tune_garbage_collector()
    run_ingest(settings, _stop_event())


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
            run_rollup(settings, _stop_event())
            return
        done = catch_up_once(database_url(settings), settings.rollup, _stop_event())
    except TimezoneRefused as err:
        raise click.ClickException(f"SMARTCITY_ROLLUP__TIMEZONE: {err}") from None
    except RetentionError as err:
        raise click.ClickException(str(err)) from None
    if done is None:
        raise click.Abort()
    if as_json:
        _echo_json(done.to_dict())
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
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    url = database_url(settings) if (register or backfill) else None
    if url is not None:
        register_fleet(url, specs)
    result = run_plan(plan, specs, settings.broker, url, _stop_event())
    if as_json:
        _echo_json(dataclasses.asdict(result))
    else:
        click.echo(f"{result}")


class _BenchResult(Protocol):
    def to_dict(self) -> dict[str, Any]: ...
    def to_text(self) -> str: ...


_R = TypeVar("_R", bound=_BenchResult)


def _run_bench(run: Callable[[], _R], errors: type[Exception], as_json: bool) -> _R:
    """Run a benchmark, stopping cleanly on SIGTERM/Ctrl-C, and print its result (or --json)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds the run, which stops everything it started

    signal.signal(signal.SIGTERM, interrupt)
    try:
        result = run()
    except errors as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        raise click.Abort() from None
    if as_json:
        _echo_json(result.to_dict())
    else:
        click.echo(result.to_text())
    return result


@main.group()
def bench() -> None:
    """Benchmarks: they measure the platform on this machine and print figures."""


@bench.command("ingest")
@click.option("--messages", type=click.IntRange(min=1), default=300_000, show_default=True,
              help="Messages to publish (6 weather readings each).")
@click.option("--rate", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Total publish rate in msg/s over all publishers; 0: as fast as possible.")
@click.option("--publishers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Publisher processes.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Ingest worker processes (one share group).")
@click.option("--devices", type=click.IntRange(min=1), default=200, show_default=True,
              help="Weather stations bench-0001… to publish as.")
@click.option("--qos", type=click.IntRange(0, 1), default=1, show_default=True,
              help="MQTT QoS of the publishes.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600, show_default=True,
              help="Seconds after the first publish to wait for every reading.")
@click.option("--client", type=click.Choice(["paho", "raw"]), default="raw", show_default=True,
              help="Publisher MQTT client: a lean built-in one (~10x less CPU, leaving the cores to"
                   " what is measured) or paho.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_ingest(settings: Settings, messages: int, rate: float, publishers: int, workers: int,
                 devices: int, qos: int, timeout: float, client: Client, as_json: bool) -> None:
    """Publish weather telemetry through MQTT into ingest workers; report throughput and latency.

    Runs a private PostgreSQL and Mosquitto in a temporary directory unless SMARTCITY_DATABASE_URL /
    SMARTCITY_MQTT_URL are set. Exit status 1 when readings were lost, 0 otherwise (targets missed
    or not: it is a measurement).
    """
    from smartcity.bench import BenchError, IngestBenchConfig, run_ingest_bench

    try:
        config = IngestBenchConfig(messages, rate, publishers, workers, devices, qos, timeout,
                                   client=client)
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    result = _run_bench(lambda: run_ingest_bench(config, settings), BenchError, as_json)
    if result.lost:
        raise SystemExit(1)


@bench.command("query")
@click.option("--readings", type=click.IntRange(min=1), default=10_000_000, show_default=True,
              help="Readings of 1-minute demo-fleet data to load, ending now.")
@click.option("--backfill-readings", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Readings backfilled into the past before timing the refresher's catch-up.")
@click.option("--runs", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed runs of each query, after the warm-up.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_query(settings: Settings, readings: int, backfill_readings: int, runs: int,
                as_json: bool) -> None:
    """Time aggregates through the HTTP API against plain time_bucket SQL over raw readings.

    Loads the demo fleet's 1-minute data through the bulk path, refreshes the rollups, times three
    queries through the API and as raw SQL, then the refresher's catch-up after a backfill. Runs a
    private PostgreSQL and Mosquitto in a temporary directory unless SMARTCITY_DATABASE_URL /
    SMARTCITY_MQTT_URL are set.
    """
    from smartcity.bench.query import QueryBenchConfig, QueryBenchError, run_query_bench
    from smartcity.bench.query_report import RAW_NOTE

    config = QueryBenchConfig(readings, backfill_readings, runs)

    if as_json:
        click.echo(f"note: {RAW_NOTE}", err=True)
    _run_bench(lambda: run_query_bench(config, settings, progress=not as_json), QueryBenchError, as_json)


@bench.command("api")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=10, show_default=True,
              help="Seconds of load on each endpoint, after a 1-second warm-up.")
@click.option("--concurrency", type=click.IntRange(min=1), default=50, show_default=True,
              help="Concurrent keep-alive HTTP clients.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_api(settings: Settings, seconds: float, concurrency: int, as_json: bool) -> None:
    """Load the HTTP API (latest, a 24-hour aggregate) with concurrent clients while the fleet runs.

    Reports requests/s, p50/p99 and errors of each endpoint, the CPU used by each process, and a
    verdict against the target for latest. Runs a private PostgreSQL and Mosquitto in a temporary
    directory unless SMARTCITY_DATABASE_URL / SMARTCITY_MQTT_URL are set.
    """
    from smartcity.bench.api import ApiBenchConfig, ApiBenchError, run_api_bench

    config = ApiBenchConfig(seconds=seconds, concurrency=concurrency)

    _run_bench(lambda: run_api_bench(config, settings), ApiBenchError, as_json)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("migrate")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def db_migrate(settings: Settings, as_json: bool) -> None:
    """Apply pending schema migrations and seed the metric catalogue and sites."""
    from smartcity.launcher import migrate_database

    applied = migrate_database(database_url(settings))
    if as_json:
        _echo_json({"applied": applied})
    else:
        click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


@db.command("retention")
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def db_retention(settings: Settings, dry_run: bool, as_json: bool) -> None:
    """Drop the chunks of raw readings and rollups past their age (SMARTCITY_RETENTION__…)."""
    from smartcity.db.retention import RetentionError, enforce_retention

    with _connect(settings) as conn:
        try:
            report = enforce_retention(conn, settings.retention, dry_run=dry_run)
        except RetentionError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        _echo_json(report.to_dict())
    else:
        click.echo(report.to_text())


@main.group()
def devices() -> None:
    """Register and inspect devices."""


@devices.command("add")
@click.option("--id", "device_id", required=True, help="Device id, ^[a-z0-9][a-z0-9_-]{2,63}$.")
@click.option("--kind", required=True, type=click.Choice(list(DEVICE_KINDS)), help="Device kind.")
@click.option("--site", "site_id", required=True, type=click.Choice(list(SITES)), help="Site id.")
@click.option("--lat", type=float, help="Latitude (with --lon).")
@click.option("--lon", type=float, help="Longitude (with --lat).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def devices_add(settings: Settings, device_id: str, kind: str, site_id: str, lat: float | None,
                lon: float | None, as_json: bool) -> None:
    """Register a device and print its MQTT credentials (the password is shown only once)."""
    with _connect(settings) as conn:
        reg = register_device(conn, device_id, kind, site_id, lat, lon)
    if as_json:
        _echo_json(dataclasses.asdict(reg))
    else:
        click.echo(f"registered {reg.device_id} ({reg.kind} at {reg.site_id})\n"
                   f"mqtt username: {reg.mqtt_username}\nmqtt password: {reg.mqtt_password}"
                   "  (shown once)")


@devices.command("list")
@click.option("--site", "site_id", type=click.Choice(list(SITES)), help="Only this site.")
@click.option("--kind", type=click.Choice(list(DEVICE_KINDS)), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def devices_list(settings: Settings, site_id: str | None, kind: str | None, as_json: bool) -> None:
    """List registered devices."""
    with _connect(settings) as conn:
        records = list_devices(conn, site_id, kind)
    if as_json:
        _echo_json([r.to_dict() for r in records])
        return
    for r in records:
        seen = r.last_seen.isoformat(timespec="seconds") if r.last_seen else "never"
        click.echo(f"{r.device_id:32} {r.kind:22} {r.site_id:18} {r.status:8} last seen {seen}")


@devices.command("show")
@click.argument("device_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def devices_show(settings: Settings, device_id: str, as_json: bool) -> None:
    """Show one device."""
    with _connect(settings) as conn:
        record = get_device(conn, device_id)
    if record is None:
        raise click.ClickException(f"no device {device_id!r}")
    if as_json:
        _echo_json(record.to_dict())
    else:
        for key, value in record.to_dict().items():
            click.echo(f"{key:12} {value}")


@main.group()
def quarantine() -> None:
    """Inspect rejected input and replay readings of devices registered since."""


@quarantine.command("list")
@click.option("--reason", type=click.Choice([r.value for r in Reason]),
              help="Only messages with a part rejected for this reason.")
@click.option("--device", "device_id", help="Only this device id.")
@click.option("--all", "show_all", is_flag=True, help="Include items already replayed.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many items, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def quarantine_list(settings: Settings, reason: str | None, device_id: str | None, show_all: bool,
                    limit: int, as_json: bool) -> None:
    """List quarantined messages (pending ones unless --all), newest first.

    --reason matches a message with any part rejected for that reason.
    """
    from ingest.replay import list_quarantine

    with _connect(settings) as conn:
        records = list_quarantine(conn, reason=reason, device_id=device_id,
                                  pending_only=not show_all, limit=limit)
    if as_json:
        _echo_json([r.to_dict() for r in records])
        return
    for r in records:
        # One line per message: its reasons with part counts when there is more than one part,
        # the size as received (and what was kept, when cut), then the first part's detail.
        reasons = r.reason if r.reasons == {r.reason: 1} else ",".join(
            f"{code}×{count}" for code, count in r.reasons.items())
        size = f"{r.payload_size:>6} B"
        if r.payload_kept < r.payload_size:
            size += f" (kept {r.payload_kept})"
        notes = (f" replay of #{r.replay_of}" if r.replay_of else "") + (
            f" replayed {r.replayed_at.isoformat(timespec='seconds')}" if r.replayed_at else "")
        click.echo(f"{r.id:>8} {r.received_at.isoformat(timespec='seconds')} {reasons:24}"
                   f" {r.device_id or '-':32} {size}  {r.detail}{notes}")


@quarantine.command("replay")
@click.option("--device", "device_id", help="Only this device id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def quarantine_replay(settings: Settings, device_id: str | None, as_json: bool) -> None:
    """Replay readings of devices registered since.

    Stores the quarantined messages of devices that were unknown when they arrived and are
    registered now; messages of devices still unknown stay pending.
    """
    from ingest.replay import replay_unknown_devices
    from ingest.validate import time_window

    window = time_window(settings.ingest, settings.retention.raw_days)
    try:
        result = replay_unknown_devices(database_url(settings), window, device_id=device_id)
    except psycopg.OperationalError as err:
        # Each chunk commits on its own, so what was replayed before the failure stays replayed.
        raise click.ClickException(f"replay stopped: {str(err).strip()}; run it again to resume"
                                   ) from None
    if as_json:
        _echo_json(result.to_dict())
        return
    out = result.to_dict()
    click.echo(f"replayed {out['messages_replayed']} messages: {out['readings_stored']} readings stored,"
               f" {out['readings_duplicate']} duplicates, {out['quarantined']} parts quarantined again;"
               f" {out['still_unknown']} messages still from unregistered devices")
