"""The alerts for /alerts: list, one with its transitions, acknowledge; asked asynchronously."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.db.queries import alert_listing as sql

__all__ = ["AckRefused", "acknowledge", "get_alert", "list_alerts"]


class AckRefused(Exception):
    """The alert was acknowledged already (``acked_by``, ``acked_at``), or does not exist (both None)."""

    def __init__(self, acked_by: str | None, acked_at: datetime | None) -> None:
        super().__init__(acked_by)
        self.acked_by = acked_by
        self.acked_at = acked_at


async def list_alerts(conn: AsyncConnection[Any], *, limit: int, active: bool | None = None,
                      site: str | None = None, rule: str | None = None, since: datetime | None = None,
                      after: tuple[datetime, int] | None = None) -> list[dict[str, Any]]:
    """Return alerts newest first, filtered as ``sql.list_params`` says."""
    params = sql.list_params(limit=limit, active=active, site=site, rule=rule, since=since, after=after)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.LIST, params)
        return await cur.fetchall()


async def get_alert(conn: AsyncConnection[Any], alert_id: int
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Return an alert and its transitions in order, or None when there is no such alert."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.GET, (alert_id,))
        alert = await cur.fetchone()
        if alert is None:
            return None
        await cur.execute(sql.TRANSITIONS, (alert_id,))
        return alert, await cur.fetchall()


async def acknowledge(conn: AsyncConnection[Any], alert_id: int, by: str, note: str | None
                      ) -> dict[str, Any]:
    """Record who acknowledged an alert, now, with ``note``; return the alert.

    Raises:
        AckRefused: the alert was acknowledged already, or does not exist.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.ACK, {"id": alert_id, "by": by, "note": note})
        row = await cur.fetchone()
        if row is not None:
            return row
        await cur.execute(sql.ACK_STATE, (alert_id,))
        state = await cur.fetchone()
    if state is None:
        raise AckRefused(None, None)
    raise AckRefused(state["acked_by"], state["acked_at"])
