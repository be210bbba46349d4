"""The evaluator as a whole: a changed rule starts over, a rule that cannot be judged is named and
the others carry on, catch-up is bounded, and `smartcity alerts run --once` from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from simulators.fleet import DeviceSpec
from smartcity.alerts.rulefile import RuleFileError
from smartcity.alerts.rules import RuleFile
from smartcity.cli import main
from tests.alerts.conftest import Clock, Evaluator, transitions
from tests.alerts.history import register, store
from tests.logins import BrokerLogins, login_url
from tests.services import wait_until

START = datetime(2026, 9, 1, tzinfo=UTC)
STATION = DeviceSpec("ws-svc-a", "weather_station", "kuaro", -1.8, 116.0)
SILENCE = """
version: 1
rules:
  - id: svc-silent
    kind: silence
    title: {title}
    select: {{devices: [ws-svc-a]}}
    after: 30m
"""


def silent_station(url: str) -> None:
    register(url, [STATION], START - timedelta(hours=1))
    store(url, [STATION], START, START + timedelta(hours=1), 60.0)


def test_a_changed_rule_starts_over(alerts_url: str, evaluator: Evaluator) -> None:
    silent_station(alerts_url)
    clock = Clock(START + timedelta(minutes=50))
    evaluator(SILENCE.format(title="Diam"), clock).cycle()
    clock.now = START + timedelta(hours=2)
    evaluator(SILENCE.format(title="Diam"), clock).cycle()  # a restart with the same rule: carries on
    clock.now = START + timedelta(hours=2, minutes=5)
    evaluator(SILENCE.format(title="Tidak melapor"), clock).cycle()  # edited: starts over
    fired = START + timedelta(hours=1, minutes=29)  # the last reading was at 00:59, 30 minutes before
    with psycopg.connect(alerts_url) as conn:
        assert transitions(conn) == [
            ("svc-silent", "ws-svc-a", "firing", fired),
            ("svc-silent", "ws-svc-a", "resolved", clock.now),  # judged under a condition now gone
            ("svc-silent", "ws-svc-a", "firing", clock.now),  # the new definition: still silent
        ]
        assert conn.execute("SELECT count(*) FROM alerts WHERE state = 'firing'").fetchone() == (1,)


def test_a_rule_that_cannot_be_judged_is_named_and_the_others_carry_on(alerts_url: str,
                                                                        evaluator: Evaluator) -> None:
    silent_station(alerts_url)
    rules = SILENCE.format(title="Diam") + """
  - id: no-such-metric
    kind: threshold
    title: Unknown metric
    metric: moonlight
    window: 10m
    value: 1
  - id: no-such-category
    kind: ispu_category
    title: Unknown category
    category: ungu
"""
    # The loader refuses both (smartcity.alerts.rulefile); the evaluator still guards against a
    # catalogue in the database that differs from the one the file was checked against.
    with pytest.raises(RuleFileError, match="moonlight"):
        evaluator(rules, Clock(START))
    clock = Clock(START + timedelta(hours=2))
    service = evaluator(RuleFile.model_validate(yaml.safe_load(rules)), clock)
    cycle = service.cycle()
    assert set(cycle.failed) == {"no-such-metric", "no-such-category"}
    assert "moonlight" in cycle.failed["no-such-metric"] and "ungu" in cycle.failed["no-such-category"]
    assert [r.rule_id for r in cycle.runs] == ["svc-silent"] and cycle.runs[0].transitions
    with psycopg.connect(alerts_url) as conn:  # nothing of the failed rules was kept: judged again next time
        assert conn.execute("SELECT rule_id FROM alert_rule_progress").fetchall() == [("svc-silent",)]
    assert service.metrics.registry.get_sample_value("smartcity_alerts_rule_errors_total",
                                                     {"rule": "no-such-metric"}) == 1


def test_catch_up_is_bounded_by_max_catch_up_h(alerts_url: str, evaluator: Evaluator) -> None:
    silent_station(alerts_url)
    clock = Clock(START)
    evaluator(SILENCE.format(title="Diam"), clock, max_catch_up_h=2).cycle()
    clock.now = START + timedelta(hours=10)
    run = evaluator(SILENCE.format(title="Diam"), clock, max_catch_up_h=2).cycle().runs[0]
    assert run.skipped_from == START + timedelta(minutes=1)
    assert run.judged == 121 and run.evaluated_through == clock.now  # 08:00 to 10:00, both included


def test_alerts_run_once_from_the_command_line(alerts_url: str, tmp_path: Path,
                                               broker_login: BrokerLogins) -> None:
    silent_station(alerts_url)
    rules = tmp_path / "rules.yaml"
    rules.write_text(SILENCE.format(title="Diam"), encoding="utf-8")
    env = {"SMARTCITY_DATABASE_URL": alerts_url, "SMARTCITY_ALERTS__RULES_FILE": str(rules),
           "SMARTCITY_ALERTS__MQTT_URL": login_url(broker_login("alerts")), "SMARTCITY_ALERTS__SETTLE_S": "0"}
    result = CliRunner().invoke(main, ["alerts", "run", "--once", "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert done["failed"] == {} and done["rules"][0]["rule_id"] == "svc-silent"
    assert done["rules"][0]["transitions"] == 1 and done["published"] == 1  # silent since 01:00, judged now
    rules.write_text("version: 1\nrules:\n  - id: x\n    kind: silence\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["alerts", "run", "--once"], env=env)
    assert result.exit_code == 1 and "rules.yaml: line 3: rules[0] (x)" in result.output
    result = CliRunner().invoke(main, ["alerts", "run", "--json"], env=env)
    assert result.exit_code == 2 and "--json needs --once" in result.output


def test_the_service_cycles_until_stopped(alerts_url: str, evaluator: Evaluator) -> None:
    import threading

    silent_station(alerts_url)
    service = evaluator(SILENCE.format(title="Diam"), Clock(START + timedelta(hours=2)), interval_s=0.05)
    stop, cycles = threading.Event(), []
    thread = threading.Thread(target=service.run, args=(stop, cycles.append))
    thread.start()
    try:
        wait_until(lambda: len(cycles) >= 3, message="three cycles")
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert sum(len(r.transitions) for c in cycles for r in c.runs) == 1  # judged once, not again
