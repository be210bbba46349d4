"""Inbound messages → the rows they become: readings, quarantine items, device status, last seen."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ingest.batch import InboundMessage
from ingest.decode import decode_payload
from ingest.validate import DeviceRef, Reading, TimeWindow, validate_observations
from smartcity.catalog import is_valid_device_id
from smartcity.contract import Reason, parse_topic

__all__ = ["QuarantineItem", "Rows", "StatusChange", "route_messages"]

log = logging.getLogger(__name__)

DeviceLookup = Callable[[str], DeviceRef | None]
_STATUSES = {b"online": "online", b"offline": "offline"}


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """A rejected part of a message, stored with the raw payload so nothing is lost."""

    received_at: float
    topic: str
    device_id: str | None
    reason: Reason
    detail: str
    payload: bytes
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device's online/offline announcement."""

    device: int
    status: str
    at: float


@dataclass
class Rows:
    """Everything one batch writes."""

    readings: list[Reading] = field(default_factory=list)
    quarantine: list[QuarantineItem] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    last_seen: dict[int, float] = field(default_factory=dict)
    message_times: list[float] = field(default_factory=list)  # one reading time per message

    def saw(self, device: int, at: float) -> None:
        """Record that ``device`` was heard from at ``at`` (epoch seconds)."""
        if at > self.last_seen.get(device, 0.0):
            self.last_seen[device] = at


def route_messages(messages: Iterable[InboundMessage], lookup: DeviceLookup,
                   window: TimeWindow) -> Rows:
    """Turn messages into rows; every invalid part becomes a quarantine item with its reason."""
    rows = Rows()
    for message in messages:
        _route(message, lookup, window, rows)
    return rows


def _route(message: InboundMessage, lookup: DeviceLookup, window: TimeWindow, rows: Rows) -> None:
    def reject(reason: Reason, detail: str, device_id: str | None) -> None:
        rows.quarantine.append(QuarantineItem(
            message.received_at, message.topic, device_id, reason, detail, message.payload,
            message.content_type,
        ))

    ref = parse_topic(message.topic)
    if ref is None:
        reject(Reason.INVALID_SCHEMA, "topic is not smartcity/v1/devices/{id}/telemetry|status", None)
        return
    if not is_valid_device_id(ref.device_id):
        reject(Reason.INVALID_SCHEMA, f"device id {ref.device_id!r:.80} in topic is malformed", None)
        return
    device = lookup(ref.device_id)
    if device is None:
        reject(Reason.UNKNOWN_DEVICE, f"device {ref.device_id} is not registered", ref.device_id)
        return
    rows.saw(device.id, message.received_at)
    if ref.channel == "status":
        if not message.payload:
            return  # an empty retained message only clears the retained status
        status = _STATUSES.get(message.payload.strip())
        if status is None:
            reject(Reason.INVALID_SCHEMA, "status payload must be 'online' or 'offline'", ref.device_id)
        else:
            rows.statuses.append(StatusChange(device.id, status, message.received_at))
        return
    try:
        decoded = decode_payload(message.payload, message.content_type, message.received_at)
        validated = validate_observations(device, decoded.observations, message.received_at, window)
    except Exception as err:  # noqa: BLE001 - device input must never stop the worker
        # A decoder bug, not the device's fault alone; keep the message and say so loudly.
        log.exception("could not process a message from %s", ref.device_id)
        reject(Reason.INVALID_SCHEMA, f"could not be processed ({type(err).__name__}); kept for replay",
               ref.device_id)
        return
    for rejection in (*decoded.rejections, *validated.rejections):
        reject(rejection.reason, rejection.detail, ref.device_id)
    if validated.readings:
        rows.message_times.append(validated.readings[0][0])
        rows.readings.extend(validated.readings)
