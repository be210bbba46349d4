"""What a rule must mean beyond its schema: names the catalogue knows, and settings that make sense.

The schema (smartcity.alerts.rules) checks shapes: a duration is a duration, a level is a number.
This checks them against the platform: the metric is in the catalogue, the kinds report it, the
sites exist, a device id could be one, an aggregate means something for the metric, a webhook is a
URL a delivery can reach. Each finding is a field path inside the rule and a reason in plain words.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from smartcity.airquality import ISPU_CATEGORIES
from smartcity.alerts.coverage import COVERED_AGGREGATES
from smartcity.alerts.rules import (
    AnyRule,
    IspuCategoryRule,
    RateOfRiseRule,
    RuleSelector,
    SilenceRule,
    ThresholdRule,
)
from smartcity.alerts.yamlmarks import FieldPath
from smartcity.catalog import DEVICE_KINDS, METRICS, SITES, is_valid_device_id

__all__ = ["Finding", "check_names", "check_rule"]

Finding = tuple[FieldPath, str]

_DEVICE_ID_RULE = "3–64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
_MINUTE = timedelta(minutes=1)


def _known(names: Iterable[object]) -> str:
    return ", ".join(str(name) for name in names)


def _check_metric(metric: str) -> Iterator[Finding]:
    if metric not in METRICS:
        yield ("metric",), f"unknown metric {metric!r}; known: {_known(METRICS)}"


def _check_selector(select: RuleSelector, metric: str | None) -> Iterator[Finding]:
    for index, kind in enumerate(select.kinds):
        if kind not in DEVICE_KINDS:
            yield ("select", "kinds", index), f"unknown device kind {kind!r}; known: {_known(DEVICE_KINDS)}"
        elif metric in METRICS and metric not in DEVICE_KINDS[kind].metrics:
            yield (("select", "kinds", index),
                   f"a {kind} does not report {metric} (it reports {_known(DEVICE_KINDS[kind].metrics)})")
    for index, site in enumerate(select.sites):
        if site not in SITES:
            yield ("select", "sites", index), f"unknown site {site!r}; known: {_known(SITES)}"
    for index, device in enumerate(select.devices):
        if not is_valid_device_id(device):
            yield ("select", "devices", index), f"{device!r} is not a device id ({_DEVICE_ID_RULE})"


def _check_webhook(url: str | None) -> Iterator[Finding]:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        yield ("webhook",), f"{url!r} is not an http(s) URL; write https://host/path"
    elif not parts.hostname:
        yield ("webhook",), f"{url!r} names no host; write https://host/path"


def _check_window(window: timedelta, least: timedelta, why: str) -> Iterator[Finding]:
    if window % _MINUTE:
        yield ("window",), "must be whole minutes (the rollups and the evaluator judge minutes)"
    elif window < least:
        yield ("window",), f"must be at least {int(least / _MINUTE)}m: {why}"


def _check_threshold(rule: ThresholdRule) -> Iterator[Finding]:
    yield from _check_metric(rule.metric)
    yield from _check_selector(rule.select, rule.metric)
    yield from _check_window(rule.window, _MINUTE, "the finest rollup is a minute")
    metric = METRICS.get(rule.metric)
    if metric is not None and metric.cumulative and rule.aggregate in ("avg", "sum"):
        yield (("aggregate",),
               f"{rule.metric} is a counter (a meter reading that only grows): its {rule.aggregate} over a"
               " window means nothing; judge last, or its rise with a rate_of_rise rule")
    if rule.min_coverage > 0 and rule.aggregate not in COVERED_AGGREGATES:
        yield (("min_coverage",),
               f"applies to {', '.join(COVERED_AGGREGATES)} over the window, not to {rule.aggregate}"
               " (one reading or a count); leave it out")
    for key in rule.levels:
        if rule.scope == "site" and key not in SITES:
            yield (("levels", key),
                   f"unknown site {key!r} (a site rule's levels are per site); known: {_known(SITES)}")
        elif rule.scope == "device" and not is_valid_device_id(key):
            yield ("levels", key), f"{key!r} is not a device id ({_DEVICE_ID_RULE})"
        elif rule.scope == "device" and rule.select.devices and key not in rule.select.devices:
            yield ("levels", key), f"names device {key!r}, which the rule's select.devices leaves out"
        elif rule.scope == "site" and rule.select.sites and key not in rule.select.sites:
            yield ("levels", key), f"names site {key!r}, which the rule's select.sites leaves out"


def _check_rate(rule: RateOfRiseRule) -> Iterator[Finding]:
    yield from _check_metric(rule.metric)
    yield from _check_selector(rule.select, rule.metric)
    yield from _check_window(rule.window, 2 * _MINUTE, "a slope needs two one-minute means or more")
    if rule.hysteresis >= rule.per_hour:
        yield (("hysteresis",),
               f"must be below per_hour ({rule.per_hour:g}): the alert resolves below per_hour − hysteresis")


def _check_silence(rule: SilenceRule) -> Iterator[Finding]:
    yield from _check_selector(rule.select, None)
    if rule.after < _MINUTE:
        yield ("after",), "must be at least 1m: the evaluator judges whole minutes"


def _check_ispu(rule: IspuCategoryRule) -> Iterator[Finding]:
    ids = [category.id for category in ISPU_CATEGORIES]
    if rule.category not in ids:
        yield ("category",), f"unknown ISPU category {rule.category!r}; known: {_known(ids)}"
    elif rule.category == ids[0]:
        yield ("category",), f"every index is at least {ids[0]}: the rule would always fire"
    for name in ("kinds", "devices"):
        if getattr(rule.select, name):
            yield (("select", name),
                   "an ISPU category rule judges sites (their index): select sites only")
    yield from _check_selector(RuleSelector(sites=rule.select.sites), None)


def check_rule(rule: AnyRule) -> list[Finding]:
    """Return what is wrong with ``rule`` beyond its schema (empty: nothing)."""
    findings: list[Finding] = list(_check_webhook(rule.webhook))
    if isinstance(rule, ThresholdRule):
        findings += _check_threshold(rule)
    elif isinstance(rule, RateOfRiseRule):
        findings += _check_rate(rule)
    elif isinstance(rule, SilenceRule):
        findings += _check_silence(rule)
    else:
        findings += _check_ispu(rule)
    return findings


def check_names(raw: Mapping[str, Any]) -> list[Finding]:
    """Return the catalogue names a rule that broke its schema gets wrong, where they are readable.

    Run on the raw mapping, so that a misspelt field elsewhere in the rule does not hide an unknown
    metric or site: every problem of a file comes out in one pass.
    """
    metric = raw.get("metric")
    findings = list(_check_metric(metric)) if isinstance(metric, str) else []
    select = raw.get("select")
    if isinstance(select, Mapping):
        lists = [select.get(name) or [] for name in ("kinds", "sites", "devices")]
        if all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists):
            kinds, sites, devices = (tuple(v) for v in lists)
            selector = RuleSelector(kinds=kinds, sites=sites, devices=devices)
            findings += _check_selector(selector, metric if isinstance(metric, str) else None)
    return findings
