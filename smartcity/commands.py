"""Commands to actuators: check one against the device, store it, publish it, settle outcomes.

The one path of ``POST /api/v1/devices/{id}/commands`` and ``smartcity devices command``: the
command is stored before it is published, so a broker that cannot take it leaves a stored command
that says so (``not_sent``) instead of nothing. Publishing is the caller's (the API's broker
client, the CLI's own), passed in as a `Publish`. Exceptions::

    CommandError (ValueError)
     ├── UnknownDevice     no device has the id
     ├── RevokedDevice     the device was revoked: the broker refuses its login
     ├── CommandRefused    its kind takes no commands, or not this action
     └── CommandNotSent    the broker could not take it; ``record`` is the stored command
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from smartcity.contract import COMMAND_ACTIONS, Command, ScheduleEntry, commands_topic
from smartcity.db.queries import commands as command_sql

__all__ = [
    "SETTLE_GRACE",
    "CommandError",
    "CommandNotSent",
    "CommandRefused",
    "Publish",
    "RevokedDevice",
    "UnknownDevice",
    "accepted_actions",
    "issue_command",
    "list_commands",
    "new_command_id",
    "settle_outcomes",
]

# A reading taken just before a deadline may still be in ingest's batch or on the network: a
# command times out this long after its deadline, not at it (README "Commands to actuators").
SETTLE_GRACE = timedelta(seconds=5)

# Publishes (topic, payload) at QoS 1, not retained; returns whether the broker acknowledged it
# (PUBACK) in time. Raises ConnectionError when the broker cannot take the message at all.
Publish = Callable[[str, bytes], bool]


class CommandError(ValueError):
    """A command cannot be sent as asked."""


class UnknownDevice(CommandError):
    """No device has this id."""


class RevokedDevice(CommandError):
    """The device was revoked: it can no longer log in to hear a command."""


class CommandRefused(CommandError):
    """The device's kind takes no commands, or not this action."""


class CommandNotSent(CommandError):
    """The broker could not take the command; it is stored with outcome ``not_sent``."""

    def __init__(self, message: str, record: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.record = record


def accepted_actions() -> str:
    """Say which kinds take which commands (``street_light accepts on, off, dim, schedule``)."""
    return "; ".join(f"{kind} accepts {', '.join(actions)}"
                     for kind, actions in COMMAND_ACTIONS.items())


def new_command_id() -> str:
    """Return a fresh command id (the contract's ``^[A-Za-z0-9_-]{8,64}$``)."""
    return "cmd-" + secrets.token_hex(8)


def _check_target(target: Mapping[str, Any] | None, device_id: str, action: str) -> None:
    if target is None:
        raise UnknownDevice(f"device {device_id!r} is not registered")
    if target["revoked_at"] is not None:
        raise RevokedDevice(f"device {device_id!r} was revoked at {target['revoked_at'].isoformat()}:"
                            " it cannot log in to hear commands")
    kind = target["kind"]
    actions = COMMAND_ACTIONS.get(kind, ())
    if not actions:
        raise CommandRefused(f"{kind} accepts no commands; {accepted_actions()}")
    if action not in actions:
        raise CommandRefused(f"{kind} does not accept {action!r}; {accepted_actions()}")


def issue_command(conn: psycopg.Connection[Any], device_id: str, action: str, *,
                  level: int | None = None, schedule: tuple[ScheduleEntry, ...] | None = None,
                  issued_by: str, timeout_s: float, publish: Publish,
                  now: datetime | None = None) -> dict[str, Any]:
    """Check, store and publish a command to ``device_id``; return it as stored (outcome pending).

    ``conn`` is in autocommit: the command is stored before it is published, whatever follows.

    Raises:
        pydantic.ValidationError: the action, level and schedule do not make a contract Command.
        UnknownDevice, RevokedDevice, CommandRefused: nothing was stored.
        CommandNotSent: stored, and marked ``not_sent`` with the broker's reason.
    """
    issued_at = (now or datetime.now(UTC)).astimezone(UTC)
    command = Command(command_id=new_command_id(), action=action, level=level, schedule=schedule,
                      issued_at=issued_at)
    with conn.cursor(row_factory=dict_row) as cur:
        target = cur.execute(command_sql.SELECT_TARGET, (device_id,)).fetchone()
        _check_target(target, device_id, command.action)
        row = cur.execute(command_sql.INSERT_COMMAND, {
            "command_id": command.command_id, "device_id": device_id, "action": command.action,
            "level": command.level, "issued_at": issued_at, "issued_by": issued_by,
            "schedule": None if command.schedule is None else Jsonb(
                [entry.model_dump(exclude_none=True) for entry in command.schedule]),
            "deadline": issued_at + timedelta(seconds=timeout_s),
        }).fetchone()
        assert row is not None  # INSERT … RETURNING always returns the row
        payload = command.model_dump_json(exclude_none=True).encode()
        try:
            acknowledged = publish(commands_topic(device_id), payload)
        except ConnectionError as err:
            detail = f"not sent: the broker could not take it ({err})"
            failed = cur.execute(command_sql.MARK_NOT_SENT, (detail, command.command_id)).fetchone()
            raise CommandNotSent(detail, failed or row) from err
        if acknowledged:
            row = cur.execute(command_sql.MARK_PUBLISHED, (command.command_id,)).fetchone() or row
    return row


def settle_outcomes(conn: psycopg.Connection[Any], *, device_id: str | None = None,
                    command_id: str | None = None) -> list[tuple[str, str]]:
    """Settle the pending commands that can be (of one device or command); return (id, outcome)."""
    rows = conn.execute(command_sql.SETTLE, {"device": device_id, "command": command_id,
                                             "grace": SETTLE_GRACE}).fetchall()
    return [(str(command), str(outcome)) for command, outcome in rows]


def list_commands(conn: psycopg.Connection[Any], device_id: str, *, limit: int = 100,
                  before: int | None = None) -> list[dict[str, Any]]:
    """Return a device's commands, newest first, with their outcomes settled as far as they can be.

    Raises:
        UnknownDevice: no device has this id.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        if cur.execute(command_sql.SELECT_TARGET, (device_id,)).fetchone() is None:
            raise UnknownDevice(f"device {device_id!r} is not registered")
        settle_outcomes(conn, device_id=device_id)
        return cur.execute(command_sql.SELECT_DEVICE_COMMANDS,
                           {"device": device_id, "before": before, "limit": limit}).fetchall()
