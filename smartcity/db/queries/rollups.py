"""SQL of the rollup refresher: the functions of migrations 005 and 006, called by ``ingest.rollup``."""

from __future__ import annotations

from typing import Final

__all__ = ["PENDING_MARKS", "REFRESH_ROLLUPS", "ROLLUP_LAG_S", "ROLLUP_TIMEZONE", "SET_ROLLUP_TIMEZONE"]

# (zone,) → (changed,): keep the daily rollups in ``zone``, rebuilding them when it changes.
SET_ROLLUP_TIMEZONE: Final = "SELECT smartcity_set_rollup_timezone(%s)"

# () → (zone,): the zone the daily rollups are kept in now.
ROLLUP_TIMEZONE: Final = "SELECT timezone FROM rollup_settings"

# (max_marks,) → (marks, minutes, hours, days, skipped) of one refresh transaction; marks is NULL
# when another refresher holds the lock, 0 when nothing was pending.
REFRESH_ROLLUPS: Final = (
    "SELECT marks, minutes, hours, days, skipped FROM smartcity_refresh_rollups(%s)"
)

# () → (seconds,): the age of the oldest pending mark, 0 when none.
ROLLUP_LAG_S: Final = "SELECT extract(epoch FROM smartcity_rollup_lag())::float8"

# () → (marks,): pending marks not yet refreshed.
PENDING_MARKS: Final = "SELECT count(*) FROM rollup_pending"
