"""The quarantine for /quarantine: the listing `smartcity quarantine list` runs, asked asynchronously."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from smartcity.db.queries import quarantine as quarantine_sql

__all__ = ["list_quarantine"]


async def list_quarantine(conn: AsyncConnection[Any], *, head: int, limit: int,
                          reasons: Sequence[str] | None = None, device: str | None = None,
                          replayed: bool | None = None, since: datetime | None = None,
                          until: datetime | None = None, before: int | None = None,
                          ) -> list[dict[str, Any]]:
    """Return quarantined messages, newest first, with the first ``head`` bytes of each payload.

    The filters are ``quarantine_sql.list_params``'s, the statement the CLI's listing runs.

    Raises:
        ValueError: a reason is not one of the contract's codes.
    """
    params = quarantine_sql.list_params(head=head, limit=limit, reasons=reasons, device=device,
                                        replayed=replayed, since=since, until=until, before=before)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(quarantine_sql.LIST, params)
        return await cur.fetchall()
