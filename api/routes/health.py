"""GET /health: is the API up, and can it reach the database and the broker."""

from __future__ import annotations

import asyncio

import psycopg
from fastapi import APIRouter, Response

from api.deps import BrokerDep, Pool, PoolDep
from api.models import HealthReport
from api.queries.health import ping

__all__ = ["HEALTH_TIMEOUT_S", "router"]

# Short: a load balancer probing health must get an answer before its own timeout.
HEALTH_TIMEOUT_S = 2.0

router = APIRouter(tags=["health"])


async def check_database(pool: Pool, timeout: float = HEALTH_TIMEOUT_S) -> bool:
    """Tell whether a pooled connection answers ``SELECT 1`` within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout), pool.connection(timeout=timeout) as conn:
            await ping(conn)
    except (psycopg.Error, TimeoutError):  # PoolTimeout is a psycopg.OperationalError
        return False
    return True


@router.get(
    "/health", summary="Report the API's health",
    responses={200: {"description": "The database and the broker are both reachable"},
               503: {"model": HealthReport, "description": "A backing service is down"}},
)
async def read_health(pool: PoolDep, broker: BrokerDep, response: Response) -> HealthReport:
    """Report the state of the database and broker connections (503 unless both are ok)."""
    database_ok = await check_database(pool)
    broker_ok = broker.is_connected
    healthy = database_ok and broker_ok
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return HealthReport(
        status="ok" if healthy else "degraded",
        database="ok" if database_ok else "error",
        broker="ok" if broker_ok else "error",
    )
