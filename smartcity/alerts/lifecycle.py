"""The state machine of one (rule, subject): pure, so every path is tested without a database.

    ok ──holds──▶ pending ──holds for `for`──▶ firing ──cleared──▶ clearing ──cleared for `clear_for`──▶ ok
     ▲              │ stops holding                 ▲                 │ no longer cleared
     └──────────────┘ (silently)                    └─────────────────┘ (no new transition)

``holds`` is the rule's condition; ``cleared`` is the value back past the line by the hysteresis.
With ``for`` 0 the first minute that holds fires at once (no pending); with ``clear_for`` 0 the
first cleared minute resolves. A minute that was not judged (coverage too low, no data) changes
nothing, and does not count as time holding or cleared either way: ``since`` stays when it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["Judgement", "State", "Step", "SubjectState", "advance"]

State = Literal["ok", "pending", "firing", "clearing"]


@dataclass(frozen=True, slots=True)
class Judgement:
    """A subject's condition at one judged time ``at``; ``value`` None: not judged."""

    at: datetime
    value: float | None
    holds: bool = False
    cleared: bool = False


@dataclass(frozen=True, slots=True)
class SubjectState:
    """Where a subject is: its state, since when (evaluation time), and its latest judged value."""

    state: State = "ok"
    since: datetime | None = None
    last_value: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """The state after one judgement and the transition it makes, if any."""

    state: SubjectState
    transition: Literal["firing", "resolved"] | None = None


def advance(current: SubjectState, judged: Judgement, for_: timedelta, clear_for: timedelta) -> Step:
    """Return the state after ``judged``, and 'firing' or 'resolved' when the alert changes."""
    if judged.value is None:
        return Step(current)
    value, at = judged.value, judged.at
    state, since = current.state, current.since
    if state == "ok":
        if not judged.holds:
            return Step(SubjectState("ok", since if since is not None else at, value))
        if for_ <= timedelta(0):
            return Step(SubjectState("firing", at, value), "firing")
        return Step(SubjectState("pending", at, value))
    if state == "pending":
        if not judged.holds:
            return Step(SubjectState("ok", at, value))  # silently: it never fired
        assert since is not None
        if at - since >= for_:
            return Step(SubjectState("firing", at, value), "firing")
        return Step(SubjectState("pending", since, value))
    if state == "firing":
        if not judged.cleared:
            return Step(SubjectState("firing", since, value))
        if clear_for <= timedelta(0):
            return Step(SubjectState("ok", at, value), "resolved")
        return Step(SubjectState("clearing", at, value))
    # clearing: it must stay cleared for clear_for; anything else is firing again, no new transition
    if not judged.cleared:
        return Step(SubjectState("firing", at, value))
    assert since is not None
    if at - since >= clear_for:
        return Step(SubjectState("ok", at, value), "resolved")
    return Step(SubjectState("clearing", since, value))
