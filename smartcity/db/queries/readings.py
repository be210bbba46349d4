"""SQL of readings: ingest's write path (staging, COPY, readings, latest values, device last-seen and
status) and the API's raw reads (the series a request names, a page merged from them in time order).

On the write path times travel as epoch seconds (float8) and become timestamptz in the server: converting each
reading to a datetime in Python costs more than the rest of its trip through COPY.
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

__all__ = [
    "ANALYZE_READINGS", "COPY_STAGING", "CREATE_STAGING", "INSERT_READINGS", "SELECT_DEVICE_KEYS",
    "SELECT_READING_SERIES", "STAGING_TYPES", "UPDATE_LAST_SEEN", "UPDATE_STATUS", "UPSERT_LATEST",
    "select_page_boundary", "select_readings_page",
]

# Session-local, emptied by every commit or rollback: a batch never sees another's rows.
CREATE_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS readings_staging"
    " (epoch double precision NOT NULL, device integer NOT NULL, metric smallint NOT NULL,"
    " value double precision NOT NULL) ON COMMIT DELETE ROWS"
)
COPY_STAGING = (
    "COPY readings_staging (epoch, device, metric, value) FROM STDIN (FORMAT BINARY)"
)
STAGING_TYPES = ["float8", "int4", "int2", "float8"]

# A plain INSERT first, then ON CONFLICT DO NOTHING if the batch held a duplicate, inside a
# function (migration 004) so the caught unique violation never reaches the server log.
INSERT_READINGS = "SELECT store_staged_readings()"

# A reading's place in the latest values is its time, but never later than its arrival, taken as
# the storing transaction's start (now(): at most one batch age after the MQTT receive time, and
# free, where a per-reading arrival column would cost COPY a fifth of its work). So a reading
# stamped ahead of the present by a fast device clock cannot hide readings that arrive after it;
# backfilled and replayed readings lie in the past and rank by their own time.
UPSERT_LATEST = (
    "INSERT INTO latest_readings (device, metric, time, value, received_at)"
    " SELECT DISTINCT ON (device, metric) device, metric, to_timestamp(epoch), value, now()"
    " FROM readings_staging"
    " ORDER BY device, metric, least(epoch, extract(epoch FROM now())) DESC, epoch DESC"
    " ON CONFLICT (device, metric) DO UPDATE"
    " SET time = excluded.time, value = excluded.value, received_at = excluded.received_at"
    " WHERE least(excluded.time, excluded.received_at)"
    " > least(latest_readings.time, latest_readings.received_at)"
)

UPDATE_LAST_SEEN = (
    "UPDATE devices d SET last_seen = v.seen"
    " FROM unnest(%s::integer[], %s::timestamptz[]) AS v(id, seen)"
    # A second's precision is plenty, and skipping smaller moves spares a row version per
    # device per batch.
    " WHERE d.id = v.id AND (d.last_seen IS NULL OR d.last_seen < v.seen - interval '1 second')"
)
UPDATE_STATUS = (
    "UPDATE devices SET status = %s, status_changed_at = %s"
    " WHERE id = %s AND (status_changed_at IS NULL OR status_changed_at <= %s)"
)

# The registry as ingest needs it: compact key and kind of each public id asked for.
SELECT_DEVICE_KEYS = "SELECT device_id, id, kind FROM devices WHERE device_id = ANY(%s)"


# {"devices": text[] | None, "sites": text[] | None, "metrics": text[] | None} → (device_id, metric
# name, device key, metric key, selected) for each metric the device's kind reports (ingest stores
# no other) among those asked for. The devices are those named, else those of the sites named;
# `selected` is false for a named device outside the sites named. A device none of whose metrics
# is asked for comes back once with NULL metric columns, so an unknown device has no row at all.
SELECT_READING_SERIES: Final = """
SELECT d.device_id, m.name, d.id, m.metric_id,
       (%(sites)s::text[] IS NULL OR d.site_id = ANY (%(sites)s::text[])) AS selected
FROM devices d
LEFT JOIN (device_kind_metrics k JOIN metrics m ON m.metric_id = k.metric_id)
       ON k.kind = d.kind AND (%(metrics)s::text[] IS NULL OR m.name = ANY (%(metrics)s::text[]))
WHERE CASE WHEN %(devices)s::text[] IS NULL THEN d.site_id = ANY (%(sites)s::text[])
           ELSE d.device_id = ANY (%(devices)s::text[]) END
"""

def _series_scans(series_count: int, columns: sql.Composable) -> sql.Composable:
    """One ordered range scan per series, as a UNION ALL the planner merges by time.

    Each branch reads one (device, metric) in [lower, upper) through the readings key (device,
    metric, time) and keeps its own ORDER BY and LIMIT: that stops the branches from being
    flattened into one append, so the planner puts a Merge Append over them and reads each series
    only as far as the page needs, instead of sorting every reading in the range (EXPLAIN in the
    README). ``s``, the series' position in the request's order, breaks ties of time.
    Parameters per branch: device key, metric key, lower (inclusive), upper (exclusive), limit.
    """
    return sql.SQL(" UNION ALL ").join(
        sql.SQL("(SELECT r.time, {position} AS s{columns} FROM readings r"
                " WHERE r.device = %s AND r.metric = %s AND r.time >= %s AND r.time < %s"
                " ORDER BY r.time LIMIT %s)").format(position=sql.Literal(position), columns=columns)
        for position in range(series_count))


def select_readings_page(series_count: int) -> sql.Composed:
    """Return the readings of ``series_count`` series merged by (time, series), up to a limit.

    Parameters: each branch's five (``_series_scans``), then the page's limit. Rows: (time, s,
    value), s the series' position.
    """
    return sql.SQL("SELECT time, s, value FROM ({}) page ORDER BY time, s LIMIT %s").format(
        _series_scans(series_count, sql.SQL(", r.value")))


def select_page_boundary(series_count: int) -> sql.Composed:
    """Return the keys (time, s) of the merged rows at positions offset and offset + 1 (0-based).

    Parameters: each branch's five, then the offset. Two rows: a page of offset + 1 rows ends at
    the first and more follow; one row: the page holds everything; none: fewer rows than that.
    """
    return sql.SQL("SELECT time, s FROM ({}) keys ORDER BY time, s OFFSET %s LIMIT 2").format(
        _series_scans(series_count, sql.SQL("")))


# () → nothing: fresh statistics of the readings (a hypertable: TimescaleDB analyses its chunks). After
# a bulk backfill the planner otherwise plans the rollup refresh on empty-table estimates: 76.6 s
# against 8.7 s for 90 days of the demo fleet (tests/dashboards' scenario data).
ANALYZE_READINGS: Final = "ANALYZE readings"
