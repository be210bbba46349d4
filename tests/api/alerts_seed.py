"""Alerts written straight into migration 014's tables, as the evaluator would, for the API's tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from tests.services import ALERT_TABLES

__all__ = ["ALERT_TABLES", "T0", "clear_alerts", "insert_alert"]

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def clear_alerts(db: psycopg.Connection) -> None:
    """Empty the alert tables (mid-test; every test starts with them empty, tests/conftest.py)."""
    db.execute(f"TRUNCATE {', '.join(ALERT_TABLES)} RESTART IDENTITY")


def insert_alert(db: psycopg.Connection, rule_id: str, subject: str, site_id: str, *,
                 fired_minutes: int, resolved_minutes: int | None = None, device: bool = True,
                 severity: str = "warning", value: float = 3.2) -> int:
    """Insert an alert that fired ``fired_minutes`` after T0 (and resolved later, if given) and its
    transitions; return its id."""
    fired_at = T0 + timedelta(minutes=fired_minutes)
    resolved_at = None if resolved_minutes is None else T0 + timedelta(minutes=resolved_minutes)
    state = "firing" if resolved_at is None else "resolved"
    (alert_id,) = db.execute(
        "INSERT INTO alerts (rule_id, subject, site_id, device_id, severity, state, fired_at, resolved_at,"
        " value, last_value, summary) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (rule_id, subject, site_id, subject if device else None, severity, state, fired_at, resolved_at,
         value, value + 0.1, f"{subject}: {rule_id} at {value}")).fetchone()
    db.execute("INSERT INTO alert_transitions (alert_id, transition, \"at\", value)"
               " VALUES (%s, 'firing', %s, %s)", (alert_id, fired_at, value))
    if resolved_at is not None:
        db.execute("INSERT INTO alert_transitions (alert_id, transition, \"at\", value)"
                   " VALUES (%s, 'resolved', %s, %s)", (alert_id, resolved_at, value - 0.5))
    return int(alert_id)
