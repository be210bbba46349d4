"""`smartcity bench …`: the benchmarks, each a thin call of a run in smartcity.bench that prints
its figures."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

from smartcity.cli.context import echo_json
from smartcity.settings import Settings

if TYPE_CHECKING:  # the bench itself is imported only when `bench` runs
    from smartcity.bench.publisher import Client

__all__ = ["bench"]


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
        echo_json(result.to_dict())
    else:
        click.echo(result.to_text())
    return result


@click.group()
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
@click.option("--auth", type=click.Choice(["on", "off", "both"]), default="on", show_default=True,
              help="Broker logins: on (the registry's accounts and ACLs, as the platform runs), off"
                   " (anonymous), or both: off and on alternately, compared (needs the bench's own"
                   " broker).")
@click.option("--runs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --auth both: runs of each side (medians compared).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_ingest(settings: Settings, messages: int, rate: float, publishers: int, workers: int,
                 devices: int, qos: int, timeout: float, client: Client, auth: str, runs: int,
                 as_json: bool) -> None:
    """Publish weather telemetry through MQTT into ingest workers; report throughput and latency.

    Runs a private PostgreSQL and Mosquitto in a temporary directory unless SMARTCITY_DATABASE_URL /
    SMARTCITY_MQTT_URL are set. Exit status 1 when readings were lost, 0 otherwise (targets missed
    or not: it is a measurement).
    """
    from smartcity.bench import BenchError, IngestBenchConfig, run_auth_comparison, run_ingest_bench

    if runs > 1 and auth != "both":
        raise click.UsageError("--runs needs --auth both (one run per side otherwise)")
    if auth != "off" and not settings.uses_embedded_broker:
        raise click.UsageError(f"--auth {auth} needs the bench's own broker: with SMARTCITY_MQTT_URL"
                               " set, run with --auth off (everything logs in with that URL's login)")
    try:
        config = IngestBenchConfig(messages, rate, publishers, workers, devices, qos, timeout,
                                   client=client, auth=auth != "off")
    except ValueError as err:
        raise click.UsageError(str(err)) from None

    if auth == "both":
        compared = _run_bench(lambda: run_auth_comparison(config, settings, runs), BenchError, as_json)
        if compared.lost:
            raise SystemExit(1)
        return
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
@click.option("--panel-days", type=click.IntRange(1, 90), default=90, show_default=True,
              help="Range of the dashboard panels timed last; 15-minute history is loaded before the"
                   " 1-minute data when it spans less.")
@click.option("--panel-runs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed runs of each dashboard panel, after one warm-up run.")
@click.option("--panel-devices", type=click.Choice(["first", "all"]), default="first",
              show_default=True,
              help="Device variables of the panels: the first device, or All (as the dashboards open).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_query(settings: Settings, readings: int, backfill_readings: int, runs: int,
                panel_days: int, panel_runs: int, panel_devices: str, as_json: bool) -> None:
    """Time aggregates through the HTTP API against plain time_bucket SQL over raw readings.

    Loads the demo fleet's 1-minute data through the bulk path, refreshes the rollups, times three
    queries through the API and as raw SQL, then the refresher's catch-up after a backfill, then every
    dashboard panel over --panel-days as Grafana sends it (smartcity_grafana's rights). Runs a
    private PostgreSQL and Mosquitto in a temporary directory unless SMARTCITY_DATABASE_URL /
    SMARTCITY_MQTT_URL are set.
    """
    from smartcity.bench.query import QueryBenchConfig, QueryBenchError, run_query_bench
    from smartcity.bench.query_report import RAW_NOTE

    config = QueryBenchConfig(readings, backfill_readings, runs, panel_days=panel_days,
                              panel_runs=panel_runs, panel_every_device=panel_devices == "all")

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


@bench.command("alerts")
@click.option("--devices", type=click.IntRange(min=1), default=3000, show_default=True,
              help="Devices of the demo kinds, registered and given 1-minute readings.")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=6.0, show_default=True,
              help="Hours of 1-minute readings stored, ending now.")
@click.option("--catch-up-hours", type=click.FloatRange(min=0, min_open=True), default=3.0, show_default=True,
              help="Hours judged by the catch-up cycle (as after an outage); at most --hours.")
@click.option("--cycles", type=click.IntRange(min=1), default=10, show_default=True,
              help="Steady-state cycles timed, each one minute later.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def bench_alerts(settings: Settings, devices: int, hours: float, catch_up_hours: float, cycles: int,
                 as_json: bool) -> None:
    """Time the alert evaluator: 20 rules over a fleet, a steady-state cycle and a catch-up.

    Runs a private PostgreSQL in a temporary directory unless SMARTCITY_DATABASE_URL is set.
    """
    from smartcity.bench.alerts import AlertBenchConfig, AlertBenchError, run_alert_bench

    try:
        config = AlertBenchConfig(devices, hours, catch_up_hours, cycles)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    _run_bench(lambda: run_alert_bench(config, settings, progress=not as_json), AlertBenchError, as_json)
