"""SQL of the Grafana panels and dashboard variables (dashboards/): Grafana expands it, not psycopg.

Grafana's PostgreSQL data source cannot bind parameters: a panel's SQL carries Grafana's macros
(``$__timeFrom()``, ``$__timeTo()``, ``$__interval``, ``$__timeFilter(…)``) and the dashboard's
variables (``${district:sqlstring}``, ``${device:sqlstring}``), which Grafana quotes. The only
other text put into it is a catalogue metric name, checked against the catalogue, or a number.
Every aggregate goes through ``smartcity_aggregate``, so panels are exact at any rollup lag.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal

from smartcity.catalog import METRICS

__all__ = [
    "GroupBy",
    "DEVICES_LAST_SEEN",
    "DISTRICT_OPTIONS",
    "QUARANTINE_BY_REASON",
    "ROLLUP_LAG",
    "SITE_ISPU_MAP",
    "aggregate_call",
    "aggregate_series",
    "device_options",
    "device_status_counts",
    "failed_lamps_series",
    "failed_lamps_table",
    "latest_at_least_table",
    "rate_of_rise_series",
    "readings_per_second_series",
    "scaled_series",
    "site_total_series",
]

GroupBy = Literal["device", "site", "none"]

# The filters every planner call takes from the dashboard's variables (multi-value, quoted).
_DEVICES: Final = "ARRAY[${device:sqlstring}]::text[]"
_DISTRICTS: Final = "ARRAY[${district:sqlstring}]::text[]"
_AGGS: Final = ("avg", "min", "max", "sum", "count", "first", "last", "increase")

# The district variable: names shown, site ids passed.
DISTRICT_OPTIONS: Final = "SELECT name AS __text, site_id AS __value FROM sites ORDER BY name"

# The index of every site at the end of the range (smartcity_site_ispu, the ISPU SQL function).
SITE_ISPU_MAP: Final = """\
SELECT site_id, name, latitude, longitude, ispu, category, color, dominant
FROM smartcity_site_ispu($__timeTo())
WHERE site_id IN (${district:sqlstring})
ORDER BY site_id"""

# A message quarantined for several reasons counts once under each of them.
QUARANTINE_BY_REASON: Final = """\
SELECT $__timeGroupAlias(q.received_at, $__interval), r.reason AS metric, count(*) AS value
FROM quarantine q CROSS JOIN LATERAL unnest(q.reasons) AS r(reason)
WHERE $__timeFilter(q.received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""

DEVICES_LAST_SEEN: Final = """\
SELECT device_id AS device, kind, site_id AS district, status, last_seen,
       extract(epoch FROM now() - last_seen) AS silent_s
FROM devices
WHERE site_id IN (${district:sqlstring})
ORDER BY last_seen ASC NULLS FIRST, device_id"""

ROLLUP_LAG: Final = "SELECT extract(epoch FROM smartcity_rollup_lag()) AS rollup_lag"


def _metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; the catalogue has {', '.join(sorted(METRICS))}")
    return name


def aggregate_call(metric: str, agg: str, group_by: GroupBy, tz: str, *, devices: bool = True,
                   bucket: str = "$__interval") -> str:
    """Return a ``smartcity_aggregate(…)`` call over the dashboard's range, districts and devices.

    ``bucket`` is the panel's interval unless a fixed one is given (a count and a unit, e.g. ``1h``).
    """
    if agg not in _AGGS:
        raise ValueError(f"unknown agg {agg!r}; one of {', '.join(_AGGS)}")
    if bucket != "$__interval" and not re.fullmatch(r"[1-9][0-9]{0,4}(s|m|h|d|w|mo)", bucket):
        raise ValueError(f"bucket {bucket!r} is not $__interval or a count and a unit such as 1h")
    device_filter = _DEVICES if devices else "NULL"
    return (f"smartcity_aggregate('{_metric(metric)}', '{bucket}', '{agg}', $__timeFrom(), $__timeTo(),\n"
            f"    {device_filter}, {_DISTRICTS}, '{group_by}', '{tz}')")


def aggregate_series(metric: str, agg: str, group_by: GroupBy, tz: str) -> str:
    """Return one series per district or device of ``agg`` of a metric per ``$__interval``."""
    return (f'SELECT time AS "time", value, key AS metric\n'
            f"FROM {aggregate_call(metric, agg, group_by, tz)}\nORDER BY 1, 3")


def scaled_series(metric: str, agg: str, group_by: GroupBy, tz: str, factor: float) -> str:
    """Return :func:`aggregate_series` with every value multiplied by ``factor`` (0/1 → %)."""
    return (f'SELECT time AS "time", value * {factor:g} AS value, key AS metric\n'
            f"FROM {aggregate_call(metric, agg, group_by, tz)}\nORDER BY 1, 3")


def site_total_series(metric: str, agg: str, tz: str) -> str:
    """Return per district the sum over its devices of each device's ``agg`` per interval."""
    return ('SELECT a.time AS "time", sum(a.value) AS value, d.site_id AS metric\n'
            f"FROM {aggregate_call(metric, agg, 'device', tz)} a\n"
            "JOIN devices d ON d.device_id = a.key\nGROUP BY 1, 3\nORDER BY 1, 3")


def rate_of_rise_series(metric: str, tz: str, per_hour_factor: float) -> str:
    """Return each device's rise per hour (× ``per_hour_factor``) between its last values per interval.

    The difference to the bucket before (window ``lag``) is divided by the time between them, so
    a gap in the data gives the mean rise across it rather than a spike.
    """
    return ('SELECT time AS "time", key AS metric,\n'
            f"       (value - lag(value) OVER w) * {per_hour_factor:g}\n"
            "       / (extract(epoch FROM time - lag(time) OVER w) / 3600) AS value\n"
            f"FROM {aggregate_call(metric, 'last', 'device', tz)}\n"
            "WINDOW w AS (PARTITION BY key ORDER BY time)\nORDER BY 1, 2")


# Failures are judged per hour whatever the panel's interval: "on throughout the bucket" can never
# hold for a bucket longer than a night, so judged per interval a 90-day range (12-hour intervals
# for a table) showed no failed lamp at all.
_LAMP_HOUR: Final = "1h"


def _failed_lamps(switch: str, power: str, tz: str, max_w: float) -> str:
    # Per lamp and hour: on throughout it (min of the switch is 1) yet never drawing power
    # (max of the power below the dead-lamp bound).
    return ("WITH switched AS (SELECT key, time, value\n"
            f"  FROM {aggregate_call(switch, 'min', 'device', tz, bucket=_LAMP_HOUR)}),\n"
            "drawn AS (SELECT key, time, value\n"
            f"  FROM {aggregate_call(power, 'max', 'device', tz, bucket=_LAMP_HOUR)}),\n"
            "failed AS (SELECT s.key, s.time FROM switched s JOIN drawn p USING (key, time)\n"
            f"  WHERE s.value = 1 AND p.value < {max_w:g})\n")


def failed_lamps_series(switch: str, power: str, tz: str, max_w: float) -> str:
    """Return per district and interval how many lamps were on yet drew under ``max_w`` for an hour.

    Intervals shorter than an hour show each failed hour at its start.
    """
    return (_failed_lamps(switch, power, tz, max_w)
            + "SELECT time_bucket(greatest(smartcity_bucket_width('$__interval'), INTERVAL '1 hour'),\n"
              f"                   f.time, '{tz}') AS \"time\",\n"
              "       count(DISTINCT f.key) AS value, d.site_id AS metric\n"
              "FROM failed f JOIN devices d ON d.device_id = f.key\nGROUP BY 1, 3\nORDER BY 1, 3")


def failed_lamps_table(switch: str, power: str, tz: str, max_w: float) -> str:
    """Return every lamp failed in the range: its first and last failed hour and how many hours."""
    return (_failed_lamps(switch, power, tz, max_w)
            + "SELECT f.key AS lamp, d.site_id AS district, min(f.time) AS first_failed,\n"
              "       max(f.time) AS last_failed, count(*) AS failed_hours\n"
              "FROM failed f JOIN devices d ON d.device_id = f.key\n"
              "GROUP BY f.key, d.site_id\nORDER BY last_failed DESC, lamp")


def latest_at_least_table(metric: str, tz: str, threshold: float) -> str:
    """Return the devices whose last value in the range is at least ``threshold``, highest first."""
    return ("SELECT b.key AS device, d.site_id AS district,\n"
            f"       b.value AS {_metric(metric)}, b.time AS reported\n"
            "FROM (SELECT DISTINCT ON (key) key, time, value\n"
            f"      FROM {aggregate_call(metric, 'last', 'device', tz)}\n"
            "      ORDER BY key, time DESC) b\n"
            "JOIN devices d ON d.device_id = b.key\n"
            f"WHERE b.value >= {threshold:g}\nORDER BY b.value DESC, b.key")


def readings_per_second_series(tz: str) -> str:
    """Return the readings stored per second of the chosen districts, all metrics together.

    Every metric's count per interval through the planner (exact, and cheap over long ranges:
    the counts come from the rollups), over the interval's length in seconds.
    """
    return ('SELECT a.time AS "time",\n'
            "       sum(a.count) / extract(epoch FROM smartcity_bucket_width('$__interval')) AS value,\n"
            "       'readings/s' AS metric\n"
            "FROM metrics m\n"
            "CROSS JOIN LATERAL smartcity_aggregate(m.name, '$__interval', 'count',\n"
            f"    $__timeFrom(), $__timeTo(), NULL, {_DISTRICTS}, 'none', '{tz}') a\n"
            "GROUP BY 1\nORDER BY 1")


def device_options(domain: str) -> str:
    """Return the device variable's SQL: devices in the chosen districts of a kind of ``domain``."""
    if domain not in ("environment", "living"):
        raise ValueError(f"unknown domain {domain!r}")
    return ("SELECT DISTINCT d.device_id FROM devices d\n"
            "JOIN device_kind_metrics k ON k.kind = d.kind JOIN metrics m ON m.metric_id = k.metric_id\n"
            f"WHERE m.domain = '{domain}' AND d.site_id IN (${{district:sqlstring}})\nORDER BY 1")


def device_status_counts(statuses: Sequence[str]) -> str:
    """Return one row: how many of the chosen districts' devices are in each of ``statuses``."""
    for status in statuses:
        if not status.isidentifier():
            raise ValueError(f"status {status!r} cannot name a column")
    counts = ",\n       ".join(f"count(*) FILTER (WHERE status = '{s}') AS {s}" for s in statuses)
    return f"SELECT {counts}\nFROM devices\nWHERE site_id IN (${{district:sqlstring}})"
