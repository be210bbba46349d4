"""The wire contract every part reads: MQTT topics, payload limits, content types, reason codes.

This is the ground floor of ../shared/CONTRACT.md ("MQTT" and "What happens to bad input"): devices,
ingest, the API, simulators and benchmarks all import these names instead of restating them, and
instead of importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

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
    "Channel",
    "Reason",
    "Rejection",
    "TopicRef",
    "alert_topic",
    "commands_topic",
    "parse_topic",
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

Channel = Literal["telemetry", "status"]
_CHANNELS: frozenset[str] = frozenset(("telemetry", "status"))


@dataclass(frozen=True, slots=True)
class TopicRef:
    """What a device topic names: its channel and the device id as written (not yet checked)."""

    channel: Channel
    device_id: str


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


def parse_topic(topic: str) -> TopicRef | None:
    """Split a device topic into channel and device id; None when it has another shape."""
    if not topic.startswith(DEVICE_PREFIX):
        return None
    device_id, _, channel = topic[len(DEVICE_PREFIX):].partition("/")
    if not device_id or channel not in _CHANNELS:
        return None
    return TopicRef("telemetry" if channel == "telemetry" else "status", device_id)


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
