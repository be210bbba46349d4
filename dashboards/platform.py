"""The "Platform health" dashboard: ingest rate, quarantine, devices online, rollup lag."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard

from dashboards.panels import Board, district_variable, stat_panel, table_panel, timeseries_panel
from smartcity.catalog import LOCAL_TIMEZONE
from smartcity.contract import STATUS_PAYLOADS
from smartcity.settings import RollupSettings

__all__ = ["UID", "build_platform"]

UID = "smartcity-platform"

# Every metric's reading count per interval through the planner (exact, and cheap over long
# ranges: counts come from the rollups), over the interval's length in seconds.
_READINGS_PER_SECOND_SQL = f"""\
SELECT a.time AS "time", sum(a.count) / extract(epoch FROM smartcity_bucket_width('$__interval')) AS value,
       'readings/s' AS metric
FROM metrics m
CROSS JOIN LATERAL smartcity_aggregate(m.name, '$__interval', 'count', $__timeFrom(), $__timeTo(),
    NULL, ARRAY[${{district:sqlstring}}]::text[], 'none', '{LOCAL_TIMEZONE}') a
GROUP BY 1
ORDER BY 1"""

# A message quarantined for several reasons counts once under each of them.
_QUARANTINE_SQL = """\
SELECT $__timeGroupAlias(q.received_at, $__interval), r.reason AS metric, count(*) AS value
FROM quarantine q CROSS JOIN LATERAL unnest(q.reasons) AS r(reason)
WHERE $__timeFilter(q.received_at)
GROUP BY 1, 2
ORDER BY 1, 2"""


def _status_sql() -> str:
    counts = ",\n       ".join(f"count(*) FILTER (WHERE status = '{status}') AS {status}"
                               for status in (*STATUS_PAYLOADS, "unknown"))
    return f"SELECT {counts}\nFROM devices\nWHERE site_id IN (${{district:sqlstring}})"


_DEVICES_SQL = """\
SELECT device_id AS device, kind, site_id AS district, status, last_seen,
       extract(epoch FROM now() - last_seen) AS silent_s
FROM devices
WHERE site_id IN (${district:sqlstring})
ORDER BY last_seen ASC NULLS FIRST, device_id"""

# Red from the lag at which the refresher starts logging warnings (its default setting).
_MAX_LAG_S = float(RollupSettings.model_fields["max_lag_s"].default)

_ROLLUP_LAG_SQL = "SELECT extract(epoch FROM smartcity_rollup_lag()) AS rollup_lag"


def build_platform() -> dashboard.Dashboard:
    """Build the Platform health dashboard."""
    board = Board(
        UID, "Platform health",
        "Is data arriving, being refused, and being rolled up? Ingest rate, quarantine, devices "
        "online and the rollup refresher's lag.",
        ["smartcity", "platform"],
        [district_variable()])
    board.row("Ingest")
    board.add(
        timeseries_panel(
            "Readings ingested per second",
            "Stored readings per second of the chosen districts' devices, all metrics together, "
            "by the time they were measured (a backfill shows at its measured times).",
            _READINGS_PER_SECOND_SQL, unit="suffix: /s", width=12),
        timeseries_panel(
            "Quarantined messages by reason",
            "Messages the ingest refused, per reason code and interval (a message with several "
            "reasons counts under each). All districts: an unknown device has none.",
            _QUARANTINE_SQL, unit="none", bars=True, width=12),
    )
    board.row("Devices and rollups")
    board.add(
        stat_panel("Devices by status",
                   "Devices of the chosen districts online, offline (their broker connection's "
                   "last will fired or they said so) and never heard from (unknown).",
                   _status_sql(), unit="none", width=8),
        stat_panel("Rollup lag",
                   "Age of the oldest reading still waiting for the rollup refresher. Aggregates "
                   "stay exact whatever it is (pending hours are read raw); a lag that keeps "
                   "growing means the refresher is down or behind, and long ranges get slower.",
                   _ROLLUP_LAG_SQL, unit="s", steps=("green", [(_MAX_LAG_S, "red")]), width=4),
        table_panel("Devices, longest silent first",
                    "Every device of the chosen districts with its status and when it last sent "
                    "a reading; `silent_s` is the time since, in seconds.",
                    _DEVICES_SQL, unit="s", width=12, height=10),
    )
    return board.build()
