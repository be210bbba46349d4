"""Grafana alert rules for PM2.5 and river level, in Grafana's alert-rule provisioning file shape.

Thresholds come from their one definition: the ISPU table (Permen LHK P.14/2020) for PM2.5, the
flood stages the river simulator and the dashboards use for water level. Each rule queries the
planner (smartcity_aggregate) through the provisioned data source, so a rule's number is the
number the API and the panels give for the same question. The alerts issue generates its rules
from a rule file later; this module is where it plugs in.

Grafana expands ``$NAME`` from its environment in a rule's labels, not in its query model (so the
SQL's ``$__timeFrom()`` macros stay as written) nor in its annotations (so ``{{ $labels.x }}``
does): labels here hold no ``$``.
"""

from __future__ import annotations

from typing import Any, Final

from dashboards.datasource import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.folder import FOLDER_TITLE
from smartcity.airquality import ISPU_CATEGORIES, ISPU_TABLE
from smartcity.catalog import RIVER_WARNING_LEVELS_M
from smartcity.db.queries.grafana_alerts import WINDOW_MEAN_BY_SITE, WINDOW_MIN_BY_DEVICE, alert_sql
from smartcity.settings import DEFAULT_AVERAGING_HOURS

__all__ = [
    "EXPRESSION_UID",
    "RIVER_WARNING_MINUTES",
    "RIVER_WARNING_STAGE",
    "alert_rule_groups",
    "pm25_unhealthy_edge",
    "river_warning_level",
]

# Grafana's server-side expressions (threshold, reduce, math) are a data source with this uid.
EXPRESSION_UID: Final = "__expr__"
# "Above a warning level for 10 minutes": the first of the flood stages (waspada → siaga → awas).
RIVER_WARNING_STAGE: Final = "waspada"
RIVER_WARNING_MINUTES: Final = 10
_UNHEALTHY: Final = "tidak_sehat"
_EVALUATE_EVERY: Final = "1m"


def pm25_unhealthy_edge() -> float:
    """Return the PM2.5 concentration (µg/m³) where ISPU "Tidak Sehat" begins: above it is unhealthy."""
    band = [category.id for category in ISPU_CATEGORIES].index(_UNHEALTHY)
    # ISPU_TABLE holds the concentration at each index point, 0 first, so band i starts at entry i.
    return float(ISPU_TABLE["pm25"][band])


def river_warning_level() -> float:
    """Return the water level (m above gauge zero) of the first flood stage."""
    return float(RIVER_WARNING_LEVELS_M[RIVER_WARNING_STAGE])


def _sql_query(ref_id: str, raw_sql: str, window_s: int) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": window_s, "to": 0},
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


def _above(ref_id: str, of: str, level: float) -> dict[str, Any]:
    # The query answers one number per row (a table), which a threshold judges as it is: only
    # time series need a reduce step first.
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": EXPRESSION_UID,
        "model": {
            "refId": ref_id,
            "datasource": {"type": EXPRESSION_UID, "uid": EXPRESSION_UID},
            "type": "threshold",
            "expression": of,
            "conditions": [{"evaluator": {"type": "gt", "params": [level]}}],
        },
    }


def _pm25_rule() -> dict[str, Any]:
    hours = DEFAULT_AVERAGING_HOURS["pm25"]
    edge = pm25_unhealthy_edge()
    return {
        "uid": "smartcity-pm25-tidak-sehat",
        "title": f"PM2.5 {hours}-hour mean above ISPU Tidak Sehat",
        "condition": "B",
        "data": [_sql_query("A", alert_sql(WINDOW_MEAN_BY_SITE, "pm25"), hours * 3600),
                 _above("B", "A", edge)],
        # No readings is not clean air, but it is no haze either: the platform-health dashboard
        # shows silent stations; a rule that fired on them would page for the wrong thing.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "labels": {"metric": "pm25", "severity": "warning"},
        "annotations": {
            "summary": f"PM2.5 in {{{{ $labels.site_id }}}}: {hours}-hour mean above {edge:g} µg/m³",
            "description": (f"The mean of every PM2.5 reading of the last {hours} hours in the district"
                            f" is above {edge:g} µg/m³, where ISPU category Tidak Sehat (index above"
                            " 100) begins (Permen LHK P.14/2020)."),
        },
    }


def _river_rule() -> dict[str, Any]:
    level = river_warning_level()
    minutes = RIVER_WARNING_MINUTES
    return {
        "uid": "smartcity-river-waspada",
        "title": f"River level above {RIVER_WARNING_STAGE} for {minutes} minutes",
        "condition": "B",
        "data": [_sql_query("A", alert_sql(WINDOW_MIN_BY_DEVICE, "water_level"), minutes * 60),
                 _above("B", "A", level)],
        # The window's lowest reading is judged, so "for 10 minutes" is read from the data itself:
        # it holds across a Grafana restart and needs no pending period of its own.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": "0s",
        "labels": {"metric": "water_level", "severity": "warning"},
        "annotations": {
            "summary": (f"{{{{ $labels.device_id }}}} ({{{{ $labels.site_id }}}}): water above"
                        f" {level:g} m for {minutes} minutes"),
            "description": (f"Every water-level reading of the gauge in the last {minutes} minutes is"
                            f" above {level:g} m above gauge zero, the {RIVER_WARNING_STAGE} flood stage."),
        },
    }


def alert_rule_groups() -> dict[str, Any]:
    """Return the alert-rule provisioning document (``apiVersion``, ``groups``) for both rules."""
    return {
        "apiVersion": 1,
        "groups": [{
            "orgId": 1,
            "name": "smartcity-environment",
            "folder": FOLDER_TITLE,
            "interval": _EVALUATE_EVERY,
            "rules": [_pm25_rule(), _river_rule()],
        }],
    }
