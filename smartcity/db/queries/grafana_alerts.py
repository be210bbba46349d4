"""SQL of the Grafana alert rules (dashboards.alerts), which Grafana runs as smartcity_grafana.

The rules come from the alert rule file; each kind has its statement here. Grafana cannot bind
parameters, so a statement carries the rule's names and numbers as literals, quoted by psycopg, and
its time range as Grafana's ``$__timeFrom()``/``$__timeTo()`` macros (the rule's
relativeTimeRange). Each answers one row per subject (device or district): Grafana turns its text
columns into the alert instance's labels and its number, ``value``, into what the threshold judges.

Windows are read through the planner (``smartcity_aggregate``) per device, so a rule's number is the
number the API gives for the same question; the device rows are then joined with ``devices`` to
apply the rule's selection (kinds, sites, devices) and, for site rules, summed up per district.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

from psycopg import sql

__all__ = ["ISPU_BY_SITE", "SILENCE_BY_DEVICE", "Selection", "ispu_sql", "levels_sql", "rate_sql",
           "silence_sql", "transitions_annotation_sql", "window_sql"]

Scope = Literal["device", "site"]

# How each aggregate of the rule file combines the planner's buckets into one number per subject.
# avg weighs each bucket's mean by its count: the mean of the readings themselves, not of means.
_COMBINE: Final = {
    "avg": "sum(a.value * a.count) / nullif(sum(a.count), 0)",
    "min": "min(a.value)",
    "max": "max(a.value)",
    "sum": "sum(a.value)",
    "count": "sum(a.count)",
    "last": "(array_agg(a.value ORDER BY a.time DESC))[1]",
    "first": "(array_agg(a.value ORDER BY a.time))[1]",
}

SILENCE_BY_DEVICE: Final = sql.SQL(
    # Seconds since the device's newest reading (since its registration if it never reported);
    # revoked devices are not judged.
    "SELECT d.device_id, d.site_id,\n"
    "       extract(epoch FROM $__timeTo()::timestamptz - coalesce(max(l.time), d.created_at)) AS value\n"
    "FROM devices d\n"
    "LEFT JOIN latest_readings l ON l.device = d.id\n"
    "WHERE d.revoked_at IS NULL{where}\n"
    "GROUP BY d.device_id, d.site_id, d.created_at\n"
    "ORDER BY d.device_id"
)

ISPU_BY_SITE: Final = sql.SQL(
    # The ISPU of each district at the end of the range: GET /api/v1/ispu's number, from SQL.
    "SELECT site_id, ispu AS value\n"
    "FROM smartcity_site_ispu($__timeTo()::timestamptz)\n"
    "WHERE ispu IS NOT NULL{where}\n"
    "ORDER BY site_id"
)


class Selection:
    """A rule's selection (kinds, sites, devices: empty means all), as SQL conditions on ``d``."""

    def __init__(self, kinds: Sequence[str], sites: Sequence[str], devices: Sequence[str]) -> None:
        self.kinds, self.sites, self.devices = tuple(kinds), tuple(sites), tuple(devices)

    def conditions(self) -> sql.Composable:
        """Return `` AND …`` for each non-empty list (nothing when all are empty)."""
        parts = [sql.SQL(" AND d.{} = ANY ({})").format(sql.Identifier(column), _array(values))
                 for column, values in (("kind", self.kinds), ("site_id", self.sites),
                                        ("device_id", self.devices)) if values]
        return sql.Composed(parts)

    def site_ids(self) -> sql.Composable:
        """The planner's site_ids argument: the sites, or NULL for all (it refuses unknown ones)."""
        return _array(self.sites) if self.sites else sql.SQL("NULL")


def _array(values: Sequence[str]) -> sql.Composable:
    return sql.SQL("ARRAY[{}]::text[]").format(sql.SQL(", ").join(sql.Literal(v) for v in values))


def _subject(scope: Scope) -> tuple[str, str]:
    """The subject's columns in the SELECT and the GROUP BY."""
    if scope == "device":
        return "a.key AS device_id, d.site_id", "a.key, d.site_id"
    return "d.site_id", "d.site_id"


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)


def window_sql(metric: str, aggregate: str, bucket: str, scope: Scope, selection: Selection, *,
               min_coverage: float = 0.0, coverage_hours: int | None = None,
               coverage_minutes: int | None = None) -> str:
    """Return the statement of a threshold rule: the window's ``aggregate`` per device or site.

    ``min_coverage`` counts the share of the window's hours (``coverage_hours``: a 24-hour mean,
    as the ISPU counts them) or minutes (``coverage_minutes``) that hold readings; a subject below
    it answers no row, so it is not judged.
    """
    columns, group = _subject(scope)
    having: sql.Composable = sql.SQL("")
    if min_coverage > 0 and coverage_hours is not None:
        # The hour of each bucket counted back from the range's end, as smartcity_site_ispu does.
        having = sql.SQL(
            "\nHAVING count(DISTINCT least(ceil(extract(epoch FROM $__timeTo()::timestamptz - a.time)"
            " / 3600)::int - 1, {last})) ::float8 / {n} >= {share}").format(
            last=sql.Literal(coverage_hours - 1), n=sql.Literal(coverage_hours),
            share=sql.Literal(min_coverage))
    elif min_coverage > 0 and coverage_minutes is not None:
        having = sql.SQL("\nHAVING count(DISTINCT a.time)::float8 / {n} >= {share}").format(
            n=sql.Literal(coverage_minutes), share=sql.Literal(min_coverage))
    return _text(sql.SQL(
        "SELECT {columns}, {combine} AS value\n"
        "FROM smartcity_aggregate({metric}, {bucket}, {agg}, $__timeFrom()::timestamptz,"
        " $__timeTo()::timestamptz,\n"
        "                         NULL, {sites}, 'device') AS a\n"
        "JOIN devices d ON d.device_id = a.key\n"
        "WHERE true{where}\n"
        "GROUP BY {group}{having}\n"
        "ORDER BY {group}").format(
        columns=sql.SQL(columns), combine=sql.SQL(_COMBINE[aggregate]), metric=sql.Literal(metric),
        bucket=sql.Literal(bucket), agg=sql.Literal("avg" if aggregate == "count" else aggregate),
        sites=selection.site_ids(), where=selection.conditions(), group=sql.SQL(group), having=having))


def rate_sql(metric: str, scope: Scope, selection: Selection, *, window_minutes: int,
             min_coverage: float) -> str:
    """Return the statement of a rate-of-rise rule: the least-squares slope, per hour, of the
    window's one-minute means per device or site (a site's minute: its devices' readings together)."""
    columns, group = _subject(scope)
    outer_columns, outer_group = (("device_id, site_id", "device_id, site_id") if scope == "device"
                                  else ("site_id", "site_id"))
    return _text(sql.SQL(
        "WITH m AS (\n"
        "    SELECT {columns}, a.time, sum(a.value * a.count) / sum(a.count) AS value\n"
        "    FROM smartcity_aggregate({metric}, '1m', 'avg', $__timeFrom()::timestamptz,"
        " $__timeTo()::timestamptz,\n"
        "                             NULL, {sites}, 'device') AS a\n"
        "    JOIN devices d ON d.device_id = a.key\n"
        "    WHERE true{where}\n"
        "    GROUP BY {group}, a.time\n"
        ")\n"
        "SELECT {outer_columns}, regr_slope(value, extract(epoch FROM time) / 3600) AS value\n"
        "FROM m\n"
        "GROUP BY {outer_group}\n"
        "HAVING count(*) >= 2 AND count(*)::float8 / {minutes} >= {share}\n"
        "ORDER BY {outer_group}").format(
        columns=sql.SQL(columns), metric=sql.Literal(metric), sites=selection.site_ids(),
        where=selection.conditions(), group=sql.SQL(group), outer_columns=sql.SQL(outer_columns),
        outer_group=sql.SQL(outer_group), minutes=sql.Literal(window_minutes),
        share=sql.Literal(min_coverage)))


def levels_sql(metric: str, scope: Scope, selection: Selection, default: float,
               levels: Mapping[str, float]) -> str:
    """Return each subject's own level (``levels``, else ``default``), labelled as the window's rows.

    Grafana's math joins this with the window's answer by labels, so each device or district is
    judged against its own line.
    """
    own = sql.SQL(", ").join(sql.SQL("({}, {}::float8)").format(sql.Literal(k), sql.Literal(v))
                             for k, v in sorted(levels.items()))
    if scope == "device":
        statement = sql.SQL(
            "SELECT d.device_id, d.site_id, coalesce(l.level, {default}::float8) AS value\n"
            "FROM devices d\n"
            "LEFT JOIN (VALUES {own}) AS l(subject, level) ON l.subject = d.device_id\n"
            "WHERE d.revoked_at IS NULL{where}\n"
            "  AND EXISTS (SELECT 1 FROM device_kind_metrics k JOIN metrics m ON m.metric_id = k.metric_id\n"
            "              WHERE k.kind = d.kind AND m.name = {metric})\n"
            "ORDER BY d.device_id")
    else:
        statement = sql.SQL(
            "SELECT s.site_id, coalesce(l.level, {default}::float8) AS value\n"
            "FROM sites s\n"
            "LEFT JOIN (VALUES {own}) AS l(subject, level) ON l.subject = s.site_id\n"
            "WHERE EXISTS (SELECT 1 FROM devices d WHERE d.site_id = s.site_id{where})\n"
            "ORDER BY s.site_id")
    return _text(statement.format(default=sql.Literal(default), own=own, where=selection.conditions(),
                                  metric=sql.Literal(metric)))


def silence_sql(selection: Selection) -> str:
    """Return the statement of a silence rule: seconds since each selected device's newest reading."""
    return _text(SILENCE_BY_DEVICE.format(where=selection.conditions()))


def ispu_sql(sites: Sequence[str]) -> str:
    """Return the statement of an ISPU category rule: each (selected) district's index now."""
    where = sql.SQL(" AND site_id = ANY ({})").format(_array(sites)) if sites else sql.SQL("")
    return _text(ISPU_BY_SITE.format(where=where))


def transitions_annotation_sql(titles: Mapping[str, str]) -> str:
    """Return the annotation query of the alert transitions in the dashboard's range and districts.

    One annotation per transition at its time: the rule's title (``titles``, from the rule file;
    the rule id for a rule no longer in it), where (device and district, or the district) and
    whether it fired or resolved; tagged with the transition, the severity and the district.
    """
    rules = (sql.SQL("(VALUES {}) AS r(rule_id, title)").format(sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(k), sql.Literal(v)) for k, v in sorted(titles.items())))
        if titles else sql.SQL("(SELECT NULL::text AS rule_id, NULL::text AS title) AS r"))
    return _text(sql.SQL(
        "SELECT t.\"at\" AS time,\n"
        "       coalesce(r.title, a.rule_id) || ' — '\n"
        "       || coalesce(a.device_id || ' (' || a.site_id || ')', a.site_id)\n"
        "       || ': ' || t.transition AS text,\n"
        "       concat_ws(',', t.transition, a.severity, a.site_id) AS tags\n"
        "FROM alert_transitions t\n"
        "JOIN alerts a ON a.id = t.alert_id\n"
        "LEFT JOIN {rules} ON r.rule_id = a.rule_id\n"
        "WHERE $__timeFilter(t.\"at\") AND a.site_id IN (${{district:sqlstring}})\n"
        "ORDER BY t.\"at\", t.id").format(rules=rules))
