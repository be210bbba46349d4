"""The broker rights of devices and of each service role: the one table the ACL file, the README
and the tests read.

Every device gets the same rights on its own topics through Mosquitto's ``%u`` patterns (the login
name is the device id). Service accounts, named ``smartcity-<something>``, get their role's rights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from smartcity.contract import (
    ALERTS_PREFIX,
    COMMANDS_FILTER,
    DEVICE_PREFIX,
    STATUS_FILTER,
    TELEMETRY_FILTER,
)

__all__ = [
    "ACCOUNT_PREFIX",
    "DEVICE_RIGHTS",
    "ROLES",
    "Access",
    "Right",
    "Role",
    "is_service_name",
    "is_valid_account_name",
]

# Logins with this prefix are the platform's own; no device id may start with it, because the
# device patterns apply to every login and a device called like a service would share its name.
ACCOUNT_PREFIX: Final = "smartcity-"
_ACCOUNT_NAME = re.compile(r"^smartcity-[a-z0-9][a-z0-9_-]{0,53}$")


class Access(StrEnum):
    """What a login may do on a topic filter (Mosquitto's ACL words)."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Right:
    """One ACL line: ``access`` on ``topic`` (a filter; ``%u`` is the login name in patterns)."""

    access: Access
    topic: str


class Role(StrEnum):
    """What a service account is for."""

    INGEST = "ingest"
    API = "api"
    ALERTS = "alerts"
    MONITOR = "monitor"
    GATEWAY = "gateway"


_OWN = DEVICE_PREFIX + "%u/"

# A device: its own telemetry and status (its Last Will included), and its own commands.
DEVICE_RIGHTS: Final = (
    Right(Access.WRITE, _OWN + "telemetry"),
    Right(Access.WRITE, _OWN + "status"),
    Right(Access.READ, _OWN + "commands"),
)

# Each role's rights, and why it needs them (the README's table prints the reasons).
ROLES: Final[dict[Role, tuple[tuple[Right, ...], str]]] = {
    Role.INGEST: ((Right(Access.READ, TELEMETRY_FILTER), Right(Access.READ, STATUS_FILTER)),
                  "ingest workers: receive every device's telemetry and status"),
    Role.API: ((Right(Access.WRITE, COMMANDS_FILTER),),
               "the API's broker client: send commands to actuators"),
    Role.ALERTS: ((Right(Access.WRITE, ALERTS_PREFIX + "#"),),
                  "the alert evaluator: publish each rule's current state per site (retained)"),
    Role.MONITOR: ((Right(Access.READ, STATUS_FILTER), Right(Access.READ, ALERTS_PREFIX + "#"),
                    Right(Access.READ, "$SYS/#")),
                   "health checks, monitoring and alert receivers (the duty officer's messaging bridge):"
                   " device status, alerts and the broker's own $SYS topics"),
    Role.GATEWAY: ((Right(Access.WRITE, TELEMETRY_FILTER), Right(Access.WRITE, STATUS_FILTER)),
                   "publishing on behalf of devices: load generators (`smartcity bench`, the "
                   "simulator's shared login) and protocol gateways (LoRaWAN, Modbus)"),
}


def is_service_name(username: str) -> bool:
    """Tell whether ``username`` has the reserved service-account prefix."""
    return username.startswith(ACCOUNT_PREFIX)


def is_valid_account_name(username: str) -> bool:
    """Tell whether ``username`` is a well-formed service-account name."""
    return _ACCOUNT_NAME.fullmatch(username) is not None
