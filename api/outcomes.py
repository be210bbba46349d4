"""Settle command outcomes in the background, so they are stored even when nobody reads them.

Reads settle what they show themselves (`api.queries.commands`); this task settles the rest every
few seconds through the app's pool. Settling is one idempotent UPDATE whose results come from the
data (the acknowledging reading's time or the deadline), so any number of API processes may run
it at once and the outcome does not depend on when it ran.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from psycopg_pool import PoolTimeout

from api.deps import Pool
from api.queries.commands import settle

__all__ = ["settle_every", "settle_forever"]

log = logging.getLogger(__name__)


def settle_every(timeout_s: float) -> float:
    """Return how often to settle for a command timeout: a quarter of it, between 1 and 5 s."""
    return min(5.0, max(1.0, timeout_s / 4.0))


async def settle_forever(pool: Pool, period_s: float) -> None:
    """Settle pending commands every ``period_s`` seconds until cancelled."""
    failing = False
    while True:
        try:
            async with pool.connection() as conn:
                settled = await settle(conn)
            if settled:
                log.debug("settled %d command(s)", settled)
            failing = False
        except (psycopg.Error, PoolTimeout) as err:
            # The database is down or restarting: health reports it; say so once per outage.
            if not failing:
                log.warning("cannot settle command outcomes now: %s", err)
            failing = True
        await asyncio.sleep(period_s)
