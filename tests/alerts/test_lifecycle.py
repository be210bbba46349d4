"""The lifecycle of one (rule, subject), every path, and properties over random sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartcity.alerts.lifecycle import Judgement, State, SubjectState, advance

T0 = datetime(2026, 10, 1, tzinfo=UTC)
M = timedelta(minutes=1)


def run(pattern: str, for_: timedelta, clear_for: timedelta) -> tuple[list[State], list[str | None]]:
    """Judge one minute per letter: H holds, C cleared, B in between (neither), N not judged."""
    state, states, transitions = SubjectState(), [], []
    for i, letter in enumerate(pattern):
        judged = Judgement(T0 + i * M, None if letter == "N" else 1.0, holds=letter == "H",
                           cleared=letter == "C")
        step = advance(state, judged, for_, clear_for)
        state = step.state
        states.append(state.state)
        transitions.append(step.transition)
    return states, transitions


@pytest.mark.parametrize(("pattern", "for_", "clear_for", "states", "fired_at", "resolved_at"), [
    # for 0: fires on the first holding minute; clear_for 0 resolves on the first cleared one
    ("CHHC", 0, 0, ["ok", "firing", "firing", "ok"], [1], [3]),
    # for 2 minutes: pending at 1, still at 2, fires at 3 (held from 1 to 3)
    ("CHHHH", 2, 0, ["ok", "pending", "pending", "firing", "firing"], [3], []),
    # pending that stops holding goes back to ok silently
    ("HHCHH", 3, 0, ["pending", "pending", "ok", "pending", "pending"], [], []),
    # clearing: cleared for 2 minutes before it resolves
    ("HCCC", 0, 2, ["firing", "clearing", "clearing", "ok"], [0], [3]),
    # clearing that holds again fires again without a new transition
    ("HCHCCC", 0, 2, ["firing", "clearing", "firing", "clearing", "clearing", "ok"], [0], [5]),
    # in the hysteresis band: neither holding nor cleared; firing stays firing, clearing goes back
    ("HBBCB", 0, 1, ["firing", "firing", "firing", "clearing", "firing"], [0], []),
    # not judged keeps the state and does not move `since`
    ("HNNH", 1, 0, ["pending", "pending", "pending", "firing"], [3], []),
    ("HCNNC", 0, 3, ["firing", "clearing", "clearing", "clearing", "ok"], [0], [4]),
    ("NNN", 0, 0, ["ok", "ok", "ok"], [], []),
])
def test_paths(pattern: str, for_: int, clear_for: int, states: list[str], fired_at: list[int],
               resolved_at: list[int]) -> None:
    got_states, transitions = run(pattern, for_ * M, clear_for * M)
    assert got_states == states
    assert [i for i, t in enumerate(transitions) if t == "firing"] == fired_at
    assert [i for i, t in enumerate(transitions) if t == "resolved"] == resolved_at


@given(st.text(alphabet="HCBN", max_size=60), st.integers(0, 5), st.integers(0, 5))
def test_transitions_alternate_and_match_states(pattern: str, for_: int, clear_for: int) -> None:
    states, transitions = run(pattern, for_ * M, clear_for * M)
    made = [t for t in transitions if t is not None]
    # firing, resolved, firing, ...: never two firings without a resolve between
    assert made == ["firing", "resolved"] * (len(made) // 2) + ["firing"] * (len(made) % 2)
    # active (firing or clearing) exactly when the last transition was a firing
    last: str | None = None
    for state, transition in zip(states, transitions, strict=True):
        last = transition or last
        assert (state in ("firing", "clearing")) == (last == "firing")


@given(st.text(alphabet="HCBN", max_size=60), st.integers(0, 5))
def test_fires_only_after_holding_for(pattern: str, for_: int) -> None:
    _, transitions = run(pattern, for_ * M, 0 * M)
    for i, transition in enumerate(transitions):
        if transition == "firing":
            judged = [c for c in pattern[: i + 1] if c != "N"]
            # the judged minutes up to the firing end with a run of H spanning `for`
            run_start = max((j for j, c in enumerate(pattern[: i + 1]) if c not in "HN"), default=-1) + 1
            first_h = next(j for j in range(run_start, i + 1) if pattern[j] == "H")
            assert i - first_h >= for_
            assert judged[-1] == "H"


@given(st.lists(st.sampled_from("HCBN"), min_size=1, max_size=30),
       st.sampled_from(["ok", "firing"]), st.booleans())
def test_the_quiet_shortcut_equals_walking_the_minutes(letters: list[str], state: str, known: bool) -> None:
    import numpy as np

    from smartcity.alerts.evaluate import Judged, Subject
    from smartcity.alerts.store import _quiet

    times = tuple(T0 + i * M for i in range(len(letters)))
    values = np.array([np.nan if c == "N" else float(i) for i, c in enumerate(letters)])
    judged = Judged(times, {"s": Subject("s", "kuaro", None)}, {"s": values},
                    {"s": np.array([c == "H" for c in letters])},
                    {"s": np.array([c == "C" for c in letters])})
    current = SubjectState(state, T0 - M if known or state == "firing" else None, None)  # type: ignore[arg-type]
    shortcut = _quiet(current, judged, "s")
    walked, made = current, []
    for judgement in judged.judgements("s"):
        step = advance(walked, judgement, 2 * M, 2 * M)
        walked = step.state
        made.append(step.transition)
    if shortcut is not None:
        assert shortcut == walked and made == [None] * len(letters)
