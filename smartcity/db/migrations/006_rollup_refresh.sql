-- The refresher: re-aggregate the pending hours into the 1-minute, hourly and daily rollups.
--
-- smartcity_refresh_rollups() claims up to max_marks pending marks (oldest first), and in one
-- transaction rebuilds the minutes the marks cover from raw readings, their hours from those
-- minutes, and their days (in the rollup zone) from those hours, then lets the marks go. Late and
-- backfilled readings land in old hours like any other, so old buckets are corrected the same way.
--
-- Work on `readings` goes one UTC day (one chunk) at a time with the day's bounds as constants, so
-- the planner excludes every other chunk; bounds taken from a join would make it open them all.
-- Every join to a rollup or to readings names the metrics as a constant list too (metric =
-- ANY(...)): the keys are (device, metric, time), and without the metric an index scan for one
-- device and time range reads every metric's entries of that device in the chunk.

-- One refresher at a time: two refreshing the same hour from different snapshots could each write
-- an hour row that misses the other's minutes.
CREATE FUNCTION smartcity_rollup_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 5482179420115009537::bigint $$;

-- A coarser row is made of finer ones: first/last by time, and the increase of the parts plus the
-- rises across their boundaries (prev_last: the previous part's last value).
CREATE FUNCTION smartcity_refresh_rollups(max_marks integer DEFAULT 20000)
RETURNS TABLE (marks integer, minutes bigint, hours bigint, days bigint, skipped integer)
-- A backfill's catch-up sorts hundreds of thousands of rows per day; on disk that doubles its time.
LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
    zone       text;
    horizon    timestamptz;
    day        timestamptz;
    n          bigint;
    known      smallint[];  -- every metric of the catalogue
    cumulative smallint[];  -- the counters: their increase needs the readings in time order
    plain      smallint[];  -- the rest: aggregated without a window, so without a sort
BEGIN
    marks := 0; minutes := 0; hours := 0; days := 0; skipped := 0;
    IF NOT pg_try_advisory_xact_lock(smartcity_rollup_lock_key()) THEN
        marks := NULL;  -- another refresher is at work
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT s.timezone INTO zone FROM rollup_settings s;
    SELECT h.dropped_before INTO horizon FROM retention_horizon h WHERE h.relation = 'readings';
    SELECT array_agg(m.metric_id), coalesce(array_agg(m.metric_id) FILTER (WHERE m.cumulative), '{}'),
           coalesce(array_agg(m.metric_id) FILTER (WHERE NOT m.cumulative), '{}')
        INTO known, cumulative, plain FROM metrics m;

    CREATE TEMP TABLE IF NOT EXISTS rollup_claim (
        device integer NOT NULL, hour timestamptz NOT NULL,
        lo timestamptz NOT NULL, hi timestamptz NOT NULL  -- the minutes to rebuild: [lo, hi)
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS rollup_claim_day (
        device integer NOT NULL, day timestamptz NOT NULL, day_end timestamptz NOT NULL
    ) ON COMMIT DELETE ROWS;
    TRUNCATE rollup_claim, rollup_claim_day;

    WITH claimed AS (
        DELETE FROM rollup_pending p
        WHERE p.ctid = ANY (ARRAY(SELECT q.ctid FROM rollup_pending q ORDER BY q.marked_at
                                  LIMIT max_marks FOR UPDATE SKIP LOCKED))
        RETURNING p.device, p.hour, p.first_time, p.last_time)
    INSERT INTO rollup_claim (device, hour, lo, hi)
        SELECT c.device, c.hour, time_bucket(INTERVAL '1 minute', min(c.first_time)),
               time_bucket(INTERVAL '1 minute', max(c.last_time)) + INTERVAL '1 minute'
        FROM claimed c GROUP BY c.device, c.hour;
    GET DIAGNOSTICS marks = ROW_COUNT;
    IF marks = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    IF horizon IS NOT NULL THEN
        -- The rest of these hours' readings were dropped: rebuilding from what is left would
        -- replace a complete rollup with a partial one. Only a bulk load can bring such readings.
        DELETE FROM rollup_claim c WHERE c.hour < horizon;
        GET DIAGNOSTICS skipped = ROW_COUNT;
    END IF;
    ANALYZE rollup_claim;  -- a temporary table has no statistics otherwise: the plans below need them

    FOR day IN SELECT DISTINCT time_bucket(INTERVAL '1 day', c.hour) FROM rollup_claim c ORDER BY 1 LOOP
        EXECUTE $sql$
            DELETE FROM rollup_1m r USING rollup_claim c
            WHERE c.hour >= $1 AND c.hour < $2 AND r.bucket >= $1 AND r.bucket < $2
              AND r.device = c.device AND r.metric = ANY($3) AND r.bucket >= c.lo AND r.bucket < c.hi
        $sql$ USING day, day + INTERVAL '1 day', known;
        EXECUTE $sql$
            INSERT INTO rollup_1m (device, metric, bucket, count, sum, min, max,
                                   first, first_time, last, last_time, increase)
            SELECT r.device, r.metric, time_bucket(INTERVAL '1 minute', r.time), count(*), sum(r.value),
                   min(r.value), max(r.value), first(r.value, r.time), min(r.time),
                   last(r.value, r.time), max(r.time), NULL
            FROM rollup_claim c
            JOIN readings r ON r.device = c.device AND r.metric = ANY($3)
                           AND r.time >= c.lo AND r.time < c.hi
                           -- implied by the bounds; lets a hash join match on the hour too
                           AND time_bucket(INTERVAL '1 hour', r.time) = c.hour
            WHERE c.hour >= $1 AND c.hour < $2 AND r.time >= $1 AND r.time < $2
            GROUP BY 1, 2, 3
        $sql$ USING day, day + INTERVAL '1 day', plain;
        GET DIAGNOSTICS n = ROW_COUNT;
        minutes := minutes + n;
        EXECUTE $sql$
            INSERT INTO rollup_1m (device, metric, bucket, count, sum, min, max,
                                   first, first_time, last, last_time, increase)
            SELECT x.device, x.metric, x.minute, count(*), sum(x.value), min(x.value), max(x.value),
                   first(x.value, x.time), min(x.time), last(x.value, x.time), max(x.time), sum(x.rise)
            FROM (
                SELECT r.device, r.metric, time_bucket(INTERVAL '1 minute', r.time) AS minute,
                       r.time, r.value,
                       smartcity_counter_rise(lag(r.value) OVER (
                           PARTITION BY r.device, r.metric, time_bucket(INTERVAL '1 minute', r.time)
                           ORDER BY r.time), r.value) AS rise
                FROM rollup_claim c
                JOIN readings r ON r.device = c.device AND r.metric = ANY($3)
                               AND r.time >= c.lo AND r.time < c.hi
                               AND time_bucket(INTERVAL '1 hour', r.time) = c.hour
                WHERE c.hour >= $1 AND c.hour < $2 AND r.time >= $1 AND r.time < $2
            ) x
            GROUP BY x.device, x.metric, x.minute
        $sql$ USING day, day + INTERVAL '1 day', cumulative;
        GET DIAGNOSTICS n = ROW_COUNT;
        minutes := minutes + n;

        EXECUTE $sql$
            DELETE FROM rollup_1h r USING rollup_claim c
            WHERE c.hour >= $1 AND c.hour < $2 AND r.bucket >= $1 AND r.bucket < $2
              AND r.device = c.device AND r.metric = ANY($3) AND r.bucket = c.hour
        $sql$ USING day, day + INTERVAL '1 day', known;
        EXECUTE $sql$
            INSERT INTO rollup_1h (device, metric, bucket, count, sum, min, max,
                                   first, first_time, last, last_time, increase)
            SELECT r.device, r.metric, c.hour, sum(r.count), sum(r.sum), min(r.min), max(r.max),
                   first(r.first, r.first_time), min(r.first_time),
                   last(r.last, r.last_time), max(r.last_time), NULL
            FROM (SELECT DISTINCT device, hour FROM rollup_claim WHERE hour >= $1 AND hour < $2) c
            JOIN rollup_1m r ON r.device = c.device AND r.metric = ANY($3) AND r.bucket >= c.hour
                            AND r.bucket < c.hour + INTERVAL '1 hour'
                            AND time_bucket(INTERVAL '1 hour', r.bucket) = c.hour
            WHERE r.bucket >= $1 AND r.bucket < $2
            GROUP BY r.device, r.metric, c.hour
        $sql$ USING day, day + INTERVAL '1 day', plain;
        GET DIAGNOSTICS n = ROW_COUNT;
        hours := hours + n;
        EXECUTE $sql$
            INSERT INTO rollup_1h (device, metric, bucket, count, sum, min, max,
                                   first, first_time, last, last_time, increase)
            SELECT x.device, x.metric, x.hour, sum(x.count), sum(x.sum), min(x.min), max(x.max),
                   first(x.first, x.first_time), min(x.first_time),
                   last(x.last, x.last_time), max(x.last_time),
                   CASE WHEN bool_and(x.increase IS NOT NULL)
                        THEN sum(x.increase + smartcity_counter_rise(x.prev_last, x.first)) END
            FROM (
                SELECT c.hour, r.*, lag(r.last) OVER (PARTITION BY r.device, r.metric, c.hour
                                                      ORDER BY r.bucket) AS prev_last
                FROM (SELECT DISTINCT device, hour FROM rollup_claim
                      WHERE hour >= $1 AND hour < $2) c
                JOIN rollup_1m r ON r.device = c.device AND r.metric = ANY($3) AND r.bucket >= c.hour
                                AND r.bucket < c.hour + INTERVAL '1 hour'
                                AND time_bucket(INTERVAL '1 hour', r.bucket) = c.hour
                WHERE r.bucket >= $1 AND r.bucket < $2
            ) x
            GROUP BY x.device, x.metric, x.hour
        $sql$ USING day, day + INTERVAL '1 day', cumulative;
        GET DIAGNOSTICS n = ROW_COUNT;
        hours := hours + n;
    END LOOP;

    -- Days in the rollup zone, from their hours.
    INSERT INTO rollup_claim_day (device, day, day_end)
        SELECT DISTINCT c.device, time_bucket(INTERVAL '1 day', c.hour, zone),
               ((time_bucket(INTERVAL '1 day', c.hour, zone) AT TIME ZONE zone) + INTERVAL '1 day')
                   AT TIME ZONE zone
        FROM rollup_claim c;
    ANALYZE rollup_claim_day;
    DELETE FROM rollup_1d r USING rollup_claim_day c
    WHERE r.device = c.device AND r.metric = ANY(known) AND r.bucket = c.day;
    INSERT INTO rollup_1d (device, metric, bucket, count, sum, min, max,
                           first, first_time, last, last_time, increase)
        SELECT x.device, x.metric, x.day, sum(x.count), sum(x.sum), min(x.min), max(x.max),
               first(x.first, x.first_time), min(x.first_time),
               last(x.last, x.last_time), max(x.last_time),
               CASE WHEN bool_and(x.increase IS NOT NULL)
                    THEN sum(x.increase + smartcity_counter_rise(x.prev_last, x.first)) END
        FROM (
            SELECT c.day, r.*, lag(r.last) OVER (PARTITION BY r.device, r.metric, c.day
                                                 ORDER BY r.bucket) AS prev_last
            FROM rollup_claim_day c
            JOIN rollup_1h r ON r.device = c.device AND r.metric = ANY(known)
                            AND r.bucket >= c.day AND r.bucket < c.day_end
        ) x
        GROUP BY x.device, x.metric, x.day;
    GET DIAGNOSTICS days = ROW_COUNT;
    RETURN NEXT;
END
$$;

-- How far the rollups trail the readings: the age of the oldest mark not yet refreshed.
CREATE FUNCTION smartcity_rollup_lag() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT coalesce(now() - min(marked_at), INTERVAL '0') FROM rollup_pending
$$;

-- Keep the daily rollups in `zone`. A new zone rebuilds every day from the hourly rollups, in one
-- transaction: a query sees the old days or the new ones, never a mixture. Returns whether the
-- zone changed. Zones whose offset is not a whole number of hours are refused: their days cannot
-- be made of hours. Not only today's offset: Australia/Lord_Howe is UTC+11 in summer and
-- UTC+10:30 in winter; a daily sample since 1970 and for decades ahead finds such a season.
CREATE FUNCTION smartcity_set_rollup_timezone(zone text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM generate_series(TIMESTAMPTZ '1970-01-01 00:00+00', now() + INTERVAL '50 years',
                                             INTERVAL '1 day') AS g(at)
               WHERE extract(epoch FROM (g.at AT TIME ZONE zone) - (g.at AT TIME ZONE 'UTC'))::bigint % 3600 <> 0)
    THEN
        RAISE EXCEPTION 'the rollup time zone must be a whole number of hours from UTC; % is not', zone
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT s.timezone FROM rollup_settings s) = zone THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(smartcity_rollup_lock_key());
    UPDATE rollup_settings SET timezone = zone;
    DELETE FROM rollup_1d;
    INSERT INTO rollup_1d (device, metric, bucket, count, sum, min, max,
                           first, first_time, last, last_time, increase)
        SELECT x.device, x.metric, x.day, sum(x.count), sum(x.sum), min(x.min), max(x.max),
               first(x.first, x.first_time), min(x.first_time),
               last(x.last, x.last_time), max(x.last_time),
               CASE WHEN bool_and(x.increase IS NOT NULL)
                    THEN sum(x.increase + smartcity_counter_rise(x.prev_last, x.first)) END
        FROM (
            SELECT time_bucket(INTERVAL '1 day', r.bucket, zone) AS day, r.*,
                   lag(r.last) OVER (PARTITION BY r.device, r.metric,
                                                  time_bucket(INTERVAL '1 day', r.bucket, zone)
                                     ORDER BY r.bucket) AS prev_last
            FROM rollup_1h r
        ) x
        GROUP BY x.device, x.metric, x.day;
    RETURN true;
END
$$;
