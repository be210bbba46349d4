"""`smartcity apikeys create|list|revoke`: the keys the HTTP API accepts."""

from __future__ import annotations

import click

from smartcity.apikeys import KeyNotFound, Scope, create_key, list_keys, revoke_key
from smartcity.cli.context import connect_database, echo_json
from smartcity.settings import Settings

__all__ = ["apikeys"]


@click.group()
def apikeys() -> None:
    """Create, list and revoke API keys (scopes: read < write < admin)."""


@apikeys.command("create")
@click.option("--scope", required=True, type=click.Choice([s.label for s in Scope]),
              help="What the key may do; each scope includes the lower ones.")
@click.option("--name", default="", help="Who or what the key is for (at most 200 characters).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def apikeys_create(settings: Settings, scope: str, name: str, as_json: bool) -> None:
    """Create a key and print it: it is shown this once, and only its digest is stored."""
    with connect_database(settings) as conn:
        try:
            new = create_key(conn, Scope.from_label(scope), name)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--name") from None
    if as_json:
        echo_json(new.to_dict())
    else:
        click.echo(f"created {new.scope} key {new.key_id}\nkey: {new.key}  (shown once)")


@apikeys.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def apikeys_list(settings: Settings, show_all: bool, as_json: bool) -> None:
    """List keys (not revoked ones unless --all), oldest first; never their secrets."""
    with connect_database(settings) as conn:
        records = list_keys(conn, include_revoked=show_all)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    for r in records:
        used = r.last_used_at.isoformat(timespec="seconds") if r.last_used_at else "never"
        revoked = f" revoked {r.revoked_at.isoformat(timespec='seconds')}" if r.revoked_at else ""
        click.echo(f"{r.key_id} {r.scope:5} created {r.created_at.isoformat(timespec='seconds')}"
                   f" last used {used}{revoked} {r.name}")


@apikeys.command("revoke")
@click.argument("key_id")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def apikeys_revoke(settings: Settings, key_id: str, as_json: bool) -> None:
    """Revoke the key KEY_ID for good; running API processes refuse it within key_cache_s."""
    with connect_database(settings) as conn:
        try:
            record = revoke_key(conn, key_id)
        except KeyNotFound as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        echo_json(record.to_dict())
    else:
        click.echo(f"revoked {record.key_id} ({record.scope}) at {record.to_dict()['revoked_at']}")
