"""Bucket sizes as the planner reads them (``15m``, ``1h``, ``1d``, ``1w``, ``1mo``): how many a range holds.

The planner (migration 007, ``smartcity_bucket_width``) is the authority on the grammar and says
what is wrong with a bucket it refuses; this module only bounds an answer's size before asking it.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

__all__ = ["BUCKET_PATTERN", "max_buckets"]

BUCKET_PATTERN = re.compile(r"^([1-9][0-9]{0,4})(s|m|h|d|w|mo)$")

# The shortest each unit can be, in seconds: a day in a zone with daylight saving time may have
# 23 hours, a month 28 days (less that hour).
_SHORTEST_S = {"s": 1, "m": 60, "h": 3600, "d": 23 * 3600, "w": 7 * 86400 - 3600,
               "mo": 28 * 86400 - 3600}


def max_buckets(bucket: str, start: datetime, end: datetime) -> int:
    """Return the most buckets of size ``bucket`` that can meet ``[start, end)``, wherever they start.

    0 when the bucket or range is not one the planner accepts: it will say why.
    """
    match = BUCKET_PATTERN.match(bucket)
    span_s = (end - start).total_seconds()
    if match is None or span_s <= 0:
        return 0
    width_s = int(match[1]) * _SHORTEST_S[match[2]]
    # A range that does not start on a boundary meets one more bucket than its length holds.
    return math.ceil(span_s / width_s) + 1
