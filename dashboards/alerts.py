"""Grafana alert rules generated from the alert rule file, in Grafana's provisioning file shape.

One definition: the rule file (smartcity/alerts/paser-rules.yaml unless told otherwise) that the
evaluator judges and the API lists. Each rule becomes one Grafana rule (uid ``smartcity-<id>``)
whose query answers a number per device or district, judged as the rule says:

- threshold: the window's aggregate through the planner (``smartcity_aggregate``), with the rule's
  ``min_coverage`` in its SQL; per-subject ``levels`` are a second query that Grafana's math
  subtracts (``$A - $L``), so each gauge is judged against its own line; ``hysteresis`` is the
  threshold's recovery level; ``for`` Grafana's pending period;
- rate of rise: the least-squares slope of the window's one-minute means, per hour, in SQL
  (``regr_slope``), as the evaluator computes it;
- silence: seconds since each device's newest reading (``latest_readings``);
- ISPU category: each district's index (``smartcity_site_ispu``) above the category's lower edge.

``clear_for`` has no counterpart among the provisioning fields of Grafana 12.0 this targets: the
rule resolves as soon as the value is past the recovery level (the evaluator keeps ``clear_for``).

Grafana expands ``$NAME`` from its environment in a rule's labels, not in its query model (so the
SQL's ``$__timeFrom()`` macros stay as written) nor in its annotations (so ``{{ $labels.x }}``
does): labels here hold no ``$``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.folder import FOLDER_TITLE
from smartcity.airquality import ISPU_CATEGORIES, ISPU_INDEX_POINTS
from smartcity.alerts.coverage import coverage_unit
from smartcity.alerts.describe import describe_rule
from smartcity.alerts.rulefile import load_rules
from smartcity.alerts.rules import (
    AnyRule,
    IspuCategoryRule,
    RateOfRiseRule,
    RuleFile,
    RuleSelector,
    SilenceRule,
    ThresholdRule,
    format_duration,
)
from smartcity.db.queries.grafana_alerts import (
    Selection,
    ispu_sql,
    levels_sql,
    rate_sql,
    silence_sql,
    transitions_annotation_sql,
    window_sql,
)

__all__ = ["EXPRESSION_UID", "GROUP_NAME", "RULE_UID_PREFIX", "alert_rule_groups", "grafana_rule",
           "ispu_edge", "transitions_annotation"]

# Grafana's server-side expressions (threshold, reduce, math) are a data source with this uid.
EXPRESSION_UID: Final = "__expr__"
RULE_UID_PREFIX: Final = "smartcity-"
GROUP_NAME: Final = "smartcity-rules"
_EVALUATE_EVERY: Final = "1m"
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)



def ispu_edge(category: str) -> int:
    """Return the index above which ``category`` begins (Tidak Sehat: above 100)."""
    band = [c.id for c in ISPU_CATEGORIES].index(category)
    return ISPU_INDEX_POINTS[band]


def _sql_query(ref_id: str, raw_sql: str, window: timedelta) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": int(window.total_seconds()), "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {
            "refId": ref_id,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "rawSql": raw_sql,
            "format": "table",
            "rawQuery": True,
            "editorMode": "code",
            "intervalMs": 60_000,
            "maxDataPoints": 43_200,
        },
    }


def _expression(ref_id: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": EXPRESSION_UID,
        "model": {"refId": ref_id, "datasource": {"type": EXPRESSION_UID, "uid": EXPRESSION_UID}, **model},
    }


def _threshold(ref_id: str, of: str, above: bool, level: float, hysteresis: float) -> dict[str, Any]:
    # The query answers one number per row (a table), which a threshold judges as it is: only
    # time series need a reduce step first. The recovery level (unloadEvaluator) is the rule's
    # hysteresis: a value hovering at the line does not flap.
    condition: dict[str, Any] = {"evaluator": {"type": "gt" if above else "lt", "params": [level]}}
    if hysteresis:
        back = level - hysteresis if above else level + hysteresis
        condition["unloadEvaluator"] = {"type": "lt" if above else "gt", "params": [back]}
    return _expression(ref_id, {"type": "threshold", "expression": of, "conditions": [condition]})


def _selection(select: RuleSelector) -> Selection:
    return Selection(select.kinds, select.sites, select.devices)


def _threshold_data(rule: ThresholdRule) -> list[dict[str, Any]]:
    above = rule.op in (">", ">=")  # Grafana's threshold has no "or equal": the edge itself is a tie
    unit = coverage_unit(rule.window)
    whole_hours = rule.window % _HOUR == timedelta(0)
    bucket = "1h" if whole_hours and not rule.min_coverage else "1m"
    window = window_sql(rule.metric, rule.aggregate, bucket, rule.scope, _selection(rule.select),
                        min_coverage=rule.min_coverage,
                        coverage_hours=int(rule.window / _HOUR) if unit == _HOUR else None,
                        coverage_minutes=int(rule.window / _MINUTE) if unit == _MINUTE else None)
    data = [_sql_query("A", window, rule.window)]
    if not rule.levels:
        return [*data, _threshold("B", "A", above, rule.value, rule.hysteresis)]
    levels = levels_sql(rule.metric, rule.scope, _selection(rule.select), rule.value, rule.levels)
    return [*data, _sql_query("L", levels, rule.window),
            _expression("C", {"type": "math", "expression": "$A - $L"}),
            _threshold("D", "C", above, 0.0, rule.hysteresis)]


def _rate_data(rule: RateOfRiseRule) -> list[dict[str, Any]]:
    statement = rate_sql(rule.metric, rule.scope, _selection(rule.select),
                         window_minutes=int(rule.window / _MINUTE), min_coverage=rule.min_coverage)
    return [_sql_query("A", statement, rule.window),
            _threshold("B", "A", True, rule.per_hour, rule.hysteresis)]


def _silence_data(rule: SilenceRule) -> list[dict[str, Any]]:
    return [_sql_query("A", silence_sql(_selection(rule.select)), rule.after),
            _threshold("B", "A", True, rule.after.total_seconds(), 0.0)]


def _ispu_data(rule: IspuCategoryRule) -> list[dict[str, Any]]:
    # The index's own window is its pollutants' averaging hours; the range only sets the time it
    # is computed at, the range's end.
    return [_sql_query("A", ispu_sql(rule.select.sites), timedelta(hours=24)),
            _threshold("B", "A", True, ispu_edge(rule.category), rule.hysteresis)]


def _where(rule: AnyRule) -> str:
    device_rule = isinstance(rule, SilenceRule) or (
        isinstance(rule, ThresholdRule | RateOfRiseRule) and rule.scope == "device")
    if device_rule:
        return "{{ $labels.device_id }} ({{ $labels.site_id }})"
    return "{{ $labels.site_id }}"


def grafana_rule(rule: AnyRule) -> dict[str, Any]:
    """Return the Grafana alert rule of ``rule``."""
    if isinstance(rule, ThresholdRule):
        data = _threshold_data(rule)
    elif isinstance(rule, RateOfRiseRule):
        data = _rate_data(rule)
    elif isinstance(rule, SilenceRule):
        data = _silence_data(rule)
    else:
        data = _ispu_data(rule)
    labels = {"rule_id": rule.id, "severity": rule.severity, "kind": rule.kind}
    if isinstance(rule, ThresholdRule | RateOfRiseRule):
        labels["metric"] = rule.metric
    return {
        "uid": f"{RULE_UID_PREFIX}{rule.id}",
        "title": rule.title,
        "condition": data[-1]["refId"],
        "data": data,
        # No readings is not a flood or a haze: silent devices have rules of their own.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": format_duration(rule.for_),
        "isPaused": not rule.enabled,
        "labels": labels,
        "annotations": {
            "summary": f"{rule.title}: {_where(rule)}",
            "description": rule.description or describe_rule(rule),
            "rule": describe_rule(rule),
        },
    }


def alert_rule_groups(rules: RuleFile | None = None, rules_path: Path | None = None) -> dict[str, Any]:
    """Return the alert-rule provisioning document (``apiVersion``, ``groups``) of a rule file.

    ``rules`` as loaded, else the file at ``rules_path``, else the shipped Paser rules.
    """
    loaded = rules if rules is not None else load_rules(rules_path)
    return {
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": GROUP_NAME,
            "folder": FOLDER_TITLE,
            "interval": _EVALUATE_EVERY,
            "rules": [grafana_rule(rule) for rule in loaded.rules],
        }],
    }


def transitions_annotation(rules: RuleFile | None = None) -> str:
    """Return the SQL of the dashboards' alert annotations: each transition the evaluator stored,
    titled as the rule file (default: the shipped one) titles its rule."""
    loaded = rules if rules is not None else load_rules()
    return transitions_annotation_sql({rule.id: rule.title for rule in loaded.rules})
