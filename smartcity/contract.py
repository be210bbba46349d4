"""The wire contract every part reads: MQTT topics, payload limits, content types, reason codes.

This is the ground floor of ../shared/CONTRACT.md ("MQTT" and "What happens to bad input"): devices,
ingest, the API, simulators and benchmarks all import these names instead of restating them, and
instead of importing one another. It also holds the schema of the commands the platform sends to
actuators on ``…/{device_id}/commands`` (``Command``), so the API that sends them and the devices
(and simulators) that obey them read one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from smartcity.catalog import is_valid_device_id

__all__ = [
    "ALERTS_PREFIX",
    "COMMANDS_FILTER",
    "DEVICES_FILTER",
    "DEVICE_PREFIX",
    "MAX_BATCH",
    "MAX_PAYLOAD_BYTES",
    "SENML_CONTENT_TYPE",
    "STATUS_FILTER",
    "STATUS_PAYLOADS",
    "TELEMETRY_FILTER",
    "COMMAND_ACTIONS",
    "Channel",
    "Command",
    "Reason",
    "Rejection",
    "ScheduleEntry",
    "TopicRef",
    "alert_topic",
    "classify_topic",
    "commands_topic",
    "device_id_of",
    "status_topic",
    "telemetry_topic",
]

DEVICE_PREFIX = "smartcity/v1/devices/"
TELEMETRY_FILTER = DEVICE_PREFIX + "+/telemetry"
STATUS_FILTER = DEVICE_PREFIX + "+/status"
COMMANDS_FILTER = DEVICE_PREFIX + "+/commands"
# Everything a device may publish under, known channel or not: ingest listens this wide so that a
# publish to a misspelt channel is quarantined (``invalid_topic``) instead of vanishing.
DEVICES_FILTER = DEVICE_PREFIX + "#"
ALERTS_PREFIX = "smartcity/v1/alerts/"

MAX_PAYLOAD_BYTES = 64 * 1024  # a telemetry payload; larger ones are quarantined whole
MAX_BATCH = 1000  # observations in a batch payload, records in a SenML pack
SENML_CONTENT_TYPE = "application/senml+json"  # RFC 8428 §12.3
STATUS_PAYLOADS = ("online", "offline")

class Channel(StrEnum):
    """What a topic under the device prefix is, by the contract's templates."""

    TELEMETRY = "telemetry"
    STATUS = "status"
    COMMANDS = "commands"  # the platform's own channel to actuators: not device input
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class TopicRef:
    """A classified topic: its channel and, for a well-formed one, the device id."""

    channel: Channel
    device_id: str | None


_KNOWN = {c.value: c for c in (Channel.TELEMETRY, Channel.STATUS, Channel.COMMANDS)}


def telemetry_topic(device_id: str) -> str:
    """Return the telemetry topic of ``device_id``."""
    return f"{DEVICE_PREFIX}{device_id}/telemetry"


def status_topic(device_id: str) -> str:
    """Return the status topic of ``device_id``."""
    return f"{DEVICE_PREFIX}{device_id}/status"


def commands_topic(device_id: str) -> str:
    """Return the topic the platform publishes commands to ``device_id`` on (actuators)."""
    return f"{DEVICE_PREFIX}{device_id}/commands"


def alert_topic(site_id: str, rule_id: str) -> str:
    """Return the topic an alert of ``rule_id`` at ``site_id`` is published on."""
    return f"{ALERTS_PREFIX}{site_id}/{rule_id}"


# Topics repeat (one or two per device): remembering them spares a split and a regex per message,
# twice per message in ingest (devices are resolved first); bounded against floods of odd topics.
@lru_cache(maxsize=65536)
def classify_topic(topic: str) -> TopicRef:
    """Classify ``topic``: ``{prefix}{valid id}/telemetry|status``, ``…/{id}/commands``, else ``INVALID``.

    A malformed or empty id, an extra or missing level, a trailing ``/`` or a channel in another
    case are all ``INVALID``: no device can publish there under the contract, so the payload is
    not looked at.
    """
    if not topic.startswith(DEVICE_PREFIX):
        return TopicRef(Channel.INVALID, None)
    levels = topic[len(DEVICE_PREFIX):].split("/")
    channel = _KNOWN.get(levels[-1]) if len(levels) == 2 else None
    if channel is Channel.COMMANDS:
        # Whatever the id: the platform publishes here, devices do not.
        return TopicRef(channel, levels[0] if is_valid_device_id(levels[0]) else None)
    if channel is None or not is_valid_device_id(levels[0]):
        return TopicRef(Channel.INVALID, None)
    return TopicRef(channel, levels[0])


def device_id_of(topic: str) -> str | None:
    """Return the device id a telemetry or status topic names, None for any other topic."""
    ref = classify_topic(topic)
    return ref.device_id if ref.channel in (Channel.TELEMETRY, Channel.STATUS) else None


class Reason(StrEnum):
    """Why a reading or message was quarantined instead of stored (the contract's reason codes)."""

    INVALID_JSON = "invalid_json"
    INVALID_SCHEMA = "invalid_schema"
    INVALID_TOPIC = "invalid_topic"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    STORAGE_REJECTED = "storage_rejected"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One invalid part of a message: the reason code and a human-readable detail."""

    reason: Reason
    detail: str


# What each kind of actuator obeys; a kind not listed takes no commands.
COMMAND_ACTIONS: dict[str, tuple[str, ...]] = {"street_light": ("on", "off", "dim", "schedule")}
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")

_Switch = Literal["on", "off", "dim"]


def _check_level(action: str, level: int | None) -> None:
    if action == "dim" and level is None:
        raise ValueError("'dim' needs a level from 0 to 100")
    if action != "dim" and level is not None:
        raise ValueError(f"'{action}' takes no level (only 'dim' does)")


class ScheduleEntry(BaseModel):
    """One switching time of a schedule: at ``at`` (HH:MM, the site's local time) do ``action``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    at: str
    action: _Switch
    level: int | None = Field(None, ge=0, le=100)

    @field_validator("at")
    @classmethod
    def _check_at(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be a local time HH:MM (00:00 to 23:59)")
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        _check_level(self.action, self.level)
        return self


class Command(BaseModel):
    """The JSON payload on a device's commands topic (MQTT QoS 1, not retained).

    ``on``/``off`` switch the lamp, ``dim`` sets ``level`` (0–100 %), ``schedule`` replaces the
    device's daily switching times with ``schedule``. ``command_id`` lets the platform match the
    device's response; ``issued_at`` is an RFC 3339 time with its offset.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    action: Literal["on", "off", "dim", "schedule"]
    level: int | None = Field(None, ge=0, le=100)
    schedule: tuple[ScheduleEntry, ...] | None = Field(None, min_length=1, max_length=48)
    issued_at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.action == "schedule":
            if self.schedule is None or self.level is not None:
                raise ValueError("'schedule' needs a schedule (1 to 48 entries) and takes no level")
        elif self.schedule is not None:
            raise ValueError(f"'{self.action}' takes no schedule")
        else:
            _check_level(self.action, self.level)
        return self
