"""Fixtures of the alert tests: the alert tables emptied per test (migration 014's tables are not
among the shared data tables), and an evaluator factory with a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from smartcity.alerts.rulefile import load_rules
from smartcity.alerts.rules import RuleFile
from smartcity.alerts.service import AlertService
from smartcity.broker_url import BrokerAddress
from smartcity.settings.alerts import AlertsSettings
from tests.services import ALERT_TABLES


@pytest.fixture
def alerts_url(database_url: str) -> str:
    """The test database with empty alert tables."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {', '.join(ALERT_TABLES)} RESTART IDENTITY CASCADE")
    return database_url


class Clock:
    """The evaluation clock of a test: it moves only when the test says."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Evaluator = Callable[..., AlertService]


@pytest.fixture
def evaluator(alerts_url: str, tmp_path: Path) -> Iterator[Evaluator]:
    """``evaluator(rules_yaml, clock, broker=None, url=None, **settings)`` → a started AlertService,
    closed at the end of the test (a RuleFile instead of YAML skips the loader's checks)."""
    made: list[AlertService] = []

    def make(rules_yaml: str | RuleFile, clock: Clock, broker: BrokerAddress | None = None,
             url: str | None = None, **settings: object) -> AlertService:
        rules = rules_yaml
        if isinstance(rules_yaml, str):  # through the loader and its checks, as the service reads it
            path = tmp_path / f"rules-{len(made)}.yaml"
            path.write_text(rules_yaml, encoding="utf-8")
            rules = load_rules(path)
        assert isinstance(rules, RuleFile)
        config = AlertsSettings.model_validate({"settle_s": 0, "max_catch_up_h": 240, **settings})
        service = AlertService(url or alerts_url, rules, config, broker=broker, clock=clock)
        made.append(service)
        return service

    yield make
    for service in made:
        service.close()


def transitions(conn: psycopg.Connection) -> list[tuple[str, str, str, datetime]]:
    """Every stored transition as (rule, subject, transition, at), in id order."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        'SELECT a.rule_id, a.subject, t.transition, t."at" FROM alert_transitions t'
        " JOIN alerts a ON a.id = t.alert_id ORDER BY t.id").fetchall()]
