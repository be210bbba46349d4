"""Rules and alerts in plain words: a rule in one line (`smartcity alerts rules`, Grafana), an alert's
summary (stored with it, in the API's listing, MQTT and webhooks)."""

from __future__ import annotations

from datetime import timedelta

from smartcity.alerts.rules import (
    AnyRule,
    RateOfRiseRule,
    RuleSelector,
    SilenceRule,
    ThresholdRule,
    format_duration,
)
from smartcity.catalog import METRICS

__all__ = ["describe_rule", "summarize_alert"]



def _unit_name(metric: str) -> str:
    known = METRICS.get(metric)
    return known.unit if known is not None else ""


def _unit(metric: str) -> str:
    return f" {_unit_name(metric)}" if metric in METRICS else ""


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


def summarize_alert(rule: AnyRule, subject: str, site_id: str, value: float | None, *,
                    per_device: bool) -> str:
    """One line for people about an alert of ``rule`` at ``subject`` (a device id when ``per_device``,
    else a site id): where, what was judged, against what."""
    where = f"{subject} ({site_id})" if per_device else subject
    if value is None:
        return f"{where}: {rule.title}"
    if isinstance(rule, ThresholdRule):
        unit = _unit_name(rule.metric)
        level = rule.levels.get(subject, rule.levels.get(site_id, rule.value))
        return (f"{where}: {rule.aggregate} {rule.metric} over {format_duration(rule.window)}"
                f" {value:.4g} {unit} {rule.op} {level:g} {unit}").replace("  ", " ")
    if isinstance(rule, RateOfRiseRule):
        unit = _unit_name(rule.metric)
        return f"{where}: {rule.metric} rising {value:.3g} {unit}/h > {rule.per_hour:g} {unit}/h"
    if isinstance(rule, SilenceRule):
        return f"{where}: no reading for {value / 60:.0f} min (limit {format_duration(rule.after)})"
    return f"{where}: ISPU {value:.0f}, {rule.category} or worse"
