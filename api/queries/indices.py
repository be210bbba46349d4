"""Pollutant windows for /ispu: each pollutant's mean at a site and the hours that held readings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from smartcity.db.queries import indices as index_sql

__all__ = ["PollutantWindow", "read_pollutant_windows"]


@dataclass(frozen=True, slots=True)
class PollutantWindow:
    """A pollutant's readings at a site over ``hours`` before a time."""

    metric: str
    hours: int
    mean: float | None  # None without readings
    readings: int
    hours_with_data: int

    @property
    def coverage(self) -> float:
        """Return the share of the window's hours that held at least one reading."""
        return self.hours_with_data / self.hours


async def read_pollutant_windows(conn: AsyncConnection[Any], site: str, at: datetime,
                                 averaging_hours: Mapping[str, int]) -> list[PollutantWindow]:
    """Return each pollutant's window ending at ``at`` (exclusive), in the mapping's order."""
    metrics = list(averaging_hours)
    cur = await conn.execute(index_sql.SELECT_POLLUTANT_WINDOWS, {
        "site": site, "at": at, "metrics": metrics, "hours": [averaging_hours[m] for m in metrics]})
    return [PollutantWindow(metric, averaging_hours[metric], mean, readings, hours_with_data)
            for metric, mean, readings, hours_with_data in await cur.fetchall()]
