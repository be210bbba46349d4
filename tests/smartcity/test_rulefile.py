"""The rule-file loader: every problem of a bad file named by line, field and why, all at once;
a good file round-trips; anchors work; a file that cannot be read says why."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from smartcity.alerts.coverage import coverage_unit
from smartcity.alerts.rulefile import RuleFileError, RuleProblem, load_rules, parse_rules
from smartcity.alerts.rules import RuleFile, ThresholdRule

PATH = Path("rules.yaml")

# A rule of each kind that passes every check; the bad files below change one thing each. A missing
# field (or one left to its default) is reported at the line its rule starts on.
GOOD = """\
version: 1
rules:
  - id: river-high
    kind: threshold
    title: River high
    metric: water_level
    select: {kinds: [river_level_sensor], sites: [kuaro], devices: [river-kuaro-01]}
    aggregate: avg
    window: 5m
    value: 3.0
    levels: {river-kuaro-01: 3.2}
    hysteresis: 0.1
    for: 10m
    clear_for: 30m
    webhook: https://bridge.bpbd.example/alerts
  - id: river-fast
    kind: rate_of_rise
    title: River rising fast
    metric: water_level
    window: 1h
    per_hour: 0.2
  - id: pm25-day
    kind: threshold
    title: Haze
    metric: pm25
    scope: site
    window: 24h
    value: 55.4
    levels: {kuaro: 50}
    min_coverage: 0.75
  - id: silent-gauge
    kind: silence
    title: Gauge silent
    select: {kinds: [river_level_sensor]}
    after: 15m
  - id: ispu-bad
    kind: ispu_category
    title: ISPU bad
    select: {sites: [kuaro]}
    category: tidak_sehat
"""


def _problems(text: str) -> list[RuleProblem]:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, PATH)
    assert caught.value.path == PATH
    return caught.value.problems


def _replace(old: str, new: str, count: int = 1) -> str:
    assert GOOD.count(old) >= count, old
    return GOOD.replace(old, new, count)


# (name, file text, [(line, field, fragment of why)]): exactly these problems, in this order.
BAD_FILES = [
    ("unknown metric", _replace("metric: water_level", "metric: water_levl"),
     [(6, "rules[0] (river-high).metric", "unknown metric 'water_levl'; known: pm25")]),
    ("kind without the metric", _replace("kinds: [river_level_sensor], ", "kinds: [weather_station], "),
     [(7, "rules[0] (river-high).select.kinds[0]", "a weather_station does not report water_level")]),
    ("unknown kind", _replace("kinds: [river_level_sensor]}\n    after", "kinds: [boat]}\n    after"),
     [(34, "rules[3] (silent-gauge).select.kinds[0]", "unknown device kind 'boat'")]),
    ("unknown site", _replace("sites: [kuaro]}\n    category", "sites: [kuar]}\n    category"),
     [(39, "rules[4] (ispu-bad).select.sites[0]", "unknown site 'kuar'; known: tanah-grogot")]),
    ("malformed device id", _replace("devices: [river-kuaro-01]", "devices: [River/01]"),
     [(7, "rules[0] (river-high).select.devices[0]", "'River/01' is not a device id"),
      (11, "rules[0] (river-high).levels.river-kuaro-01", "which the rule's select.devices leaves out")]),
    ("malformed level key", _replace("levels: {river-kuaro-01: 3.2}", "levels: {'Kuaro Gauge': 3.2}"),
     [(11, "rules[0] (river-high).levels.Kuaro Gauge", "'Kuaro Gauge' is not a device id")]),
    ("site level for an unselected site",
     _replace("    scope: site\n", "    scope: site\n    select: {sites: [long-kali]}\n"),
     [(30, "rules[2] (pm25-day).levels.kuaro", "names site 'kuaro', which the rule's select.sites")]),
    ("site level for an unknown site", _replace("levels: {kuaro: 50}", "levels: {paris: 50}"),
     [(29, "rules[2] (pm25-day).levels.paris", "unknown site 'paris' (a site rule's levels are per site)")]),
    ("unknown ISPU category", _replace("category: tidak_sehat", "category: unhealthy"),
     [(40, "rules[4] (ispu-bad).category", "unknown ISPU category 'unhealthy'; known: baik, sedang")]),
    ("ISPU category that always fires", _replace("category: tidak_sehat", "category: baik"),
     [(40, "rules[4] (ispu-bad).category", "the rule would always fire")]),
    ("increase is no threshold aggregate", _replace("aggregate: avg", "aggregate: increase"),
     [(8, "rules[0] (river-high).aggregate", "use a rate_of_rise rule")]),
    ("mean of a counter", _replace("metric: pm25", "metric: water_volume").replace(
        "levels: {kuaro: 50}\n    min_coverage: 0.75", "levels: {kuaro: 50}"),
     [(22, "rules[2] (pm25-day).aggregate", "water_volume is a counter (a meter reading that only grows)")]),
    ("coverage of a last value", _replace("window: 24h", "aggregate: last\n    window: 24h"),
     [(31, "rules[2] (pm25-day).min_coverage", "not to last")]),
    ("webhook not http", _replace("https://bridge.bpbd.example/alerts", "ftp://bridge/alerts"),
     [(15, "rules[0] (river-high).webhook", "is not an http(s) URL")]),
    ("webhook without host", _replace("https://bridge.bpbd.example/alerts", "https:///alerts"),
     [(15, "rules[0] (river-high).webhook", "names no host")]),
    ("duplicate rule id", _replace("id: river-fast", "id: river-high"),
     [(16, "rules[1] (river-high).id", "duplicate id 'river-high': rules[0] on line 3 has it already")]),
    ("duplicate YAML key", _replace("    window: 5m\n", "    window: 5m\n    window: 15m\n"),
     [(10, "rules[0] (river-high).window", "duplicate key 'window' (first on line 9)")]),
    ("bad duration", _replace("window: 1h", "window: 1 hour"),
     [(20, "rules[1] (river-fast).window", "'1 hour' is not a duration: write a whole number")]),
    ("window not whole minutes", _replace("window: 5m", "window: 90s"),
     [(9, "rules[0] (river-high).window", "must be whole minutes")]),
    ("misspelt field", _replace("hysteresis: 0.1", "hysteris: 0.1"),
     [(12, "rules[0] (river-high).hysteris", "is not a field of a threshold rule (misspelt?)")]),
    ("missing field: the rule's line", _replace("    after: 15m\n", ""),
     [(31, "rules[3] (silent-gauge).after", "required for a silence rule; add it")]),
    ("unknown rule kind", _replace("kind: silence", "kind: quiet"),
     [(32, "rules[3] (silent-gauge).kind", "unknown rule kind 'quiet'; known: threshold, rate_of_rise")]),
    ("rule without kind", _replace("    kind: silence\n", ""),
     [(31, "rules[3] (silent-gauge)", "every rule needs a kind")]),
    ("bad id", _replace("id: river-fast", "id: River Fast"),
     [(16, "rules[1] (River Fast).id", "'River Fast' is not an id (3–64 characters")]),
    ("wrong version", _replace("version: 1", "version: 2"),
     [(1, "version", "2 is not a version this platform reads (1)")]),
    ("unknown top-level key", "verison: 1\nrules: []\n",
     [(1, "verison", "is not a top-level field"), (1, "version", "required: write 'version: 1'")]),
    ("rules not a list", "version: 1\nrules: {id: x}\n", [(2, "rules", "must be a list of rules")]),
    ("empty file", "", [(None, "", "the file is empty")]),
    ("not YAML", "version: 1\nrules:\n  - id: [x\n", [(4, "", "not YAML")]),
    ("rate hysteresis above the rate", _replace("per_hour: 0.2", "per_hour: 0.2\n    hysteresis: 0.3"),
     [(22, "rules[1] (river-fast).hysteresis", "must be below per_hour (0.2)")]),
    ("ISPU rule selecting kinds",
     _replace("select: {sites: [kuaro]}", "select: {kinds: [air_quality_station]}"),
     [(39, "rules[4] (ispu-bad).select.kinds", "judges sites (their index): select sites only")]),
]


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in BAD_FILES],
                         ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_names_each_problem_by_line_field_and_why(text: str, expected: list[tuple[int, str, str]],
                                                             ) -> None:
    problems = _problems(text)
    assert [(p.line, p.field) for p in problems] == [(line, field) for line, field, _ in expected]
    for problem, (_, _, why) in zip(problems, expected, strict=True):
        assert why in problem.why, problem


def test_every_problem_comes_at_once() -> None:
    text = (_replace("metric: water_level", "metric: water_levl")
            .replace("hysteresis: 0.1", "hysteris: 0.1")
            .replace("category: tidak_sehat", "category: unhealthy")
            .replace("id: river-fast", "id: river-high"))
    problems = _problems(text)
    assert [(p.line, p.field.split(".")[-1]) for p in problems] == [
        (6, "metric"), (12, "hysteris"), (16, "id"), (40, "category")]


def test_the_error_prints_path_line_field_and_why() -> None:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(_replace("window: 5m", "window: 90s"), PATH)
    assert caught.value.lines() == ["rules.yaml:9: rules[0] (river-high).window: must be whole minutes"
                                    " (the rollups and the evaluator judge minutes)"]
    assert "line 9: rules[0] (river-high).window" in str(caught.value)


def test_a_good_file_loads_and_round_trips() -> None:
    rules = parse_rules(GOOD, PATH)
    assert [r.id for r in rules.rules] == ["river-high", "river-fast", "pm25-day", "silent-gauge", "ispu-bad"]
    river = rules.rules[0]
    assert isinstance(river, ThresholdRule) and river.levels == {"river-kuaro-01": 3.2}
    # Listed as JSON (GET /alerts/rules) and written back as YAML, the file is the same rules.
    dumped = yaml.safe_dump(rules.model_dump(mode="json", by_alias=True, exclude_defaults=True))
    assert parse_rules(dumped, PATH) == rules
    assert rules.model_dump(mode="json", by_alias=True)["rules"][0]["for"] == "10m"


def test_anchors_and_merges_are_fine_and_a_merged_key_may_be_overridden() -> None:
    text = textwrap.dedent("""\
        version: 1
        x-gauge: &gauge
          kind: threshold
          metric: water_level
          window: 5m
          value: 3.0
        rules:
          - <<: *gauge
            id: stage-one
            title: Stage one
          - <<: *gauge
            id: stage-two
            title: Stage two
            value: 3.5
        """)
    rules = parse_rules(text, PATH).rules
    assert [(r.id, r.value) for r in rules if isinstance(r, ThresholdRule)] == [("stage-one", 3.0),
                                                                                 ("stage-two", 3.5)]
    # A problem inside a merged part is reported where the part is written.
    problems = _problems(text.replace("metric: water_level", "metric: river"))
    assert [(p.line, p.field) for p in problems] == [(4, "rules[0] (stage-one).metric"),
                                                     (4, "rules[1] (stage-two).metric")]


def test_a_file_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError) as caught:
        load_rules(tmp_path / "missing.yaml")
    assert caught.value.problems == [RuleProblem(None, "", "cannot read: No such file or directory")]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\nrules: [\xff]\n")
    with pytest.raises(RuleFileError) as caught:
        load_rules(binary)
    assert "not UTF-8" in caught.value.problems[0].why


def test_the_shipped_file_loads() -> None:
    assert isinstance(load_rules(), RuleFile) and load_rules(None) == load_rules()


def test_aliases_of_aliases_are_refused_before_they_expand() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines.append("rules: *a8")
    problems = _problems("\n".join(lines) + "\n")
    assert problems == [RuleProblem(None, "", "the file stands for more than 100,000 values"
                                                " (aliases of aliases?)")]


def test_coverage_counts_hours_for_day_long_windows_and_minutes_below() -> None:
    assert coverage_unit(timedelta(hours=24)) == coverage_unit(timedelta(days=7)) == timedelta(hours=1)
    assert coverage_unit(timedelta(hours=23)) == coverage_unit(timedelta(minutes=5)) == timedelta(minutes=1)
