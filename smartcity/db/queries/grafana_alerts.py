"""SQL of the Grafana alert rules (dashboards.alerts), which Grafana runs as smartcity_grafana.

Grafana cannot bind parameters, so a rule's SQL carries its metric as a literal, quoted by psycopg,
and its time range as Grafana's ``$__timeFrom()``/``$__timeTo()`` macros (the rule's
relativeTimeRange). Each query answers one row per district or gauge: Grafana turns its text
columns into the alert instance's labels and its number into the value the threshold judges.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

__all__ = ["WINDOW_MEAN_BY_SITE", "WINDOW_MIN_BY_DEVICE", "alert_sql"]

# The mean of every reading of the window per district: the planner's hourly means weighted by
# their counts, so the result is the mean of the readings themselves (partial hours at the window's
# edges are read raw by the planner), not a mean of means.
WINDOW_MEAN_BY_SITE: Final = sql.SQL(
    "SELECT key AS site_id, sum(value * count) / sum(count) AS value\n"
    "FROM smartcity_aggregate({metric}, '1h', 'avg', $__timeFrom()::timestamptz, $__timeTo()::timestamptz,\n"
    "                         NULL, NULL, 'site')\n"
    "GROUP BY key\n"
    "ORDER BY key"
)

# The lowest reading of the window per device, with the device's district: above a level means
# every reading of the window was above it.
WINDOW_MIN_BY_DEVICE: Final = sql.SQL(
    "SELECT a.key AS device_id, d.site_id, min(a.value) AS value\n"
    "FROM smartcity_aggregate({metric}, '1m', 'min', $__timeFrom()::timestamptz, $__timeTo()::timestamptz,\n"
    "                         NULL, NULL, 'device') AS a\n"
    "JOIN devices d ON d.device_id = a.key\n"
    "GROUP BY a.key, d.site_id\n"
    "ORDER BY a.key"
)


def alert_sql(template: sql.SQL, metric: str) -> str:
    """Return ``template``'s text for ``metric``, the name quoted as an SQL literal."""
    return template.format(metric=sql.Literal(metric)).as_string(None)
