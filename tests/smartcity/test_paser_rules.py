"""The shipped Paser rules hold the numbers of their one definition: the flood stages of the metric
catalogue for every demo gauge, the ISPU table's Tidak Sehat edge for PM2.5, the ISPU categories,
and a silence rule for every device kind; so the file cannot drift from the catalogue."""

from __future__ import annotations

from datetime import timedelta

from simulators.fleet import demo_fleet
from smartcity.airquality import ISPU_CATEGORIES, ISPU_TABLE
from smartcity.alerts.rulefile import DEFAULT_RULES_PATH, load_rules
from smartcity.alerts.rules import IspuCategoryRule, RateOfRiseRule, SilenceRule, ThresholdRule
from smartcity.catalog import DEVICE_KINDS, RIVER_WARNING_LEVELS_M
from smartcity.settings import DEFAULT_AVERAGING_HOURS
from smartcity.settings.domain import SimulatorSettings

RULES = load_rules(DEFAULT_RULES_PATH).rules
BY_ID = {rule.id: rule for rule in RULES}
SEVERITY_ORDER = ("info", "warning", "critical")


def test_the_file_is_of_a_sensible_size_and_every_rule_is_on() -> None:
    assert 15 <= len(RULES) <= 20
    assert all(rule.enabled for rule in RULES)


def test_each_flood_stage_is_a_rule_with_every_demo_gauge_at_its_catalogue_level() -> None:
    gauges = {spec.device_id for spec in demo_fleet() if spec.kind == "river_level_sensor"}
    assert len(gauges) == 3
    stages = sorted(RIVER_WARNING_LEVELS_M.items(), key=lambda item: item[1])
    severities = []
    for stage, level in stages:
        rule = BY_ID[f"river-{stage}"]
        assert isinstance(rule, ThresholdRule)
        assert (rule.metric, rule.scope, rule.op, rule.select.kinds) == (
            "water_level", "device", ">", ("river_level_sensor",))
        assert rule.value == level and rule.levels == dict.fromkeys(gauges, level)
        assert rule.hysteresis > 0 and rule.clear_for > timedelta(0)
        severities.append(SEVERITY_ORDER.index(rule.severity))
    assert BY_ID["river-waspada"].for_ == timedelta(minutes=10)
    assert severities == sorted(severities) and len(set(severities)) == len(stages)  # rising with the stage


def test_the_rate_of_rise_rule_is_twenty_centimetres_an_hour() -> None:
    rule = BY_ID["river-rising-fast"]
    assert isinstance(rule, RateOfRiseRule) and rule.metric == "water_level"
    assert rule.per_hour == 0.20 and rule.window == timedelta(hours=1)  # m/h: the catalogue's unit is m


def test_the_haze_rule_is_the_ispu_tidak_sehat_edge_over_its_averaging_period_with_75_percent() -> None:
    rule = BY_ID["pm25-24h-tidak-sehat"]
    band = [category.id for category in ISPU_CATEGORIES].index("tidak_sehat")
    assert isinstance(rule, ThresholdRule)
    assert (rule.metric, rule.scope, rule.aggregate, rule.op) == ("pm25", "site", "avg", ">")
    assert rule.value == ISPU_TABLE["pm25"][band]  # where index 100 ends and Tidak Sehat begins
    assert rule.window == timedelta(hours=DEFAULT_AVERAGING_HOURS["pm25"])
    assert rule.min_coverage == 0.75


def test_the_ispu_rules_are_tidak_sehat_and_sangat_tidak_sehat_with_rising_severity() -> None:
    ispu = [rule for rule in RULES if isinstance(rule, IspuCategoryRule)]
    assert [rule.category for rule in ispu] == ["tidak_sehat", "sangat_tidak_sehat"]
    assert [SEVERITY_ORDER.index(rule.severity) for rule in ispu] == [1, 2]


def test_every_device_kind_has_one_silence_rule_longer_than_several_reports() -> None:
    silence = [rule for rule in RULES if isinstance(rule, SilenceRule)]
    by_kind = {kind: rule for rule in silence for kind in rule.select.kinds}
    assert sorted(by_kind) == sorted(DEVICE_KINDS) and len(silence) == len(DEVICE_KINDS)
    report = timedelta(seconds=SimulatorSettings().interval_s)
    assert all(rule.after >= 10 * report for rule in silence)
    # Lights, bins and meters report rarely; the river gauges matter most in a flood.
    rare = ("street_light", "waste_bin", "water_meter")
    environment = [by_kind[k].after for k in DEVICE_KINDS if k not in rare]
    assert min(by_kind[k].after for k in rare) > max(environment)
    assert by_kind["river_level_sensor"].after == min(environment)
