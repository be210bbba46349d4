"""Inbound messages collected into batches bounded by count and age (clock injected)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["InboundMessage", "MessageBatch"]


# Not frozen: a frozen dataclass is ~4x slower to build, and one is built per message/reading.
@dataclass(slots=True)
class InboundMessage:
    """An MQTT message as received; ``mid``/``qos`` are what must be acked once it is stored."""

    topic: str
    payload: bytes
    received_at: float  # epoch seconds
    mid: int = 0
    qos: int = 0
    content_type: str | None = None
    session: int = 0  # which broker connection delivered it: acks are only valid on that one


@dataclass
class MessageBatch:
    """Messages to store in one transaction; full at ``max_messages`` or ``max_age_s`` old."""

    max_messages: int
    max_age_s: float
    clock: Callable[[], float] = time.monotonic
    messages: list[InboundMessage] = field(default_factory=list)
    opened_at: float | None = None

    def add(self, message: InboundMessage) -> None:
        """Append ``message``; the first one starts the age clock."""
        if self.opened_at is None:
            self.opened_at = self.clock()
        self.messages.append(message)

    @property
    def is_full(self) -> bool:
        """Tell whether the batch reached its message bound."""
        return len(self.messages) >= self.max_messages

    def seconds_left(self) -> float:
        """Return how long the batch may still wait for more messages."""
        if self.opened_at is None:
            return self.max_age_s
        return max(0.0, self.opened_at + self.max_age_s - self.clock())

    def acks(self) -> list[tuple[int, int, int]]:
        """Return (mid, qos, session) of every message that needs an ack once stored."""
        return [(m.mid, m.qos, m.session) for m in self.messages if m.qos > 0]

    def __len__(self) -> int:
        return len(self.messages)
