"""Simulated actuators obey commands: parse one from the commands topic, set the lamp's control.

A street light hears ``smartcity/v1/devices/{its id}/commands`` (its own login may read it, the
broker's device ACL). A payload is checked against the contract's `Command`; one that is not a
command, or is for an action the device's kind does not take, is logged (once per device and
reason per minute) and ignored: a bad command never stops the simulator. A good one becomes the
lamp's `LampControl` from the moment it arrives, in the site's local time for a schedule; the
publisher then reports the new state at once.
"""

from __future__ import annotations

import logging
import time
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from simulators.models import ModelState
from simulators.models.control import LampControl
from smartcity.catalog import SITES
from smartcity.contract import COMMAND_ACTIONS, Command

__all__ = ["CommandLog", "control_of", "obey", "parse_command", "takes_commands"]

log = logging.getLogger(__name__)

_LOG_EVERY_S = 60.0
_LEVELS = {"on": 100.0, "off": 0.0}


def takes_commands(kind: str) -> bool:
    """Tell whether devices of ``kind`` obey commands (the contract's ``COMMAND_ACTIONS``)."""
    return bool(COMMAND_ACTIONS.get(kind))


class CommandLog:
    """Says why a command was ignored, once per device and reason per minute, and counts them all."""

    def __init__(self) -> None:
        self.ignored = 0
        self._last: dict[tuple[str, str], float] = {}

    def ignored_command(self, device_id: str, reason: str, detail: str) -> None:
        """Count an ignored command and log it unless the same was logged within the minute."""
        self.ignored += 1
        now = time.monotonic()
        if now - self._last.get((device_id, reason), -_LOG_EVERY_S) >= _LOG_EVERY_S:
            self._last[(device_id, reason)] = now
            log.warning("device %s ignored a command (%s): %s", device_id, reason, detail[:300])


def parse_command(payload: bytes | bytearray, kind: str) -> tuple[Command | None, str, str]:
    """Return the command in ``payload`` for a device of ``kind``, or None with (reason, detail)."""
    try:
        command = Command.model_validate_json(payload)
    except ValidationError as err:
        return None, "invalid", str(err.errors(include_url=False, include_input=False)[:3])
    if command.action not in COMMAND_ACTIONS.get(kind, ()):
        return None, "refused", f"{kind} does not take {command.action!r}"
    return command, "", ""


def control_of(command: Command, site_id: str, now: float) -> LampControl:
    """Return the lamp control ``command`` sets from ``now`` on, at a lamp of site ``site_id``."""
    if command.action == "dim":
        return LampControl(since=now, level=float(command.level or 0))
    if command.action != "schedule":
        return LampControl(since=now, level=_LEVELS[command.action])
    zone = ZoneInfo(SITES[site_id].timezone)
    offset = command.issued_at.astimezone(zone).utcoffset()
    entries = sorted(
        (int(entry.at[:2]) * 3600.0 + int(entry.at[3:]) * 60.0,
         float(entry.level or 0) if entry.action == "dim" else _LEVELS[entry.action])
        for entry in command.schedule or ())
    # Two entries at one time: the later in the command wins (sorted keeps their order).
    by_time = dict(entries)
    return LampControl(since=now, schedule=tuple(sorted(by_time.items())),
                       utc_offset_s=offset.total_seconds() if offset is not None else 0.0)


def obey(state: ModelState, command: Command, site_id: str, now: float) -> None:
    """Make the device whose model keeps ``state`` obey ``command`` from ``now`` on."""
    state.control = control_of(command, site_id, now)
