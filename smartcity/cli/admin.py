"""`smartcity db`, `devices` and `quarantine`: the schema, the device registry and rejected input."""

from __future__ import annotations

import dataclasses

import click
import psycopg

from smartcity.catalog import DEVICE_KINDS, SITES
from smartcity.cli.context import connect_database, echo_json
from smartcity.contract import Reason
from smartcity.db.connect import database_url
from smartcity.devices import get_device, list_devices, register_device
from smartcity.settings import Settings

__all__ = ["db", "devices", "quarantine"]


@click.group()
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
        echo_json({"applied": applied})
    else:
        click.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


@db.command("retention")
@click.option("--dry-run", is_flag=True, help="List what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def db_retention(settings: Settings, dry_run: bool, as_json: bool) -> None:
    """Drop the chunks of raw readings and rollups past their age (SMARTCITY_RETENTION__…)."""
    from smartcity.db.retention import RetentionError, enforce_retention

    with connect_database(settings) as conn:
        try:
            report = enforce_retention(conn, settings.retention, dry_run=dry_run)
        except RetentionError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(report.to_text())


@click.group()
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
    with connect_database(settings) as conn:
        reg = register_device(conn, device_id, kind, site_id, lat, lon)
    if as_json:
        echo_json(dataclasses.asdict(reg))
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
    with connect_database(settings) as conn:
        records = list_devices(conn, site_id, kind)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    for r in records:
        seen = r.last_seen.isoformat(timespec="seconds") if r.last_seen else "never"
        revoked = f"  revoked {r.revoked_at.isoformat(timespec='seconds')}" if r.revoked_at else ""
        click.echo(f"{r.device_id:32} {r.kind:22} {r.site_id:18} {r.status:8} last seen {seen}{revoked}")


@devices.command("show")
@click.argument("device_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def devices_show(settings: Settings, device_id: str, as_json: bool) -> None:
    """Show one device."""
    with connect_database(settings) as conn:
        record = get_device(conn, device_id)
    if record is None:
        raise click.ClickException(f"no device {device_id!r}")
    if as_json:
        echo_json(record.to_dict())
    else:
        for key, value in record.to_dict().items():
            click.echo(f"{key:12} {value}")


@devices.command("revoke")
@click.argument("device_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def devices_revoke(settings: Settings, device_id: str, as_json: bool) -> None:
    """Cut a device off the broker for good (its readings stay; its id cannot be registered again)."""
    from smartcity.broker.accounts import revoke_device

    with connect_database(settings) as conn:
        revocation = revoke_device(conn, device_id)  # an unknown id is a DeviceError: exit 1
    if as_json:
        echo_json(revocation.to_dict())
    else:
        when = revocation.revoked_at.isoformat(timespec="seconds")
        click.echo(f"{device_id} was revoked already, at {when}" if revocation.already_revoked
                   else f"revoked {device_id} at {when}; a running broker sync disconnects it")


@click.group()
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

    with connect_database(settings) as conn:
        records = list_quarantine(conn, reason=reason, device_id=device_id,
                                  pending_only=not show_all, limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in records])
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
        echo_json(result.to_dict())
        return
    out = result.to_dict()
    click.echo(f"replayed {out['messages_replayed']} messages: {out['readings_stored']} readings stored,"
               f" {out['readings_duplicate']} duplicates, {out['quarantined']} parts quarantined again;"
               f" {out['still_unknown']} messages still from unregistered devices")
