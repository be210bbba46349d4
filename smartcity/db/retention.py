"""Retention: drop the chunks of raw readings and rollups past their age, with ``drop_chunks``.

Each table keeps its data for its own number of days (``RetentionSettings``). TimescaleDB drops
whole chunks, so a chunk goes once its entire range has passed the age. Three rules keep the
rollups exact:

- A raw chunk that still holds hours waiting for a rollup refresh is kept this time: dropping it
  would lose readings no rollup has seen. Raw chunks after it are kept too, because the horizon
  below cannot pass a chunk that may still be rebuilt from.
- After raw chunks go, ``retention_horizon`` records where: the refresher leaves older hours alone,
  since the rest of their readings is gone (migration 006).
- A rollup chunk the refresher may still read is kept: it rebuilds an hour from that hour's
  minutes, and a day (in the rollup zone, at most a day wide) from its hours.

``enforce_retention`` runs in one transaction, holding the refresher's lock and a share lock on
``readings`` (writers wait the few milliseconds a drop takes), so what it checked is what it drops.
Compression of old raw chunks is a community-edition extra, off unless configured.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from smartcity.db.queries import retention as q
from smartcity.settings import RetentionSettings

__all__ = [
    "RAW_TABLE",
    "TABLES",
    "Chunk",
    "HeldChunk",
    "RetentionError",
    "RetentionReport",
    "TablePlan",
    "enforce_retention",
    "plan_retention",
]

log = logging.getLogger(__name__)

RAW_TABLE = "readings"
# Finest first: each table is rebuilt from the one before it. Maps the table to its setting.
TABLES: dict[str, str] = {
    RAW_TABLE: "raw_days",
    "rollup_1m": "rollup_1m_days",
    "rollup_1h": "rollup_1h_days",
    "rollup_1d": "rollup_1d_days",
}
# The widest bucket the refresher builds from a finer table's rows: an hour from its minutes, a
# day (any zone a whole number of hours from UTC) from its hours.
_REBUILD_REACH: dict[str, timedelta] = {"rollup_1m": timedelta(hours=1), "rollup_1h": timedelta(days=1)}


class RetentionError(ValueError):
    """Retention cannot run as configured (compression asked of an edition without it)."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of a hypertable and the time range it covers, ``[start, end)``."""

    name: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        """Return the chunk as JSON-ready values."""
        return {"chunk": self.name, "start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class HeldChunk:
    """A chunk past its age that is kept this time, and why."""

    chunk: Chunk
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Return the chunk and the reason as JSON-ready values."""
        return {**self.chunk.to_dict(), "reason": self.reason}


@dataclass(frozen=True)
class TablePlan:
    """What retention does to one table: the chunks that go and the ones held back."""

    table: str
    keep_days: int | None  # None: kept for ever
    cutoff: datetime | None  # chunks ending at or before this go; None: none do
    drop: list[Chunk] = field(default_factory=list)
    held: list[HeldChunk] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready values."""
        return {
            "table": self.table,
            "keep_days": self.keep_days,
            "cutoff": None if self.cutoff is None else self.cutoff.isoformat(),
            "drop": [c.to_dict() for c in self.drop],
            "held": [h.to_dict() for h in self.held],
        }


@dataclass(frozen=True)
class RetentionReport:
    """What a retention run dropped and compressed, or would have (``dry_run``)."""

    now: datetime
    dry_run: bool
    tables: list[TablePlan]
    horizon: datetime | None  # the raw horizon after the run: readings before it are gone
    compress: list[Chunk] = field(default_factory=list)

    def table(self, name: str) -> TablePlan:
        """Return the plan of one table."""
        return next(t for t in self.tables if t.table == name)

    @property
    def dropped(self) -> dict[str, list[Chunk]]:
        """Return the chunks that go, per table."""
        return {t.table: t.drop for t in self.tables}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready values."""
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "raw_horizon": None if self.horizon is None else self.horizon.isoformat(),
            "tables": [t.to_dict() for t in self.tables],
            "compress": [c.to_dict() for c in self.compress],
        }

    def to_text(self) -> str:
        """Return the report as lines for a person: one per chunk dropped or held."""
        verb = "would drop" if self.dry_run else "dropped"
        lines = []
        for t in self.tables:
            kept = "kept for ever" if t.keep_days is None else f"keeps {t.keep_days} days"
            lines.append(f"{t.table}: {kept}; {verb} {len(t.drop)} chunk(s), held {len(t.held)}")
            lines += [f"  {verb} {c.name} [{c.start.isoformat()}, {c.end.isoformat()})" for c in t.drop]
            lines += [f"  held {h.chunk.name} [{h.chunk.start.isoformat()}, {h.chunk.end.isoformat()}):"
                      f" {h.reason}" for h in t.held]
        if self.compress:
            lines.append(f"readings: {'would compress' if self.dry_run else 'compressed'}"
                         f" {len(self.compress)} chunk(s)")
        lines.append("raw horizon: " + ("none (no raw chunk dropped yet)" if self.horizon is None
                                        else self.horizon.isoformat()))
        return "\n".join(lines)


def _chunks(conn: psycopg.Connection[Any], table: str, cutoff: datetime) -> list[Chunk]:
    rows = conn.execute(q.CHUNKS_ENDING_BY, {"table": table, "cutoff": cutoff}).fetchall()
    return [Chunk(name, start, end) for name, start, end in rows]


def _plan_raw(conn: psycopg.Connection[Any], keep_days: int | None, now: datetime) -> TablePlan:
    if keep_days is None:
        return TablePlan(RAW_TABLE, None, None)
    cutoff = now - timedelta(days=keep_days)
    past = _chunks(conn, RAW_TABLE, cutoff)
    pending: dict[datetime, int] = {}
    if past:
        pending = dict(conn.execute(q.PENDING_HOURS_BY_RANGE, {
            "starts": [c.start for c in past], "ends": [c.end for c in past]}).fetchall())
    drop: list[Chunk] = []
    held: list[HeldChunk] = []
    for chunk in past:
        waiting = pending.get(chunk.start, 0)
        if waiting:
            held.append(HeldChunk(chunk, f"{waiting} device-hour(s) in it still wait for a rollup"
                                         " refresh; dropped once they are rolled up"))
        elif held:
            held.append(HeldChunk(chunk, f"an older chunk ({held[0].chunk.name}) is held back, and the"
                                         " raw horizon cannot pass a chunk still to be rolled up"))
        else:
            drop.append(chunk)
    return TablePlan(RAW_TABLE, keep_days, held[0].chunk.start if held else cutoff, drop, held)


def _plan_rollup(conn: psycopg.Connection[Any], table: str, keep_days: int | None, now: datetime,
                 rebuild_from: datetime | None) -> TablePlan:
    if keep_days is None:
        return TablePlan(table, None, None)
    cutoff = now - timedelta(days=keep_days)
    reach = _REBUILD_REACH.get(table)
    if reach is None or rebuild_from is None:
        return TablePlan(table, keep_days, cutoff, _chunks(conn, table, cutoff))
    # The refresher may rebuild any hour from rebuild_from on, and it reads this table's rows of
    # the bucket around that hour: chunks reaching into that bucket stay.
    floor = min(cutoff, rebuild_from - reach)
    drop, held = [], []
    for chunk in _chunks(conn, table, cutoff):
        if chunk.end <= floor:
            drop.append(chunk)
        else:
            held.append(HeldChunk(chunk, f"the refresher may still rebuild buckets from"
                                         f" {rebuild_from.isoformat()} on from it"))
    return TablePlan(table, keep_days, floor, drop, held)


def _horizon_after(conn: psycopg.Connection[Any], raw: TablePlan) -> datetime | None:
    """Return the raw horizon once ``raw`` is carried out: the recorded one, or past the drops."""
    row = conn.execute(q.RAW_HORIZON).fetchone()
    horizons: list[datetime] = ([row[0]] if row else []) + [c.end for c in raw.drop]
    return max(horizons) if horizons else None


def _rebuild_from(conn: psycopg.Connection[Any], raw: TablePlan,
                  horizon: datetime | None) -> datetime | None:
    """Return the earliest hour the refresher may still rebuild once ``raw`` is carried out."""
    if raw.cutoff is None:
        return None  # raw kept for ever: so are the rollups (the settings' order)
    if horizon is not None:
        return horizon
    # Nothing dropped yet: any stored reading can be marked and rebuilt.
    oldest = conn.execute(q.OLDEST_CHUNK_START, {"table": RAW_TABLE}).fetchone()
    return min(raw.cutoff, oldest[0]) if oldest else raw.cutoff


def _edition(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(q.EDITION).fetchone()
    return str(row[0]) if row and row[0] else "unknown"


def _plan_compression(conn: psycopg.Connection[Any], settings: RetentionSettings, now: datetime,
                      raw: TablePlan) -> list[Chunk]:
    after = settings.compress_raw_after_days
    if after is None:
        return []
    edition = _edition(conn)
    if edition != "timescale":
        raise RetentionError(
            f"SMARTCITY_RETENTION__COMPRESS_RAW_AFTER_DAYS={after} asks for compression, which"
            f" TimescaleDB's {edition!r} edition does not have (timescaledb.license = {edition!r};"
            " the community edition's is 'timescale'): unset it, or run the community edition")
    going = {c.name for c in raw.drop}
    rows = conn.execute(q.COMPRESSIBLE_CHUNKS, {"cutoff": now - timedelta(days=after)}).fetchall()
    return [Chunk(n, s, e) for n, s, e in rows if n not in going]


def plan_retention(conn: psycopg.Connection[Any], settings: RetentionSettings, *,
                   now: datetime | None = None) -> RetentionReport:
    """Work out which chunks of each table are past their age and would go, changing nothing.

    Raises:
        RetentionError: compression is configured on an edition without it.
    """
    now = datetime.now(UTC) if now is None else now
    raw = _plan_raw(conn, settings.raw_days, now)
    horizon = _horizon_after(conn, raw)
    rebuild_from = _rebuild_from(conn, raw, horizon)
    tables = [raw] + [_plan_rollup(conn, table, getattr(settings, key), now, rebuild_from)
                      for table, key in TABLES.items() if table != RAW_TABLE]
    compress = _plan_compression(conn, settings, now, raw)
    return RetentionReport(now, True, tables, horizon, compress)


def _drop(conn: psycopg.Connection[Any], table: TablePlan, cutoff: datetime) -> None:
    dropped = {name for (name,) in conn.execute(
        q.DROP_CHUNKS, {"table": table.table, "cutoff": cutoff}).fetchall()}
    if dropped != {c.name for c in table.drop}:
        # Both lists come from show_chunks' test under the same locks: a difference is a bug, and
        # raising rolls the drop back.
        raise RuntimeError(f"retention of {table.table} dropped {sorted(dropped)}, planned "
                           f"{sorted(c.name for c in table.drop)}")
    for chunk in table.drop:
        log.info("retention dropped %s chunk %s [%s, %s)", table.table, chunk.name,
                 chunk.start.isoformat(), chunk.end.isoformat())


def enforce_retention(conn: psycopg.Connection[Any], settings: RetentionSettings, *,
                      dry_run: bool = False, now: datetime | None = None) -> RetentionReport:
    """Drop (or, with ``dry_run``, only list) every chunk past its age; log each one dropped.

    Records the raw horizon after dropping raw chunks, and compresses old raw chunks when
    configured (community edition). On an autocommit connection, or one with no transaction
    open, the run commits by itself; inside the caller's transaction it holds its locks until the
    caller commits, so call it outside one.

    Raises:
        RetentionError: compression is configured on an edition without it.
    """
    if dry_run:
        return plan_retention(conn, settings, now=now)
    with conn.transaction():
        conn.execute(q.LOCK_REFRESHER)
        conn.execute(q.LOCK_READINGS)
        plan = plan_retention(conn, settings, now=now)
        for table in plan.tables:
            if table.drop and table.cutoff is not None:
                _drop(conn, table, table.cutoff)
            for held in table.held:
                log.info("retention kept %s chunk %s: %s", table.table, held.chunk.name, held.reason)
        raw = plan.table(RAW_TABLE)
        if raw.drop:
            conn.execute(q.RECORD_RAW_HORIZON, {"before": max(c.end for c in raw.drop)})
        if plan.compress:
            enabled = conn.execute(q.COMPRESSION_ENABLED).fetchone()
            if not (enabled and enabled[0]):
                conn.execute(q.ENABLE_COMPRESSION)
            for chunk in plan.compress:
                conn.execute(q.COMPRESS_CHUNK, {"chunk": chunk.name})
                log.info("retention compressed readings chunk %s [%s, %s)", chunk.name,
                         chunk.start.isoformat(), chunk.end.isoformat())
    return RetentionReport(plan.now, False, plan.tables, plan.horizon, plan.compress)
