"""`smartcity devices command` and `devices commands`: send a command to an actuator, list outcomes.

Sending is `smartcity.commands.issue_command`, the path ``POST /api/v1/devices/{id}/commands``
takes: checked, stored, then published at QoS 1 with the API's broker login
(``SMARTCITY_API__MQTT_URL``, else ``SMARTCITY_MQTT_URL``'s), which is the login that may write
commands. The command is recorded as issued by ``cli:<login name>``.
"""

from __future__ import annotations

import getpass
from typing import Any

import click
from pydantic import ValidationError

from smartcity.broker_url import BrokerAddress
from smartcity.cli.context import connect_database, echo_json
from smartcity.commands import CommandError, CommandNotSent, issue_command, list_commands
from smartcity.contract import ScheduleEntry
from smartcity.mqtt_client import BrokerUnavailable, ServiceClient
from smartcity.settings import Settings

__all__ = ["device_command", "device_commands", "parse_schedule_entry"]

_CONNECT_TIMEOUT_S = 10.0
_PUBACK_TIMEOUT_S = 5.0


def parse_schedule_entry(text: str) -> ScheduleEntry:
    """Return the entry of ``--at HH:MM=ACTION`` (ACTION: on, off or dim:LEVEL).

    Raises:
        click.BadParameter: not of that form, or not a valid entry.
    """
    at, sep, action = text.partition("=")
    name, _, level = action.partition(":")
    if not sep or not name:
        raise click.BadParameter(f"{text!r}: write HH:MM=on, HH:MM=off or HH:MM=dim:LEVEL")
    try:
        return ScheduleEntry(at=at, action=name, level=int(level) if level else None)
    except (ValidationError, ValueError) as err:
        reason = err.errors()[0]["msg"] if isinstance(err, ValidationError) else str(err)
        raise click.BadParameter(f"{text!r}: {reason}") from None


def _publisher(address: BrokerAddress) -> Any:
    """Return a Publish that connects once, publishes at QoS 1 and waits for the PUBACK."""
    def publish(topic: str, payload: bytes) -> bool:
        # No client id: the broker assigns one (or binds it to the login), so two operators'
        # commands at once do not take each other's session.
        client = ServiceClient(address, client_id="")
        client.start()
        try:
            if (why := client.first_answer(_CONNECT_TIMEOUT_S)) is not None:
                raise ConnectionError(f"broker {address.host}:{address.port}: {why}")
            return client.publish_confirmed(topic, payload, timeout_s=_PUBACK_TIMEOUT_S)
        except BrokerUnavailable as err:
            raise ConnectionError(str(err)) from err
        finally:
            client.stop()

    return publish


def _show(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in row.items() if key != "id"}


@click.command("command")
@click.argument("device_id")
@click.option("--action", required=True, type=click.Choice(["on", "off", "dim", "schedule"]),
              help="What the device is to do.")
@click.option("--level", type=click.IntRange(0, 100), help="Lamp level in % (dim only).")
@click.option("--at", "entries", multiple=True, metavar="HH:MM=ACTION",
              help="A schedule's switching time, site-local: 18:00=on, 23:30=dim:30 (repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print the stored command as JSON.")
@click.pass_obj
def device_command(settings: Settings, device_id: str, action: str, level: int | None,
                   entries: tuple[str, ...], as_json: bool) -> None:
    """Send a command to an actuator (street light): stored, then published at QoS 1."""
    schedule = tuple(parse_schedule_entry(entry) for entry in entries) or None
    with connect_database(settings) as conn:
        try:
            row = issue_command(conn, device_id, action, level=level, schedule=schedule,
                                issued_by=f"cli:{getpass.getuser()}",
                                timeout_s=settings.api.command_timeout_s,
                                publish=_publisher(settings.service_broker("api")))
        except CommandNotSent as err:
            raise click.ClickException(f"{err} (stored as {err.record['command_id']}, not_sent)") from None
        except ValidationError as err:
            raise click.UsageError(err.errors()[0]["msg"]) from None
        except CommandError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(_show(row))
    else:
        sent = "acknowledged by the broker" if row["published_at"] else "published (no PUBACK yet)"
        click.echo(f"{row['command_id']}: {action} to {device_id}, {sent}; outcome pending until"
                   f" {row['deadline'].isoformat()}")


@click.command("commands")
@click.argument("device_id")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Show at most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print the commands as JSON.")
@click.pass_obj
def device_commands(settings: Settings, device_id: str, limit: int, as_json: bool) -> None:
    """List the commands sent to a device, newest first, with their outcomes."""
    with connect_database(settings) as conn:
        try:
            rows = list_commands(conn, device_id, limit=limit)
        except CommandError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json([_show(row) for row in rows])
        return
    for row in rows:
        what = row["action"] + (f" {row['level']}%" if row["level"] is not None else "")
        click.echo(f"{row['issued_at'].isoformat()}  {row['command_id']}  {what:<9}  "
                   f"{row['outcome']:<12}  {row['detail'] or ''}")
