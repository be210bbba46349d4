"""SQL of aggregates: one call of the planner (``smartcity_aggregate``, migration 007), guarded by a
bound on the points it may return.

The API runs it; Grafana panels and alert rules call the same planner function directly.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SELECT_AGGREGATE"]

# {"metric", "bucket", "agg", "start", "end", "devices": text[] | None, "sites": text[] | None,
#  "group_by", "tz": text | None, "buckets": the most buckets one series can have, "max_points"}
# → first one row (NULL, NULL, NULL, series × buckets): the most points the answer can hold; then,
# only when that is within max_points, the planner's rows (key, time, value, count) by key, time.
#
# The bound counts the series the planner would form from the devices it would select (the same
# rules: the devices named, or those whose kind reports the metric, in the sites named), so an
# answer too big is refused before the planner does any work: the one-time filter on an
# uncorrelated subquery keeps the function scan from starting. One statement, one round trip.
# Unknown names count as nothing here and reach the planner, which reports them (SQLSTATE 22023).
SELECT_AGGREGATE: Final = """
WITH bound AS MATERIALIZED (
    SELECT (CASE %(group_by)s WHEN 'site' THEN count(DISTINCT d.site_id)
                              WHEN 'none' THEN least(count(*), 1)
                              ELSE count(*) END) * %(buckets)s::bigint AS points
    FROM devices d
    WHERE (%(devices)s::text[] IS NULL OR d.device_id = ANY (%(devices)s::text[]))
      AND (%(sites)s::text[] IS NULL OR d.site_id = ANY (%(sites)s::text[]))
      AND (%(devices)s::text[] IS NOT NULL
           OR EXISTS (SELECT 1 FROM device_kind_metrics k JOIN metrics m ON m.metric_id = k.metric_id
                      WHERE k.kind = d.kind AND m.name = %(metric)s))
)
SELECT NULL::text AS key, NULL::timestamptz AS time, NULL::float8 AS value, b.points AS count
FROM bound b
UNION ALL
(SELECT a.key, a.time, a.value, a.count
 FROM smartcity_aggregate(%(metric)s, %(bucket)s, %(agg)s, %(start)s, %(end)s,
                          device_ids => %(devices)s::text[], site_ids => %(sites)s::text[],
                          group_by => %(group_by)s, tz => %(tz)s) a
 WHERE (SELECT b.points FROM bound b) <= %(max_points)s)
"""
