"""Alert rules: what the platform watches for, in the four kinds the rule file may hold.

One definition read by the evaluator (``smartcity alerts run``), the API (``GET /api/v1/alerts/rules``)
and the dashboards' provisioning (Grafana alert rules generated from the same rules). A rule judges
*subjects*: each device it selects (``scope: device``) or each site (``scope: site``), at whole
minutes of evaluation time, over a trailing window read through the rollup planner
(``smartcity_aggregate``), so that "24-hour mean" means what the API and the panels mean by it.

Lifecycle per subject (smartcity.alerts.lifecycle): the condition must hold for ``for_`` before the
alert fires, and the value must be back past the line by ``hysteresis`` for ``clear_for`` before it
resolves, so a level hovering at the line does not flap.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from smartcity.alerts.ruledocs import document_rule_schema

__all__ = [
    "AGGREGATES",
    "AnyRule",
    "Duration",
    "RULE_ID_PATTERN",
    "IspuCategoryRule",
    "Rule",
    "RuleFile",
    "RuleSelector",
    "RateOfRiseRule",
    "SilenceRule",
    "ThresholdRule",
    "format_duration",
]

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{2,63}$"  # one MQTT topic level, like a device id
AGGREGATES = ("avg", "min", "max", "last", "first", "sum", "count")

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_duration(value: object) -> object:
    """Read ``90s``, ``10m``, ``24h``, ``7d`` (what operators write); anything else as pydantic does."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    if isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration: write a whole number and s, m, h or d (10m, 24h)")
    return value


def format_duration(value: timedelta) -> str:
    """Write ``value`` as the rule file does: the largest unit that divides it (``24h``, ``90s``)."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


# A duration in the rule file: "10m", "24h"; listed back in the same form (GET /alerts/rules).
Duration = Annotated[timedelta, BeforeValidator(_parse_duration),
                     PlainSerializer(format_duration, when_used="json")]

Severity = Literal["info", "warning", "critical"]
Comparison = Literal[">", ">=", "<", "<="]


class _Model(BaseModel):
    # Unknown keys are mistakes in a hand-written file (a misspelt "hysteresis" would silently
    # mean none): refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True,
                              json_schema_extra=document_rule_schema)


class RuleSelector(_Model):
    """Which devices (or, for site rules, which sites) a rule judges; empty lists mean all."""

    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()


class _RuleBase(_Model):
    id: str = Field(pattern=RULE_ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    severity: Severity = "warning"
    select: RuleSelector = RuleSelector()
    # The condition must hold this long (in evaluation time) before the alert fires, and be
    # cleared this long before it resolves: the minimum durations against flapping.
    for_: Duration = Field(timedelta(0), alias="for", ge=timedelta(0))
    clear_for: Duration = Field(timedelta(0), ge=timedelta(0))
    webhook: str | None = None  # http(s) URL each transition is POSTed to (README "Alert webhooks")
    enabled: bool = True


class ThresholdRule(_RuleBase):
    """An aggregate of ``metric`` over the trailing ``window`` compared with a level.

    ``value`` is the level; ``levels`` overrides it per device id or site id (a gauge's own
    warning level). It resolves once the aggregate is back past the level by ``hysteresis``
    (in the metric's unit). ``min_coverage`` is the share of the window's minutes that must hold
    readings for the aggregate to count at all (the ISPU's 75 % rule for a 24-hour mean); below
    it the subject is not judged and keeps its state. Windows of 24 hours or more count hours
    instead, as the ISPU does (smartcity.alerts.coverage).
    """

    kind: Literal["threshold"]
    metric: str
    scope: Literal["device", "site"] = "device"
    aggregate: Literal["avg", "min", "max", "last", "first", "sum", "count"] = "avg"
    window: Duration = Field(gt=timedelta(0))
    op: Comparison = ">"
    value: float
    levels: dict[str, float] = Field(default_factory=dict)
    hysteresis: float = Field(0.0, ge=0)
    min_coverage: float = Field(0.0, ge=0, le=1)


class RateOfRiseRule(_RuleBase):
    """``metric`` rising faster than ``per_hour`` (its unit per hour) over the trailing ``window``.

    The rate is the least-squares slope of the window's one-minute means: one noisy reading does
    not make a rise. Resolves once the rate is below ``per_hour - hysteresis``.
    """

    kind: Literal["rate_of_rise"]
    metric: str
    scope: Literal["device", "site"] = "device"
    window: Duration = Field(gt=timedelta(0))
    per_hour: float = Field(gt=0)
    hysteresis: float = Field(0.0, ge=0)
    min_coverage: float = Field(0.5, ge=0, le=1)


class SilenceRule(_RuleBase):
    """No reading from a device for ``after``: a dead battery, a cut link, a stolen sensor.

    Always per device. A device never heard from since it was registered is judged from its
    registration time; a revoked device is not judged.
    """

    kind: Literal["silence"]
    after: Duration = Field(gt=timedelta(0))


class IspuCategoryRule(_RuleBase):
    """The ISPU of a site (``smartcity_site_ispu``, the API's ``GET /ispu``) at or above ``category``.

    ``category`` is an ISPU category id (smartcity.airquality.ISPU_CATEGORIES): ``tidak_sehat``
    fires for Tidak Sehat, Sangat Tidak Sehat and Berbahaya. Resolves when the index is back below
    the category's lower edge by ``hysteresis`` index points.
    """

    kind: Literal["ispu_category"]
    category: str
    hysteresis: float = Field(0.0, ge=0)


# Any one rule, for code that takes rules one at a time; ``Rule`` is the same union as the file reads it.
AnyRule = ThresholdRule | RateOfRiseRule | SilenceRule | IspuCategoryRule
Rule = Annotated[
    ThresholdRule | RateOfRiseRule | SilenceRule | IspuCategoryRule, Field(discriminator="kind")
]


class RuleFile(_Model):
    """A rule file: its format ``version`` (1) and its rules, ids unique."""

    version: Literal[1]
    rules: tuple[Rule, ...]
