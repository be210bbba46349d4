"""What ``min_coverage`` counts: the share of a window's hours, or of its minutes, that hold readings.

A 24-hour mean counts hours, as the ISPU does (smartcity_site_ispu: 75 % of the hours): a station
reporting every five minutes fills every hour but only a fifth of the minutes, and its daily mean is
sound. Shorter windows count minutes, the rollups' finest bucket. The evaluator and the Grafana
rules read this one definition.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["COVERAGE_HOURS_FROM", "COVERED_AGGREGATES", "coverage_unit"]

# The aggregates min_coverage applies to: they read every reading of the window. A last, first or
# count is meaningful with a single reading in it.
COVERED_AGGREGATES = ("avg", "min", "max", "sum")
# Windows this long or longer count hours.
COVERAGE_HOURS_FROM = timedelta(hours=24)


def coverage_unit(window: timedelta) -> timedelta:
    """Return the unit whose share of ``window`` ``min_coverage`` counts: an hour or a minute."""
    return timedelta(hours=1) if window >= COVERAGE_HOURS_FROM else timedelta(minutes=1)
