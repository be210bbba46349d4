"""Grafana's provisioning files parsed and checked: the generated ones are current, the data source
is the one of dashboards/datasource.py with the read-only login, the provider reads the dashboards
JSON, and each alert rule queries the planner through a data source that exists, with thresholds
from their one definition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from api.indices import ISPU_TABLE, compute_sub_index, ispu_category
from dashboards.alerts import EXPRESSION_UID, alert_rule_groups, ispu_edge
from dashboards.datasource import DATASOURCE_NAME, DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.folder import FOLDER_TITLE
from dashboards.provision import (
    DATASOURCE_FILE,
    PROVISIONING_DIR,
    RULES_FILE,
    generated_files,
    main,
    stale_files,
)
from simulators.models.river_level_sensor import WARNING_LEVELS_M
from smartcity.alerts.rulefile import load_rules
from smartcity.alerts.rules import IspuCategoryRule, RateOfRiseRule, SilenceRule, ThresholdRule
from smartcity.catalog import METRICS
from smartcity.settings import DEFAULT_AVERAGING_HOURS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DATASOURCES = yaml.safe_load(DATASOURCE_FILE.read_text())
PROVIDERS = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "smartcity.yml").read_text())
RULES = [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


def test_the_generated_files_are_current() -> None:
    assert stale_files() == [], "run python -m dashboards.provision"
    assert main(["--check"]) == 0


def test_a_stale_file_is_found(tmp_path: Path) -> None:
    expected = {tmp_path / name: text for name, text in
                zip(("a.yml", "b.yml", "missing.yml"), generated_files().values(), strict=False)}
    (tmp_path / "a.yml").write_text(next(iter(generated_files().values())))
    (tmp_path / "b.yml").write_text(RULES_FILE.read_text().replace("55.4", "55.5"))
    assert stale_files(expected) == [tmp_path / "b.yml"]
    expected[tmp_path / "missing.yml"] = "x"
    assert stale_files(expected) == [tmp_path / "b.yml", tmp_path / "missing.yml"]


@pytest.mark.parametrize("path", sorted(PROVISIONING_DIR.rglob("*.y*ml")), ids=lambda p: p.name)
def test_every_provisioning_file_is_yaml_of_version_1(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict) and document["apiVersion"] == 1


def test_the_data_source_is_the_constants_with_the_read_only_login() -> None:
    (datasource,) = DATASOURCES["datasources"]
    assert (datasource["uid"], datasource["type"], datasource["name"]) == (
        DATASOURCE_UID, DATASOURCE_TYPE, DATASOURCE_NAME)
    json_data = datasource["jsonData"]
    assert json_data["timescaledb"] is True and json_data["timeInterval"] == "1m"
    # Grafana 12 reads the database only under jsonData and the password only under secureJsonData.
    assert json_data["database"] == COMPOSE["services"]["timescaledb"]["environment"]["POSTGRES_DB"]
    assert "database" not in datasource and "password" not in datasource
    assert datasource["secureJsonData"] == {"password": "$GRAFANA_DB_PASSWORD"}
    # The login compose creates as a member of smartcity_grafana, on compose's database host.
    login = COMPOSE["services"]["db-logins"]["environment"]
    assert datasource["user"] == login["GRAFANA_DB_USER"]
    assert datasource["url"] == f"{login['PGHOST']}:5432"
    assert datasource["editable"] is False


def test_the_provider_reads_the_dashboards_json_read_only() -> None:
    (provider,) = PROVIDERS["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["foldersFromFilesStructure"] is True
    mounted = {volume["target"]: volume for volume in COMPOSE["services"]["grafana"]["volumes"]
               if isinstance(volume, dict)}
    json_mount = mounted[f"{provider['options']['path']}/{FOLDER_TITLE}"]
    assert (ROOT / json_mount["source"]).resolve() == ROOT / "dashboards" / "json"
    assert json_mount["read_only"] is True


def test_the_committed_rules_are_the_generated_ones() -> None:
    assert [rule for group in alert_rule_groups()["groups"] for rule in group["rules"]] == RULES
    (group,) = yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert group["folder"] == FOLDER_TITLE and group["interval"] == "1m"


def test_every_rule_of_the_rule_file_is_a_grafana_rule_in_its_order() -> None:
    shipped = load_rules().rules
    assert [r["uid"] for r in RULES] == [f"smartcity-{rule.id}" for rule in shipped]
    for rule, grafana in zip(shipped, RULES, strict=True):
        assert grafana["title"] == rule.title and grafana["labels"]["rule_id"] == rule.id
        assert grafana["labels"]["severity"] == rule.severity and grafana["isPaused"] is not rule.enabled


def _sql(rule: dict[str, Any], ref_id: str = "A") -> str:
    (query,) = [q for q in rule["data"] if q["refId"] == ref_id]
    text: str = query["model"]["rawSql"]
    return text


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule["uid"])
def test_every_rule_is_well_formed(rule: dict[str, Any]) -> None:
    refs = {query["refId"] for query in rule["data"]}
    assert len(refs) == len(rule["data"]) and rule["condition"] in refs
    assert rule["condition"] == rule["data"][-1]["refId"]
    for query in rule["data"]:
        # A rule's query names the provisioned data source or Grafana's expressions, nothing else.
        assert query["datasourceUid"] in (DATASOURCE_UID, EXPRESSION_UID)
        assert query["model"]["refId"] == query["refId"]
        if query["datasourceUid"] == DATASOURCE_UID:
            model = query["model"]
            assert model["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
            assert model["format"] == "table"
        elif query["model"]["type"] == "threshold":
            assert query["model"]["expression"] in refs - {query["refId"]}
        else:  # math over two earlier results
            assert query["model"]["type"] == "math"
            assert {ref.strip("$ ") for ref in query["model"]["expression"].split("-")} <= refs
    # The subject's number comes from the planner for metric rules; the time is the range's end.
    kind = rule["labels"]["kind"]
    source = {"threshold": "FROM smartcity_aggregate(", "rate_of_rise": "FROM smartcity_aggregate(",
              "silence": "LEFT JOIN latest_readings", "ispu_category": "FROM smartcity_site_ispu("}[kind]
    assert source in _sql(rule) and "$__timeTo()" in _sql(rule)
    if kind in ("threshold", "rate_of_rise"):
        assert "$__timeFrom()" in _sql(rule)
    # Grafana expands $NAME from its environment in labels: a label with $ would change.
    assert all("$" not in value for value in rule["labels"].values())
    assert rule["noDataState"] in ("OK", "NoData", "Alerting")
    assert rule["execErrState"] in ("Error", "Alerting")
    assert len({r["uid"] for r in RULES}) == len(RULES)


def _threshold(rule: dict[str, Any]) -> tuple[str, float, tuple[str, float] | None]:
    (condition,) = [q for q in rule["data"] if q["refId"] == rule["condition"]]
    (judged,) = condition["model"]["conditions"]
    recovery = judged.get("unloadEvaluator")
    return (judged["evaluator"]["type"], float(judged["evaluator"]["params"][0]),
            None if recovery is None else (recovery["type"], float(recovery["params"][0])))


def _grafana(rule_id: str) -> dict[str, Any]:
    return next(r for r in RULES if r["uid"] == f"smartcity-{rule_id}")


def test_the_pm25_rule_fires_above_the_start_of_tidak_sehat_with_75_percent_of_the_hours() -> None:
    rule = _grafana("pm25-24h-tidak-sehat")
    kind, edge, recovery = _threshold(rule)
    assert kind == "gt" and edge in ISPU_TABLE["pm25"] and recovery == ("lt", edge - 5.0)
    # At the edge the index is 100, the top of Sedang; any concentration above it is Tidak Sehat.
    at_edge, above = compute_sub_index("pm25", edge), compute_sub_index("pm25", edge + 0.01)
    assert at_edge.value == 100 and at_edge.category.name == "Sedang"
    assert above.value > 100 and above.category.name == ispu_category(above.value).name == "Tidak Sehat"
    (query,) = [q for q in rule["data"] if q["datasourceUid"] == DATASOURCE_UID]
    assert query["relativeTimeRange"] == {"from": DEFAULT_AVERAGING_HOURS["pm25"] * 3600, "to": 0}
    assert "'pm25'" in _sql(rule) and "GROUP BY d.site_id" in _sql(rule)
    assert "::float8 / 24 >= 0.75" in _sql(rule)  # min_coverage, counted in hours as the ISPU does
    assert rule["for"] == "0s"


def test_each_river_stage_judges_each_gauge_against_its_level_for_ten_minutes() -> None:
    shipped = {rule.id: rule for rule in load_rules().rules}
    for stage, level in WARNING_LEVELS_M.items():
        rule, source = _grafana(f"river-{stage}"), shipped[f"river-{stage}"]
        assert isinstance(source, ThresholdRule)
        # The aggregate minus each gauge's level (query L) above zero; back 10 cm below to recover.
        assert _threshold(rule) == ("gt", 0.0, ("lt", -source.hysteresis))
        assert [d["refId"] for d in rule["data"]] == ["A", "L", "C", "D"]
        assert rule["data"][2]["model"]["expression"] == "$A - $L"
        for device in source.levels:
            assert f"('{device}', {level}::float8)" in _sql(rule, "L")
        assert rule["for"] == "10m" and rule["data"][0]["relativeTimeRange"]["from"] == 300


def test_the_other_kinds_carry_their_numbers() -> None:
    for rule in load_rules().rules:
        grafana = _grafana(rule.id)
        if isinstance(rule, RateOfRiseRule):
            assert _threshold(grafana) == ("gt", rule.per_hour, ("lt", rule.per_hour - rule.hysteresis))
            assert "regr_slope(value, extract(epoch FROM time) / 3600)" in _sql(grafana)
        elif isinstance(rule, SilenceRule):
            assert _threshold(grafana) == ("gt", rule.after.total_seconds(), None)
            assert f"ARRAY['{rule.select.kinds[0]}']" in _sql(grafana)
        elif isinstance(rule, IspuCategoryRule):
            assert _threshold(grafana)[:2] == ("gt", ispu_edge(rule.category))
    assert ispu_edge("tidak_sehat") == 100 and ispu_edge("sangat_tidak_sehat") == 200


def test_another_rule_file_gives_its_rules_and_a_bad_one_its_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - {id: gauge-high, kind: threshold, title: High,"
                    " metric: water_level, window: 5m, value: 2.5}\n")
    text = generated_files(path)[RULES_FILE]
    assert str(path) in text.splitlines()[0]
    (rule,) = [r for group in yaml.safe_load(text)["groups"] for r in group["rules"]]
    assert rule["uid"] == "smartcity-gauge-high" and _threshold(rule) == ("gt", 2.5, None)
    path.write_text("version: 1\nrules:\n  - {id: gauge-high, kind: threshold, title: High,"
                    " metric: water_levl, window: 5m, value: 2.5}\n")
    assert main(["--check", "--rules", str(path)]) == 1
    assert capsys.readouterr().err == (f"{path}:3: rules[0] (gauge-high).metric: unknown metric 'water_levl';"
                                       f" known: {', '.join(METRICS)}\n")
