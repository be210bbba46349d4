"""MQTT topic names of the contract, and parsing a topic back into (channel, device id)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "STATUS_FILTER",
    "TELEMETRY_FILTER",
    "TopicRef",
    "parse_topic",
    "status_topic",
    "telemetry_topic",
]

PREFIX = "smartcity/v1/devices/"
TELEMETRY_FILTER = PREFIX + "+/telemetry"
STATUS_FILTER = PREFIX + "+/status"

Channel = Literal["telemetry", "status"]


@dataclass(frozen=True, slots=True)
class TopicRef:
    """What a device topic names: its channel and the device id as written (not yet checked)."""

    channel: Channel
    device_id: str


def telemetry_topic(device_id: str) -> str:
    """Return the telemetry topic of ``device_id``."""
    return f"{PREFIX}{device_id}/telemetry"


def status_topic(device_id: str) -> str:
    """Return the status topic of ``device_id``."""
    return f"{PREFIX}{device_id}/status"


def parse_topic(topic: str) -> TopicRef | None:
    """Split a device topic into channel and device id; None when it has another shape."""
    if not topic.startswith(PREFIX):
        return None
    device_id, _, channel = topic[len(PREFIX):].partition("/")
    if not device_id or channel not in ("telemetry", "status"):
        return None
    return TopicRef(channel, device_id)  # type: ignore[arg-type]
