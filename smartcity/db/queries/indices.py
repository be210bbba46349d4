"""SQL of the air-quality indices: each pollutant's mean over its averaging window at one site, and
how much of the window held readings, from the planner (``smartcity_aggregate``, migration 007).
"""

from __future__ import annotations

from typing import Final

__all__ = ["SELECT_POLLUTANT_WINDOWS"]

# {"site", "at": timestamptz, "metrics": text[], "hours": int[] (the window of each metric)}
# → per metric, in the order given: (metric, mean, readings, hours_with_data) over
# [at − hours, at), mean NULL and counts 0 when the site has no reading of it there.
#
# One planner call per metric, in 1-minute buckets grouped by site: the mean is the buckets'
# count-weighted mean (exactly the mean of the readings: each bucket's avg × count is its sum).
# The window's hours are counted back from `at`: hour 0 = [at − 1 h, at), so a bucket starting at
# at − 1 h is in hour 0 (ceil − 1, not floor); each bucket falls in the hour of its start. A bucket
# that started before the window (`at` has seconds) holds only readings inside it, and counts for
# the oldest hour. Windows of whole clock days or hours would not do: a 24-hour mean at 10:30
# spans two WITA days. The FILTER keeps a metric without rows at 0 hours (least() ignores the NULL
# its missing bucket would give).
SELECT_POLLUTANT_WINDOWS: Final = """
SELECT w.metric,
       sum(a.value * a.count) / nullif(sum(a.count), 0) AS mean,
       coalesce(sum(a.count), 0)::bigint AS readings,
       count(DISTINCT least(ceil(extract(epoch FROM %(at)s::timestamptz - a.time) / 3600)::int - 1,
                            w.hours - 1)) FILTER (WHERE a.time IS NOT NULL) AS hours_with_data
FROM unnest(%(metrics)s::text[], %(hours)s::int[]) WITH ORDINALITY AS w(metric, hours, n)
LEFT JOIN LATERAL smartcity_aggregate(
    w.metric, '1m', 'avg', %(at)s::timestamptz - make_interval(hours => w.hours), %(at)s::timestamptz,
    site_ids => ARRAY[%(site)s::text], group_by => 'site') a ON true
GROUP BY w.n, w.metric
ORDER BY w.n
"""
