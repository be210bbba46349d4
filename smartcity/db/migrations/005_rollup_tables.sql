-- Rollups per device and metric at 1 minute, 1 hour and 1 day, the hours awaiting a refresh, and
-- the writer's mark of the hours it touched, in the same transaction as the readings.
--
-- Every rollup row holds count, sum, min, max, first and last (each with its time), and for
-- cumulative metrics the counter's rise between consecutive readings inside the bucket (resets
-- handled): enough to answer avg, min, max, sum, count, first, last and increase exactly for any
-- coarser bucket. Days are kept in the zone of rollup_settings (Asia/Makassar unless set).

CREATE TABLE rollup_settings (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    timezone text NOT NULL
);
INSERT INTO rollup_settings (timezone) VALUES ('Asia/Makassar');

CREATE TABLE rollup_1m (
    device     integer NOT NULL,
    metric     smallint NOT NULL,
    bucket     timestamptz NOT NULL,
    count      integer NOT NULL,
    sum        double precision NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    first      double precision NOT NULL,
    first_time timestamptz NOT NULL,
    last       double precision NOT NULL,
    last_time  timestamptz NOT NULL,
    -- Cumulative metrics only (NULL otherwise): the sum of the rises between consecutive readings
    -- inside the bucket, a fall counting as a reset (the new value is the rise).
    increase   double precision
);
SELECT create_hypertable('rollup_1m', 'bucket', chunk_time_interval => INTERVAL '7 days',
                         create_default_indexes => false);
CREATE UNIQUE INDEX rollup_1m_key ON rollup_1m (device, metric, bucket DESC);

CREATE TABLE rollup_1h (LIKE rollup_1m);
SELECT create_hypertable('rollup_1h', 'bucket', chunk_time_interval => INTERVAL '30 days',
                         create_default_indexes => false);
CREATE UNIQUE INDEX rollup_1h_key ON rollup_1h (device, metric, bucket DESC);

CREATE TABLE rollup_1d (LIKE rollup_1m);
SELECT create_hypertable('rollup_1d', 'bucket', chunk_time_interval => INTERVAL '365 days',
                         create_default_indexes => false);
CREATE UNIQUE INDEX rollup_1d_key ON rollup_1d (device, metric, bucket DESC);

-- Hours of a device whose rollups may not hold every stored reading: written with the readings,
-- removed by the refresher in the transaction that brings the rollups up to date. A query treats a
-- pending hour as unrefreshed and reads its raw readings instead, so answers are exact whatever
-- the refresher's lag. No unique key: writers append and never wait on the refresher.
CREATE TABLE rollup_pending (
    device     integer NOT NULL,
    hour       timestamptz NOT NULL,
    first_time timestamptz NOT NULL,  -- the earliest and latest reading time the writer stored
    last_time  timestamptz NOT NULL,  -- in this hour: the refresher redoes only those minutes
    marked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rollup_pending_device_hour ON rollup_pending (device, hour);

-- How far retention has dropped each table's chunks: readings older than the raw horizon cannot
-- rebuild a rollup (the rest of their bucket is gone), so the refresher leaves those buckets be.
CREATE TABLE retention_horizon (
    relation       text PRIMARY KEY,
    dropped_before timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A counter's rise from one reading to the next; a fall is a reset, after which the counter has
-- risen by its new value. No previous reading: no rise.
CREATE FUNCTION smartcity_counter_rise(previous double precision, current double precision)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN previous IS NULL THEN 0
                WHEN current >= previous THEN current - previous
                ELSE current END
$$;

-- Mark every hour with readings in [start_time, end_time) as pending, for all devices: for readings
-- written other than through store_staged_readings (a restore, a bulk load by hand).
CREATE FUNCTION smartcity_mark_rollups_stale(start_time timestamptz, end_time timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    marked bigint;
BEGIN
    INSERT INTO rollup_pending (device, hour, first_time, last_time)
        SELECT r.device, time_bucket(INTERVAL '1 hour', r.time), min(r.time), max(r.time)
        FROM readings r
        WHERE r.time >= start_time AND r.time < end_time
        GROUP BY 1, 2;
    GET DIAGNOSTICS marked = ROW_COUNT;
    RETURN marked;
END
$$;

-- Readings stored before this migration.
SELECT smartcity_mark_rollups_stale('-infinity', 'infinity');

-- Ingest, backfill and quarantine replay all store through this function: it now also marks the
-- hours it touched, in the same transaction.
CREATE OR REPLACE FUNCTION store_staged_readings() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    stored bigint;
BEGIN
    BEGIN
        INSERT INTO readings (time, device, metric, value)
            SELECT to_timestamp(epoch), device, metric, value FROM readings_staging;
    EXCEPTION WHEN unique_violation THEN
        INSERT INTO readings (time, device, metric, value)
            SELECT to_timestamp(epoch), device, metric, value FROM readings_staging
            ON CONFLICT DO NOTHING;
    END;
    GET DIAGNOSTICS stored = ROW_COUNT;
    IF stored > 0 THEN
        INSERT INTO rollup_pending (device, hour, first_time, last_time)
            SELECT device, to_timestamp(floor(epoch / 3600) * 3600),
                   to_timestamp(min(epoch)), to_timestamp(max(epoch))
            FROM readings_staging
            GROUP BY device, floor(epoch / 3600);
    END IF;
    RETURN stored;
END
$$;
