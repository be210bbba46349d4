"""`smartcity alerts rules` and `smartcity alerts check`: the shipped rules listed, a bad file's every
problem printed as PATH:LINE: field: why with exit status 1, SMARTCITY_ALERTS__RULES_FILE honoured."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner, Result

from smartcity.alerts.rulefile import DEFAULT_RULES_PATH, load_rules
from smartcity.cli import main

GOOD = """\
version: 1
rules:
  - id: gauge-high
    kind: threshold
    title: Gauge high
    metric: water_level
    window: 5m
    value: 2.5
"""
BAD = """\
version: 1
rules:
  - id: gauge-high
    kind: threshold
    title: Gauge high
    metric: water_levl
    window: 5m
    value: 2.5
  - id: gauge-silent
    kind: silence
    title: Gauge silent
    after: 10 minutes
"""


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def test_rules_lists_the_shipped_rules_by_default() -> None:
    result = _run("alerts", "rules")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{DEFAULT_RULES_PATH}: {len(load_rules().rules)} rules"
    assert [line.split()[0] for line in lines[1:]] == [rule.id for rule in load_rules().rules]
    assert "river-waspada               info      water_level avg over 5m > 3 m per device" in result.stdout


def test_rules_json_is_the_rule_file_as_the_api_lists_it(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    result = _run("alerts", "rules", "--file", str(path), "--json")
    assert result.exit_code == 0, result.output
    listed = orjson.loads(result.stdout)
    assert listed["file"] == str(path) and listed["version"] == 1
    (rule,) = listed["rules"]
    assert (rule["id"], rule["window"], rule["value"], rule["for"]) == ("gauge-high", "5m", 2.5, "0s")


def test_the_setting_names_the_default_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    result = _run("alerts", "rules", env={"SMARTCITY_ALERTS__RULES_FILE": str(path)})
    assert result.exit_code == 0 and result.stdout.startswith(f"{path}: 1 rules")


def test_a_bad_file_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(BAD)
    for args in (("alerts", "check", str(path)), ("alerts", "rules", "--file", str(path))):
        result = _run(*args)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"{path}:6: rules[0] (gauge-high).metric: unknown metric 'water_levl'; known: "
            + result.stderr.splitlines()[0].split("known: ")[1],
            f"{path}:12: rules[1] (gauge-silent).after: '10 minutes' is not a duration: write a whole"
            " number and s, m, h or d (10m, 24h)",
            f"Error: 2 problems in {path}",
        ]
        assert "water_level" in result.stderr.splitlines()[0]  # the known metrics are listed


def test_check_says_a_good_file_is_good_and_a_missing_one_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    good = _run("alerts", "check", str(path))
    assert good.exit_code == 0 and good.stdout == f"{path}: 1 rules, no problems\n"
    missing = _run("alerts", "check", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1
    assert f"{tmp_path / 'nope.yaml'}: (file): cannot read: No such file or directory" in missing.stderr
