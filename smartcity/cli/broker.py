"""`smartcity broker`: service accounts and the broker's password and ACL files."""

from __future__ import annotations

import dataclasses
import grp
import os
from pathlib import Path

import click

from smartcity.broker.accounts import (
    AccountError,
    create_account,
    ensure_account,
    list_accounts,
    revoke_account,
    rotate_password,
)
from smartcity.broker.authfiles import broker_group
from smartcity.broker.roles import Role
from smartcity.broker.sync import BrokerAuthSync, pid_file_reloader, sync_once
from smartcity.cli.context import connect_database, echo_json, stop_event
from smartcity.db.connect import database_url
from smartcity.settings import Settings

__all__ = ["broker"]


@click.group()
def broker() -> None:
    """Broker identity: service accounts and the password and ACL files made from the registry."""


@broker.group()
def accounts() -> None:
    """The platform's own broker logins (smartcity-…), one per process."""


@accounts.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]),
              help="What the account may do (README \"Broker identity and ACLs\"); not with --rotate.")
@click.option("--rotate", is_flag=True, help="Give an existing account a new password instead.")
@click.option("--password-env", metavar="VAR",
              help="Take the password from the environment variable VAR (a deployment's secret) and"
                   " create the account or set its role and password; unchanged ones stay as they"
                   " are. Prints no password.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def accounts_add(settings: Settings, username: str, role: str | None, rotate: bool,
                 password_env: str | None, as_json: bool) -> None:
    """Create a service account (or --rotate its password) and print the password once."""
    if rotate == (role is not None):
        raise click.UsageError("give --role to create an account, or --rotate to renew a password")
    if password_env is not None:
        if rotate:
            raise click.UsageError("--password-env sets the password itself: give --role, not --rotate")
        _ensure_account(settings, username, str(role), password_env, as_json)
        return
    with connect_database(settings) as conn:
        try:
            made = rotate_password(conn, username) if rotate else create_account(conn, username, str(role))
        except AccountError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(dataclasses.asdict(made))
    else:
        click.echo(f"{'new password for' if rotate else 'created'} {made.username} (role {made.role})\n"
                   f"mqtt password: {made.password}  (shown once)")


def _ensure_account(settings: Settings, username: str, role: str, variable: str,
                    as_json: bool) -> None:
    # From the environment, never the command line, where `ps` and shell history would show it.
    password = os.environ.get(variable, "")
    if not password:
        raise click.BadParameter(f"the environment variable {variable} is unset or empty",
                                 param_hint="--password-env")
    with connect_database(settings) as conn:
        try:
            change = ensure_account(conn, username, role, password)
        except AccountError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json({"username": username, "role": role, "change": change})
    else:
        click.echo(f"{username} (role {role}): {change}")


@accounts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked accounts.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def accounts_list(settings: Settings, show_all: bool, as_json: bool) -> None:
    """List the service accounts (active ones unless --all)."""
    with connect_database(settings) as conn:
        records = list_accounts(conn, include_revoked=show_all)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    for r in records:
        revoked = f"  revoked {r.revoked_at.isoformat(timespec='seconds')}" if r.revoked_at else ""
        click.echo(f"{r.username:40} {r.role:8} created {r.created_at.isoformat(timespec='seconds')}"
                   f"{revoked}")


@accounts.command("revoke")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def accounts_revoke(settings: Settings, username: str, as_json: bool) -> None:
    """Revoke a service account; the broker drops it at the next sync."""
    with connect_database(settings) as conn:
        try:
            revoked_at = revoke_account(conn, username)
        except AccountError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json({"username": username, "revoked_at": revoked_at.isoformat()})
    else:
        click.echo(f"revoked {username}")


def _gid(group: str | None) -> int | None:
    if group is None:
        return broker_group()
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise click.BadParameter(f"no group {group!r}", param_hint="--group") from None


@broker.command("sync")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Write the files `passwords` and `acl` here (the broker's password_file, acl_file).")
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path),
              help="The broker's pid_file: send it SIGHUP when the files change.")
@click.option("--group", help="Group that may read the files (default: mosquitto when run as root).")
@click.option("--watch", is_flag=True, help="Keep following the registry until SIGINT/SIGTERM.")
@click.option("--json", "as_json", is_flag=True, help="Without --watch: print the result as JSON.")
@click.pass_obj
def broker_sync(settings: Settings, directory: Path, pid_file: Path | None, group: str | None,
                watch: bool, as_json: bool) -> None:
    """Write the broker's password and ACL files from the registry, and reload the broker."""
    gid = _gid(group)
    reload = pid_file_reloader(pid_file) if pid_file is not None else None
    if watch:
        if as_json:
            raise click.UsageError("--json needs a single sync (the watcher logs, it prints no records)")
        BrokerAuthSync(database_url(settings), directory, reload, gid=gid).run(stop_event())
        return
    with connect_database(settings) as conn:
        changed = sync_once(conn, directory, gid)
    reloaded = False
    if changed and reload is not None:
        try:
            reload()
            reloaded = True
        except OSError as err:
            raise click.ClickException(f"the files changed but the broker was not reloaded: {err}"
                                       ) from None
    if as_json:
        echo_json({"directory": str(directory), "changed": changed, "reloaded": reloaded})
    else:
        click.echo(f"broker files in {directory} " + ("rewritten" if changed else "unchanged")
                   + ("; broker reloaded" if reloaded else ""))
