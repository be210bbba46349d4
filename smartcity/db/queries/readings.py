"""SQL of ingest's write path: staging, COPY, readings, latest values, device last-seen and status.

Times travel as epoch seconds (float8) and become timestamptz in the server: converting each
reading to a datetime in Python costs more than the rest of its trip through COPY.
"""

from __future__ import annotations

__all__ = [
    "COPY_STAGING", "CREATE_STAGING", "INSERT_READINGS", "SELECT_DEVICE_KEYS", "STAGING_TYPES",
    "UPDATE_LAST_SEEN", "UPDATE_STATUS", "UPSERT_LATEST",
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
