"""A small water-meter fleet in the test database, and the helpers the planner's tests share.

Two water meters on one site and one on another report ``water_volume`` (cumulative) and
``water_pressure`` (plain). Readings reach the database through the real write path (``Writer``
with ``Rows``, as the backfill does) or by hand (``INSERT INTO readings`` then
``smartcity_mark_rollups_stale``); the lab keeps what the readings key lets in, so the numpy
reference sees exactly the stored rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from ingest.rows import Rows
from ingest.write import Writer
from smartcity.catalog import METRICS
from smartcity.devices import register_device
from tests.aggregate_reference import RefDevice, RefQuery, RefReading, RefRow

WATER = frozenset({"water_volume", "water_pressure"})
FLEET = (RefDevice("wm-a1", "tanah-grogot", WATER), RefDevice("wm-a2", "tanah-grogot", WATER),
         RefDevice("wm-b1", "kuaro", WATER))
DEVICES = {d.device_id: d for d in FLEET}
DEFAULT_ZONE = "Asia/Makassar"

# Everything the tests write; the catalogue tables stay as seeded.
DATA_TABLES = ("readings", "latest_readings", "quarantine", "rollup_1m", "rollup_1h", "rollup_1d",
               "rollup_pending", "retention_horizon")

# Every call of one check in one statement, each planner row with its place in the planner's output.
AGGREGATE_MANY = """
    SELECT q.n, a.key, a.time, a.value, a.count
    FROM unnest(%(metric)s::text[], %(bucket)s::text[], %(agg)s::text[], %(start)s::timestamptz[],
                %(end)s::timestamptz[], %(group_by)s::text[], %(tz)s::text[])
         WITH ORDINALITY AS q(metric, bucket, agg, start_time, end_time, group_by, tz, n)
    CROSS JOIN LATERAL smartcity_aggregate(q.metric, q.bucket, q.agg, q.start_time, q.end_time,
                                           %(devices)s::text[], %(sites)s::text[], q.group_by, q.tz)
         WITH ORDINALITY AS a(key, time, value, count, i)
    ORDER BY q.n, a.i
"""
INSERT_BY_HAND = """
    INSERT INTO readings (time, device, metric, value)
    SELECT to_timestamp(x.epoch), d.id, m.metric_id, x.value
    FROM unnest(%s::text[], %s::text[], %s::float8[], %s::float8[]) WITH ORDINALITY
         AS x(device_id, metric, epoch, value, n)
    JOIN devices d ON d.device_id = x.device_id
    JOIN metrics m ON m.name = x.metric
    ORDER BY x.n
    ON CONFLICT DO NOTHING
"""
MARK_STALE = "SELECT smartcity_mark_rollups_stale(%s, %s)"
REFRESH = "SELECT marks, minutes, hours, days, skipped FROM smartcity_refresh_rollups(%s)"
REFRESH_DEFAULT = "SELECT marks, minutes, hours, days, skipped FROM smartcity_refresh_rollups()"
SET_ZONE = "SELECT smartcity_set_rollup_timezone(%s)"
PENDING = "SELECT count(*) FROM rollup_pending"

Arrival = tuple[str, str, float, float]  # device id, metric, epoch seconds, value


def utc(epoch: float) -> datetime:
    """Return ``epoch`` seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, UTC)


@dataclass(repr=False)
class Lab:
    """The fleet registered in the test database, a writer, and the readings stored so far."""

    conn: psycopg.Connection
    writer: Writer
    keys: dict[str, int]
    zone: str = DEFAULT_ZONE
    stored: dict[tuple[str, str, float], float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Lab(zone={self.zone!r}, {len(self.stored)} readings stored)"

    @classmethod
    def open(cls, url: str) -> Lab:
        """Empty the data tables, register the fleet and open a writer."""
        conn = psycopg.connect(url, autocommit=True)
        conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)}, devices RESTART IDENTITY CASCADE")
        for d in FLEET:
            register_device(conn, d.device_id, "water_meter", d.site_id)
        keys = dict(conn.execute("SELECT device_id, id FROM devices").fetchall())
        lab = cls(conn, Writer(url), keys)
        lab.reset()
        return lab

    def close(self) -> None:
        """Leave the rollups empty in the default zone, for the tests after these."""
        self.reset()
        self.writer.close()
        self.conn.close()

    def reset(self) -> None:
        """Forget every reading and rollup; keep the fleet; days back in the default zone."""
        self.conn.execute(f"TRUNCATE {', '.join(DATA_TABLES)}")
        self.set_zone(DEFAULT_ZONE)
        self.stored.clear()

    def ingest(self, arrivals: Iterable[Arrival]) -> int:
        """Store arrivals through the write path (as ingest and backfill do); return how many were new."""
        rows = Rows()
        for device_id, metric, epoch, value in arrivals:
            rows.readings.append((float(epoch), self.keys[device_id], METRICS[metric].id, value))
            self.stored.setdefault((device_id, metric, epoch), value)
        return self.writer.write_rows(rows).readings_stored

    def insert_by_hand(self, arrivals: Sequence[Arrival], pad_s: int = 0) -> int:
        """Insert arrivals straight into ``readings``, then mark their span stale; return marks made."""
        columns = list(zip(*arrivals, strict=True))
        self.conn.execute(INSERT_BY_HAND, (list(columns[0]), list(columns[1]),
                                           [float(e) for e in columns[2]], list(columns[3])))
        for device_id, metric, epoch, value in arrivals:
            self.stored.setdefault((device_id, metric, epoch), value)
        epochs = columns[2]
        span = (utc(min(epochs) - pad_s), utc(max(epochs) + 1 + pad_s))
        row = self.conn.execute(MARK_STALE, span).fetchone()
        assert row is not None
        return int(row[0])

    def refresh(self, max_marks: int | None = None) -> tuple[int, int, int, int, int]:
        """Run the refresher once; return (marks, minutes, hours, days, skipped)."""
        cur = (self.conn.execute(REFRESH_DEFAULT) if max_marks is None
               else self.conn.execute(REFRESH, (max_marks,)))
        row = cur.fetchone()
        assert row is not None and row[0] is not None, "another refresher held the lock"
        return row

    def catch_up(self) -> int:
        """Refresh until no mark is left; return how many refreshes claimed something."""
        rounds = 0
        while self.refresh()[0] > 0:
            rounds += 1
        assert self.pending() == 0
        return rounds

    def pending(self) -> int:
        """Return the number of pending marks."""
        row = self.conn.execute(PENDING).fetchone()
        assert row is not None
        return int(row[0])

    def set_zone(self, zone: str) -> bool:
        """Keep the daily rollups in ``zone``; return whether they were rebuilt."""
        row = self.conn.execute(SET_ZONE, (zone,)).fetchone()
        assert row is not None
        self.zone = zone
        return bool(row[0])

    def readings(self) -> list[RefReading]:
        """Return the stored readings, as the reference wants them."""
        return [RefReading(device_id, metric, utc(epoch), value)
                for (device_id, metric, epoch), value in self.stored.items()]

    def aggregate_many(self, queries: Sequence[RefQuery]) -> list[list[RefRow]]:
        """Ask the planner every query (same devices and sites) in one statement, rows in its order."""
        first = queries[0]
        assert all(q.device_ids == first.device_ids and q.site_ids == first.site_ids for q in queries)
        params = {
            "metric": [q.metric for q in queries], "bucket": [q.bucket for q in queries],
            "agg": [q.agg for q in queries], "start": [q.start for q in queries],
            "end": [q.end for q in queries], "group_by": [q.group_by for q in queries],
            "tz": [q.tz for q in queries],
            "devices": list(first.device_ids) if first.device_ids is not None else None,
            "sites": list(first.site_ids) if first.site_ids is not None else None,
        }
        answers: list[list[RefRow]] = [[] for _ in queries]
        for n, key, time, value, count in self.conn.execute(AGGREGATE_MANY, params):
            answers[n - 1].append(RefRow(key, time, value, count))
        return answers
