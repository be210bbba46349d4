"""Inbound messages → the rows they become: readings, one quarantine item, a status change, last seen.

Routing happens once per message, before the writer sees it: the writer gets ``Rows`` and never
decodes or validates, so a retried or bisected batch costs database work only. Topics are
classified by the contract (``smartcity.contract.classify_topic``): telemetry and status from
devices, commands from the platform (ignored); anything else under the device prefix is
``invalid_topic``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from ingest.batch import InboundMessage
from ingest.decode import decode_payload
from ingest.validate import DeviceRef, Reading, TimeWindow, validate_observations
from smartcity.contract import (
    DEVICE_PREFIX,
    MAX_PAYLOAD_BYTES,
    STATUS_PAYLOADS,
    Channel,
    Reason,
    Rejection,
    classify_topic,
    device_id_of,
)

__all__ = [
    "MAX_STORED_PARTS", "MessageRows", "QuarantineItem", "Rows", "StatusChange", "route_message",
    "route_messages",
]

log = logging.getLogger(__name__)

DeviceLookup = Callable[[str], DeviceRef | None]
_STATUSES = {status.encode(): status for status in STATUS_PAYLOADS}
MAX_STORED_PARTS = 20  # rejected parts kept one by one per quarantine row; the rest only counted
_MAX_PART_DETAIL = 300  # characters of one part's detail


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """One rejected message: every rejected part with its reason, and the payload once.

    ``rejections`` holds all parts in memory; what is stored is bounded (``stored_parts``,
    ``reason_counts``, ``stored_payload``). ``replay_of`` names the quarantine row whose payload
    this item shares (a replay), in which case the payload is not stored again.
    """

    received_at: float
    topic: str
    device_id: str | None
    rejections: tuple[Rejection, ...]
    payload: bytes
    content_type: str | None = None
    replay_of: int | None = None

    @property
    def reason(self) -> Reason:
        """Return the reason of the first rejected part (the row's ``reason`` column)."""
        return self.rejections[0].reason

    def reason_counts(self) -> Counter[str]:
        """Return how many parts were rejected for each reason."""
        return Counter(r.reason.value for r in self.rejections)

    def summary(self) -> str:
        """Return a one-line detail: the first part's, and how many more there are."""
        first = self.rejections[0].detail[:_MAX_PART_DETAIL]
        more = len(self.rejections) - 1
        return first if not more else f"{first} (and {more} more rejected parts)"

    def stored_parts(self) -> list[dict[str, str]]:
        """Return the first ``MAX_STORED_PARTS`` parts as ``{"reason", "detail"}``."""
        return [{"reason": r.reason.value, "detail": r.detail[:_MAX_PART_DETAIL]}
                for r in self.rejections[:MAX_STORED_PARTS]]

    def stored_payload(self) -> bytes | None:
        """Return the payload as kept: cut to ``MAX_PAYLOAD_BYTES``; None when a replay shares it."""
        return None if self.replay_of is not None else self.payload[:MAX_PAYLOAD_BYTES]

    def with_rejection(self, rejection: Rejection) -> QuarantineItem:
        """Return this item with one more rejected part."""
        return replace(self, rejections=(*self.rejections, rejection))

    def replaying(self, quarantine_id: int) -> QuarantineItem:
        """Return this item as the outcome of replaying quarantine row ``quarantine_id``."""
        return replace(self, replay_of=quarantine_id)


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A device's online/offline announcement."""

    device: int
    status: str
    at: float


# Not frozen: one is built per message on the hot path.
@dataclass(slots=True)
class MessageRows:
    """What one message becomes; the unit the writer bisects a refused batch by."""

    message: InboundMessage
    channel: Channel
    readings: list[Reading] = field(default_factory=list)
    quarantine: QuarantineItem | None = None
    status: StatusChange | None = None
    device: int | None = None  # the registered device heard from, for last_seen

    def refused(self, detail: str) -> MessageRows:
        """Return this message as quarantine only: the database refused what it would store."""
        rejection = Rejection(Reason.STORAGE_REJECTED, detail)
        m = self.message
        item = (self.quarantine.with_rejection(rejection) if self.quarantine is not None else
                QuarantineItem(m.received_at, m.topic, device_id_of(m.topic), (rejection,), m.payload,
                               m.content_type))
        return MessageRows(m, self.channel, quarantine=item)


@dataclass
class Rows:
    """Everything one batch writes, merged from its messages (``parts``) or built directly."""

    readings: list[Reading] = field(default_factory=list)
    quarantine: list[QuarantineItem] = field(default_factory=list)
    statuses: list[StatusChange] = field(default_factory=list)
    last_seen: dict[int, float] = field(default_factory=dict)
    message_times: list[float] = field(default_factory=list)  # one reading time per message
    parts: list[MessageRows] = field(default_factory=list)

    def saw(self, device: int, at: float) -> None:
        """Record that ``device`` was heard from at ``at`` (epoch seconds)."""
        if at > self.last_seen.get(device, 0.0):
            self.last_seen[device] = at

    @classmethod
    def merge(cls, parts: Iterable[MessageRows]) -> Rows:
        """Return the rows of ``parts`` together, in order."""
        rows = cls()
        for part in parts:
            rows.parts.append(part)
            received = part.message.received_at
            if part.readings:
                rows.message_times.append(part.readings[0][0])
                rows.readings.extend(part.readings)
            if part.quarantine is not None:
                rows.quarantine.append(part.quarantine)
            if part.status is not None:
                rows.statuses.append(part.status)
            if part.device is not None:
                rows.saw(part.device, received)
        return rows


def route_messages(messages: Iterable[InboundMessage], lookup: DeviceLookup,
                   window: TimeWindow) -> Rows:
    """Turn messages into rows; a message with invalid parts becomes one quarantine item."""
    return Rows.merge(route_message(message, lookup, window) for message in messages)


def route_message(message: InboundMessage, lookup: DeviceLookup, window: TimeWindow) -> MessageRows:
    """Turn one message into its rows."""
    ref = classify_topic(message.topic)
    out = MessageRows(message, ref.channel)

    def reject(rejections: Iterable[Rejection], device_id: str | None) -> None:
        found = tuple(rejections)
        if found:
            out.quarantine = QuarantineItem(message.received_at, message.topic, device_id, found,
                                            message.payload, message.content_type)

    if ref.channel is Channel.COMMANDS:
        return out  # the platform's own publish to a device: acked, neither stored nor quarantined
    if ref.device_id is None:
        reject([Rejection(Reason.INVALID_TOPIC, f"topic {message.topic!r:.200} is not "
                          f"{DEVICE_PREFIX}{{device id}}/telemetry|status")], None)
        return out
    device_id = ref.device_id
    # Before the device lookup, so an unregistered device cannot get an oversized payload kept
    # (for replay) that a registered one would have had refused.
    if ref.channel is Channel.TELEMETRY and len(message.payload) > MAX_PAYLOAD_BYTES:
        reject([Rejection(Reason.PAYLOAD_TOO_LARGE,
                          f"{len(message.payload)} bytes, limit {MAX_PAYLOAD_BYTES}")], device_id)
        return out
    device = lookup(device_id)
    if device is None:
        reject([Rejection(Reason.UNKNOWN_DEVICE, f"device {device_id} is not registered")], device_id)
        return out
    out.device = device.id
    if ref.channel is Channel.STATUS:
        if not message.payload:
            return out  # an empty retained message only clears the retained status
        status = _STATUSES.get(message.payload.strip())
        if status is None:
            reject([Rejection(Reason.INVALID_SCHEMA, "status payload must be 'online' or 'offline'")],
                   device_id)
        else:
            out.status = StatusChange(device.id, status, message.received_at)
        return out
    try:
        decoded = decode_payload(message.payload, message.content_type, message.received_at)
        validated = validate_observations(device, decoded.observations, message.received_at, window,
                                          one_per_metric=decoded.one_per_metric)
    except Exception as err:  # noqa: BLE001 - device input must never stop the worker
        # A decoder bug, not the device's fault alone; keep the message and say so loudly.
        log.exception("could not process a message from %s", device_id)
        reject([Rejection(Reason.INVALID_SCHEMA,
                          f"could not be processed ({type(err).__name__}); kept for replay")], device_id)
        return out
    reject((*decoded.rejections, *validated.rejections), device_id)
    out.readings = validated.readings
    return out
