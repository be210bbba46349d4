"""A rule in one line of plain words, as `smartcity alerts rules` lists it and the API describes it."""

from __future__ import annotations

from datetime import timedelta

from smartcity.alerts.rules import (
    IspuCategoryRule,
    RateOfRiseRule,
    RuleSelector,
    SilenceRule,
    ThresholdRule,
    format_duration,
)
from smartcity.catalog import METRICS

__all__ = ["describe_rule"]

AnyRule = ThresholdRule | RateOfRiseRule | SilenceRule | IspuCategoryRule


def _unit(metric: str) -> str:
    known = METRICS.get(metric)
    return f" {known.unit}" if known is not None else ""


def _selection(select: RuleSelector) -> str:
    parts = [", ".join(names) for names in (select.kinds, select.sites, select.devices) if names]
    return f" [{'; '.join(parts)}]" if parts else ""


def _timing(for_: timedelta, clear_for: timedelta) -> str:
    parts = []
    if for_:
        parts.append(f"for {format_duration(for_)}")
    if clear_for:
        parts.append(f"clears after {format_duration(clear_for)}")
    return f", {', '.join(parts)}" if parts else ""


def describe_rule(rule: AnyRule) -> str:
    """Say what ``rule`` watches for, in one line (``water_level avg over 5m > 3 m per device …``)."""
    if isinstance(rule, ThresholdRule):
        unit = _unit(rule.metric)
        text = (f"{rule.metric} {rule.aggregate} over {format_duration(rule.window)} {rule.op}"
                f" {rule.value:g}{unit} per {rule.scope}")
        if rule.levels:
            text += f" ({len(rule.levels)} own levels)"
        if rule.hysteresis:
            text += f", hysteresis {rule.hysteresis:g}{unit}"
        if rule.min_coverage:
            text += f", at least {rule.min_coverage:.0%} of minutes with data"
    elif isinstance(rule, RateOfRiseRule):
        text = (f"{rule.metric} rising faster than {rule.per_hour:g}{_unit(rule.metric)}/h over"
                f" {format_duration(rule.window)} per {rule.scope}")
    elif isinstance(rule, SilenceRule):
        text = f"no reading for {format_duration(rule.after)} per device"
    else:
        text = f"ISPU at {rule.category} or worse per site"
    return text + _selection(rule.select) + _timing(rule.for_, rule.clear_for)
