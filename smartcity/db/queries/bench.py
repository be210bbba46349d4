"""SQL of the benchmarks: what a run stored, counted in the database rather than trusted."""

from __future__ import annotations

from typing import Final

__all__ = ["COUNT_STORED_READINGS"]

# (list of device ids, since) → (count,) of readings rows of those devices at or after ``since``.
COUNT_STORED_READINGS: Final = (
    "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device"
    " WHERE d.device_id = ANY(%s) AND r.time >= %s"
)
