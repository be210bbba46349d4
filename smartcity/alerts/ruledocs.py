"""What each field of a rule means, for the JSON schema of the rules (the API's OpenAPI document).

Kept beside the models rather than in each ``Field``, so the models stay readable as the file
format; ``document_rule_schema`` fills every property's description and each model's example.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FIELD_DOCS", "document_rule_schema"]

FIELD_DOCS: dict[str, str] = {
    "id": "The rule's id: 3–64 characters of a-z, 0-9, '-' and '_' (an MQTT topic level)",
    "title": "A short title for people (alert lists, Grafana, notifications)",
    "description": "What the alert means and what to do",
    "severity": "info, warning or critical",
    "select": "Which devices (or sites) the rule judges; empty lists mean all",
    "kinds": "Only devices of these kinds",
    "sites": "Only devices (or sites) of these sites",
    "devices": "Only these devices",
    "for": "How long the condition must hold before the alert fires (10m, 24h)",
    "clear_for": "How long the condition must be cleared before the alert resolves",
    "webhook": "An http(s) URL each transition is POSTed to; null: none",
    "enabled": "false: the rule is listed but not judged",
    "kind": "threshold, rate_of_rise, silence or ispu_category",
    "metric": "A metric of the catalogue",
    "scope": "device: judge each device; site: judge each site over its devices",
    "aggregate": "How the window's readings are summed up (avg, min, max, last, first, sum, count)",
    "window": "The trailing window the aggregate or rate is taken over (5m, 1h, 24h)",
    "op": "How the value compares with the level to fire (>, >=, <, <=)",
    "value": "The level, in the metric's unit",
    "levels": "A level per device id (scope device) or site id (scope site), overriding value",
    "hysteresis": "How far back past the level the value must be to resolve, in the metric's unit"
                  " (ISPU points for ispu_category, the unit per hour for rate_of_rise)",
    "min_coverage": "The share of the window that must hold readings (0–1): of its hours for windows"
                    " of 24 h or more, else of its minutes; below it the subject is not judged",
    "per_hour": "The rise per hour, in the metric's unit, above which the rule fires",
    "after": "How long without a reading before a device counts as silent",
    "category": "An ISPU category id: the rule fires at this category or worse",
}

_EXAMPLES: dict[str, dict[str, Any]] = {
    "RuleSelector": {"kinds": ["river_level_sensor"], "sites": [], "devices": []},
    "ThresholdRule": {
        "id": "river-waspada", "kind": "threshold", "title": "River above the Waspada level",
        "severity": "info", "metric": "water_level", "scope": "device",
        "select": {"kinds": ["river_level_sensor"], "sites": [], "devices": []}, "aggregate": "avg",
        "window": "5m", "op": ">", "value": 3.0, "levels": {"river-tanah-grogot-01": 3.0},
        "hysteresis": 0.1, "for": "10m", "clear_for": "30m"},
    "RateOfRiseRule": {
        "id": "river-rising-fast", "kind": "rate_of_rise", "title": "River rising faster than 20 cm/h",
        "metric": "water_level", "window": "1h", "per_hour": 0.2, "hysteresis": 0.05},
    "SilenceRule": {"id": "silent-river-level-sensor", "kind": "silence", "title": "River gauge silent",
                    "select": {"kinds": ["river_level_sensor"], "sites": [], "devices": []}, "after": "15m"},
    "IspuCategoryRule": {"id": "ispu-tidak-sehat", "kind": "ispu_category",
                         "title": "ISPU Tidak Sehat or worse", "category": "tidak_sehat", "hysteresis": 5},
}


def document_rule_schema(schema: dict[str, Any], model: type) -> None:
    """Give every property of a rule model's JSON schema its description, and the model an example."""
    for name, prop in schema.get("properties", {}).items():
        if name in FIELD_DOCS:
            prop.setdefault("description", FIELD_DOCS[name])
    example = _EXAMPLES.get(model.__name__)
    if example is not None:
        schema.setdefault("examples", [example])
