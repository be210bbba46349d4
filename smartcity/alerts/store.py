"""Judging a rule once and keeping the result: reads, lifecycle, and every write in one transaction.

State, alerts, transitions, webhook deliveries and the rule's ``evaluated_through`` commit together,
so a crash anywhere repeats nothing and loses nothing: the next run judges again from
``evaluated_through``. The unique index ``alerts_one_active`` refuses a second active episode.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg

from smartcity.alerts.describe import summarize_alert
from smartcity.alerts.evaluate import Judged, judge, step_of
from smartcity.alerts.lifecycle import State, SubjectState, advance
from smartcity.alerts.rules import AnyRule
from smartcity.db.queries.alerts import (
    DELETE_RULE_STATE,
    INSERT_ALERT,
    INSERT_DELIVERY,
    INSERT_TRANSITION,
    LOCK_RULE,
    RESOLVE_ALERT,
    SELECT_PROGRESS,
    SELECT_STATES,
    UPDATE_ALERT_LAST_VALUE,
    UPSERT_PROGRESS,
    UPSERT_STATE,
)

__all__ = ["RuleRun", "definition_hash", "floor_to", "judge_rule"]

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class RuleRun:
    """What one judging of a rule did."""

    rule_id: str
    judged: int = 0  # judged times
    subjects: int = 0
    transitions: list[tuple[str, str, datetime]] = field(default_factory=list)  # (subject, kind, at)
    evaluated_through: datetime | None = None
    skipped_from: datetime | None = None  # minutes older than max_catch_up_h were skipped
    seconds: float = 0.0  # wall time of the judging, reads and writes included


def definition_hash(rule: AnyRule) -> str:
    """The hash of the rule's definition (its JSON): a changed rule starts over."""
    return hashlib.sha256(rule.model_dump_json(by_alias=True).encode()).hexdigest()


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a whole ``step`` (UTC)."""
    return moment - (moment - _EPOCH) % step


def judge_rule(conn: psycopg.Connection[Any], rule: AnyRule, now: datetime, settle: timedelta,
               max_catch_up: timedelta) -> RuleRun:
    """Judge ``rule`` at every whole step not yet judged that ended ``settle`` before ``now``."""
    run = RuleRun(rule.id)
    started = time.monotonic()
    step = step_of(rule)
    last = floor_to(now - settle, step)
    digest = definition_hash(rule)
    with conn.transaction():
        conn.execute(LOCK_RULE, (rule.id,))
        progress = conn.execute(SELECT_PROGRESS, (rule.id,)).fetchone()
        if progress is None or progress[0] != digest:
            # New or changed: judge from `for` back, so a condition already holding fires now.
            through = floor_to(last - rule.for_, step) - step
            if progress is not None:
                _start_over(conn, rule, last, run)
        else:
            through = floor_to(progress[1], step)
        first = through + step
        oldest = floor_to(last - max_catch_up, step)
        if first < oldest:
            run.skipped_from, first = first, oldest
            log.warning("rule %s: minutes from %s to %s are older than max_catch_up_h, skipped",
                        rule.id, run.skipped_from.isoformat(), oldest.isoformat())
        if first > last:
            if progress is None or progress[0] != digest:
                conn.execute(UPSERT_PROGRESS, (rule.id, digest, through))
            run.evaluated_through = through
            return run
        judged = judge(conn, rule, first, last)
        _apply(conn, rule, judged, run)
        conn.execute(UPSERT_PROGRESS, (rule.id, digest, last))
        run.judged, run.evaluated_through = len(judged.times), last
    run.seconds = time.monotonic() - started
    return run


def _start_over(conn: psycopg.Connection[Any], rule: AnyRule, at: datetime, run: RuleRun) -> None:
    """A changed rule: its active alerts resolve (judged under a condition that no longer exists)."""
    for subject, _state, _since, alert_id, last_value in conn.execute(SELECT_STATES, (rule.id,)).fetchall():
        if alert_id is not None and conn.execute(RESOLVE_ALERT, (at, last_value, alert_id)).rowcount:
            _transition(conn, rule, alert_id, "resolved", at, last_value)
            run.transitions.append((subject, "resolved", at))
    conn.execute(DELETE_RULE_STATE, (rule.id,))
    log.info("rule %s changed: its subjects start over", rule.id)


def _transition(conn: psycopg.Connection[Any], rule: AnyRule, alert_id: int, kind: str, at: datetime,
                value: float | None) -> None:
    row = conn.execute(INSERT_TRANSITION, (alert_id, kind, at, value)).fetchone()
    assert row is not None
    if rule.webhook:
        conn.execute(INSERT_DELIVERY, (row[0], rule.webhook))


def _apply(conn: psycopg.Connection[Any], rule: AnyRule, judged: Judged, run: RuleRun) -> None:
    stored: dict[str, tuple[State, datetime, int | None, float | None]] = {
        subject: (state, since, alert_id, last_value)
        for subject, state, since, alert_id, last_value in conn.execute(SELECT_STATES, (rule.id,))}
    clear_for = rule.clear_for
    run.subjects = len(judged.subjects)
    rows: list[tuple[Any, ...]] = []
    for key, subject in judged.subjects.items():
        current, alert_id = SubjectState(), None
        if key in stored:
            state, since, alert_id, last_value = stored[key]
            current = SubjectState(state, since, last_value)
        before, before_alert = current, alert_id
        quiet = _quiet(current, judged, key)
        for judgement in judged.judgements(key) if quiet is None else ():
            step = advance(current, judgement, rule.for_, clear_for)
            current = step.state
            if step.transition == "firing":
                summary = summarize_alert(rule, subject.key, subject.site_id, judgement.value,
                                          per_device=subject.device_id is not None)
                row = conn.execute(INSERT_ALERT, (
                    rule.id, key, subject.site_id, subject.device_id, rule.severity, judgement.at,
                    judgement.value, judgement.value, summary)).fetchone()
                assert row is not None
                alert_id = row[0]
                _transition(conn, rule, alert_id, "firing", judgement.at, judgement.value)
                run.transitions.append((key, "firing", judgement.at))
            elif step.transition == "resolved":
                assert alert_id is not None
                conn.execute(RESOLVE_ALERT, (judgement.at, judgement.value, alert_id))
                _transition(conn, rule, alert_id, "resolved", judgement.at, judgement.value)
                run.transitions.append((key, "resolved", judgement.at))
                alert_id = None
        current = quiet or current
        active = current.state != "ok"
        # Only what changed is written: a subject that stays ok (nearly all, nearly always) costs no
        # write; one that is not ok keeps its latest value current, and so does its alert.
        if (current.state, alert_id) == (before.state, before_alert) and (
                not active or (current.since, current.last_value) == (before.since, before.last_value)):
            continue
        if alert_id is not None and current.state in ("firing", "clearing"):
            conn.execute(UPDATE_ALERT_LAST_VALUE, (current.last_value, alert_id))
        rows.append((rule.id, key, subject.site_id, subject.device_id, current.state,
                     current.since or judged.times[-1], alert_id, current.last_value))
    if rows:
        with conn.cursor() as cursor:
            cursor.executemany(UPSERT_STATE, rows)


def _quiet(current: SubjectState, judged: Judged, key: str) -> SubjectState | None:
    """The state after the span when it cannot change (ok and never holding, or firing and never
    cleared): the lifecycle's answer without walking it minute by minute. None: walk it."""
    if not ((current.state == "ok" and not judged.holds[key].any())
            or (current.state == "firing" and not judged.cleared[key].any())):
        return None
    values = judged.values[key]
    seen = ~np.isnan(values)
    if not seen.any():
        return current
    since = current.since
    if since is None:  # ok, never judged before: ok since its first judged time, as advance() says
        since = judged.times[int(np.argmax(seen))]
    return SubjectState(current.state, since, float(values[seen][-1]))
