"""SQL of retention: the chunks past their age, the rollup marks that hold raw chunks back, the
drops, the raw horizon the refresher reads, and compression on the community edition.

A chunk is listed exactly when ``drop_chunks`` with the same cutoff would drop it (its whole range
ends at or before the cutoff): both go through TimescaleDB's own ``show_chunks`` test.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHUNKS_ENDING_BY",
    "COMPRESSIBLE_CHUNKS",
    "COMPRESSION_ENABLED",
    "COMPRESS_CHUNK",
    "DROP_CHUNKS",
    "EDITION",
    "ENABLE_COMPRESSION",
    "LOCK_READINGS",
    "LOCK_REFRESHER",
    "OLDEST_CHUNK_START",
    "PENDING_HOURS_BY_RANGE",
    "RAW_HORIZON",
    "RECORD_RAW_HORIZON",
]

# () → ('apache',) or ('timescale',): which TimescaleDB edition the server runs.
EDITION: Final = "SELECT current_setting('timescaledb.license', true)"

# (table, cutoff) → (chunk, range_start, range_end), oldest first: the chunks drop_chunks would drop.
CHUNKS_ENDING_BY: Final = (
    "SELECT s.chunk::text, c.range_start, c.range_end"
    " FROM show_chunks(%(table)s::regclass, older_than => %(cutoff)s::timestamptz) AS s(chunk)"
    " JOIN timescaledb_information.chunks c"
    " ON (quote_ident(c.chunk_schema) || '.' || quote_ident(c.chunk_name))::regclass = s.chunk"
    " ORDER BY c.range_start"
)

# (table,) → (range_start,): where the table's oldest chunk starts; no row when it has none.
OLDEST_CHUNK_START: Final = (
    "SELECT min(range_start) FROM timescaledb_information.chunks"
    " WHERE hypertable_schema = 'public' AND hypertable_name = %(table)s HAVING count(*) > 0"
)

# (starts[], ends[]) → (range_start, device-hours pending) for each range with marks of hours that
# overlap it; none for a range without. Marks are appended, not merged: one device-hour may have several.
PENDING_HOURS_BY_RANGE: Final = (
    "SELECT r.range_start, count(*)"
    " FROM unnest(%(starts)s::timestamptz[], %(ends)s::timestamptz[]) AS r(range_start, range_end)"
    " JOIN (SELECT DISTINCT device, hour FROM rollup_pending"
    "       WHERE hour < (SELECT max(e) FROM unnest(%(ends)s::timestamptz[]) AS e)) AS p"
    " ON p.hour < r.range_end AND p.hour + INTERVAL '1 hour' > r.range_start"
    " GROUP BY r.range_start"
)

# () → (dropped_before,) of the raw readings; no row when nothing was ever dropped.
RAW_HORIZON: Final = "SELECT dropped_before FROM retention_horizon WHERE relation = 'readings'"

# (dropped_before,): readings before it are gone; the horizon never moves back.
RECORD_RAW_HORIZON: Final = (
    "INSERT INTO retention_horizon (relation, dropped_before) VALUES ('readings', %(before)s)"
    " ON CONFLICT (relation) DO UPDATE"
    " SET dropped_before = greatest(retention_horizon.dropped_before, EXCLUDED.dropped_before),"
    " updated_at = now()"
)

# Waits for a running refresh to finish and keeps the next one out until commit: a refresh that
# read the old horizon would otherwise rebuild hours from raw chunks being dropped.
LOCK_REFRESHER: Final = "SELECT pg_advisory_xact_lock(smartcity_rollup_lock_key())"

# Waits for writers in flight and holds new ones until commit (chunks included: they inherit),
# so no reading and no rollup mark can land in a raw chunk between the check and the drop.
LOCK_READINGS: Final = "LOCK TABLE readings IN SHARE MODE"

# (table, cutoff) → (chunk,) for each chunk dropped.
DROP_CHUNKS: Final = "SELECT drop_chunks(%(table)s::regclass, older_than => %(cutoff)s::timestamptz)"

# () → (enabled,): whether compression is switched on for readings.
COMPRESSION_ENABLED: Final = (
    "SELECT compression_enabled FROM timescaledb_information.hypertables"
    " WHERE hypertable_schema = 'public' AND hypertable_name = 'readings'"
)

# Segments by device and metric, ordered by time: the shape of every query on readings.
ENABLE_COMPRESSION: Final = (
    "ALTER TABLE readings SET (timescaledb.compress,"
    " timescaledb.compress_segmentby = 'device, metric', timescaledb.compress_orderby = 'time')"
)

# (cutoff,) → (chunk, range_start, range_end) of raw chunks ending by cutoff, not yet compressed.
COMPRESSIBLE_CHUNKS: Final = (
    "SELECT s.chunk::text, c.range_start, c.range_end"
    " FROM show_chunks('readings'::regclass, older_than => %(cutoff)s::timestamptz) AS s(chunk)"
    " JOIN timescaledb_information.chunks c"
    " ON (quote_ident(c.chunk_schema) || '.' || quote_ident(c.chunk_name))::regclass = s.chunk"
    " WHERE NOT c.is_compressed"
    " ORDER BY c.range_start"
)

# (chunk,): compress one chunk; one already compressed is left as it is.
COMPRESS_CHUNK: Final = "SELECT compress_chunk(%(chunk)s::regclass, if_not_compressed => true)"
