"""SQL of the benchmarks: what a run stored, counted in the database rather than trusted; the rollup
refresher as `bench query` drives it; and the plain ``time_bucket`` questions it races the planner
against."""

from __future__ import annotations

from typing import Final

__all__ = [
    "ANALYZE_TABLES",
    "ANY_READINGS_OF",
    "COUNT_PENDING_MARKS",
    "COUNT_STORED_READINGS",
    "RAW_DEVICE_MINUTES",
    "RAW_FLEET_HOURS",
    "RAW_SITE_DAYS",
    "REFRESH_ROLLUPS",
    "RESET_ROLE",
    "SET_GRAFANA_ROLE",
]

# (list of device ids, since) → (count,) of readings rows of those devices at or after ``since``.
COUNT_STORED_READINGS: Final = (
    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device"
    " WHERE d.device_id = ANY(%s) AND r.time >= %s"
)

# (list of device ids,) → (bool,): whether any of those devices has a reading.
ANY_READINGS_OF: Final = (
    "SELECT EXISTS (SELECT 1 FROM readings r JOIN devices d ON d.id = r.device"
    " WHERE d.device_id = ANY(%s))"
)

# () → (marks,): one refresher pass over the oldest pending marks; marks is NULL while another
# refresher holds the lock, 0 when nothing was pending.
REFRESH_ROLLUPS: Final = "SELECT marks FROM smartcity_refresh_rollups()"

# () → (count,) of hours still waiting for a refresh.
COUNT_PENDING_MARKS: Final = "SELECT count(*) FROM rollup_pending"
ANALYZE_TABLES: Final = "ANALYZE readings, rollup_1m, rollup_1h, rollup_1d, devices, metrics"

# What a user of plain TimescaleDB writes for the same three questions the planner answers: the
# schema's names joined in, time_bucket over the raw rows. The parameters are those of the API.
# {"device", "metric", "start", "end"} → (device_id, minute, avg, count) of one device's readings.
RAW_DEVICE_MINUTES: Final = """
SELECT d.device_id, time_bucket(INTERVAL '1 minute', r.time) AS bucket, avg(r.value), count(*)
FROM readings r
JOIN devices d ON d.id = r.device
JOIN metrics m ON m.metric_id = r.metric
WHERE d.device_id = %(device)s AND m.name = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s
GROUP BY d.device_id, bucket
ORDER BY d.device_id, bucket
"""

# {"metric", "start", "end"} → (device_id, hour, avg, count) of every device with the metric.
RAW_FLEET_HOURS: Final = """
SELECT d.device_id, time_bucket(INTERVAL '1 hour', r.time) AS bucket, avg(r.value), count(*)
FROM readings r
JOIN devices d ON d.id = r.device
JOIN metrics m ON m.metric_id = r.metric
WHERE m.name = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s
GROUP BY d.device_id, bucket
ORDER BY d.device_id, bucket
"""

# {"site", "metric", "start", "end"} → (site_id, day, avg, count): WITA days of a site's devices.
RAW_SITE_DAYS: Final = """
SELECT d.site_id, time_bucket(INTERVAL '1 day', r.time, 'Asia/Makassar') AS bucket, avg(r.value),
       count(*)
FROM readings r
JOIN devices d ON d.id = r.device
JOIN metrics m ON m.metric_id = r.metric
WHERE d.site_id = %(site)s AND m.name = %(metric)s AND r.time >= %(start)s AND r.time < %(end)s
GROUP BY d.site_id, bucket
ORDER BY d.site_id, bucket
"""

# The panel phase runs Grafana's SQL with the rights of Grafana's read-only role (migration 011); the
# role is NOLOGIN, so the bench's owner connection takes it on and gives it back around each panel.
SET_GRAFANA_ROLE: Final = "SET ROLE smartcity_grafana"
RESET_ROLE: Final = "RESET ROLE"
