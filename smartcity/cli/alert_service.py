"""`smartcity alerts run`: the alert evaluator, as a service or one cycle at a time."""

from __future__ import annotations

import logging

import click

from smartcity.alerts.rulefile import RuleFileError, load_rules
from smartcity.cli.alerts import alerts
from smartcity.cli.context import echo_json, stop_event
from smartcity.db.connect import service_database_url
from smartcity.settings import Settings

__all__ = ["alerts_run"]

log = logging.getLogger(__name__)


@alerts.command("run")
@click.option("--once", is_flag=True, 
              help="Judge every rule once, send the outboxes, print what was done and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the result as JSON.")
@click.pass_obj
def alerts_run(settings: Settings, once: bool, as_json: bool) -> None:
    """Judge the alert rules every SMARTCITY_ALERTS__INTERVAL_S until SIGINT/SIGTERM."""
    from smartcity.alerts.service import AlertService

    if as_json and not once:
        raise click.UsageError("--json needs --once (the service logs, it prints no records)")
    try:
        rules = load_rules(settings.alerts.rules_file)
    except RuleFileError as err:
        raise click.ClickException(str(err)) from None
    config = settings.alerts
    with AlertService(service_database_url(settings, "alerts"), rules, config,
                      broker=settings.service_broker("alerts")) as service:
        if once:
            if service.publisher is not None:
                service.publisher.wait_connected(5.0)
            cycle = service.cycle()
            if as_json:
                echo_json(cycle.to_dict())
                return
            transitions = sum(len(r.transitions) for r in cycle.runs)
            click.echo(f"judged {len(cycle.runs)} rules in {cycle.seconds:.2f} s: {transitions} transitions,"
                       f" {cycle.published} published, {cycle.delivered} webhooks delivered"
                       + (f"; failed: {', '.join(sorted(cycle.failed))}" if cycle.failed else ""))
            return
        if config.metrics_port:
            service.metrics.serve(config.metrics_host, config.metrics_port)
            log.info("alerts metrics at http://%s:%d/metrics", config.metrics_host, config.metrics_port)
        log.info("alert evaluator: %d rules, a cycle every %g s", len(service.rules), config.interval_s)
        service.run(stop_event())
