-- The planner every reader shares: the API, the alert rules and Grafana's SQL all call
-- smartcity_aggregate(), so "the 24-hour mean" has one definition.
--
--   SELECT * FROM smartcity_aggregate('pm25', '1d', 'avg', now() - interval '90 days', now(),
--                                     site_ids => ARRAY['tanah-grogot'], group_by => 'site');
--
-- It answers from the coarsest rollup whose buckets nest inside the asked-for buckets, down the
-- levels at the range's edges (days inside, then hours, minutes, raw readings at the ends), and
-- from raw readings for every hour still pending a refresh. So an answer is exact and current
-- whatever the refresher's lag. Buckets are N followed by s, m, h, d, w or mo; they follow `tz`
-- (default: the rollup zone), with weeks starting on Monday. Empty buckets are left out.
-- Across devices, first and last break ties of time by device id.

-- The width of a bucket such as 15m, 1h, 1d, 1w or 1mo.
CREATE FUNCTION smartcity_bucket_width(bucket text) RETURNS interval
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    parts text[] := regexp_match(bucket, '^([1-9][0-9]{0,4})(s|m|h|d|w|mo)$');
BEGIN
    IF parts IS NULL THEN
        RAISE EXCEPTION 'bucket % is not a count and a unit', coalesce(quote_literal(bucket), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example 1m, 5m, 15m, 1h, 1d, 1w, 1mo (units: s, m, h, d, w, mo)';
    END IF;
    RETURN (parts[1] || ' ' || CASE parts[2] WHEN 's' THEN 'seconds' WHEN 'm' THEN 'minutes'
                                             WHEN 'h' THEN 'hours' WHEN 'd' THEN 'days'
                                             WHEN 'w' THEN 'weeks' ELSE 'months' END)::interval;
END
$$;

-- The first bucket boundary of `width` at or after `moment`, in `zone`.
CREATE FUNCTION smartcity_bucket_ceil(width interval, moment timestamptz, zone text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN b = moment THEN b ELSE ((b AT TIME ZONE zone) + width) AT TIME ZONE zone END
    FROM (SELECT time_bucket(width, moment, zone) AS b) x
$$;

CREATE FUNCTION smartcity_aggregate(
    metric     text,
    bucket     text,
    agg        text,
    start_time timestamptz,
    end_time   timestamptz,
    device_ids text[] DEFAULT NULL,
    site_ids   text[] DEFAULT NULL,
    group_by   text DEFAULT 'device',
    tz         text DEFAULT NULL)
RETURNS TABLE (key text, "time" timestamptz, value double precision, count bigint)
-- No JIT: a raw read of many pending hours is costed high enough to trigger it, and compiling
-- took ~170 ms where the query itself needed ~100 ms.
LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    metric_key   smallint;
    cumulative   boolean;
    width        interval;
    unit         text;
    zone         text;
    day_zone     text;
    whole_hours  boolean;
    level        integer;  -- the coarsest rollup that nests: 0 raw, 1 minutes, 2 hours, 3 days
    devs         integer[];
    names        text[];
    groups       text[];
    missing      text[];
    m0 timestamptz; m1 timestamptz; h0 timestamptz; h1 timestamptz; d0 timestamptz; d1 timestamptz;
    pend_lo      timestamptz;
    pend_hi      timestamptz;
    lookback     timestamptz;
    old_pending  boolean := false;
    pending_cte  text := '';
    not_pending  text := '';
    branches     text[] := '{}';
    parts        text;
    bucket_expr  text;
    grain        interval;  -- pending hours' raw readings are summed up per grain first
    value_expr   text;
    row_cols     constant text :=
        'r.device, r.first_time, r.count, r.sum, r.min, r.max, r.first, r.last, r.last_time, r.increase';
    raw_cols     constant text :=
        'r.device, r.time AS first_time, 1 AS count, r.value AS sum, r.value AS min, r.value AS max,'
        ' r.value AS first, r.value AS last, r.time AS last_time, 0::float8 AS increase';
BEGIN
    IF start_time IS NULL OR end_time IS NULL OR start_time >= end_time THEN
        RAISE EXCEPTION 'start (%) must be before end (%)', start_time, end_time
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT isfinite(start_time) OR NOT isfinite(end_time) THEN
        RAISE EXCEPTION 'start (%) and end (%) must be finite times', start_time, end_time
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'ask for a range of at most what is stored, e.g. from the first reading''s time';
    END IF;
    IF agg IS NULL OR agg NOT IN ('avg', 'min', 'max', 'sum', 'count', 'first', 'last', 'increase') THEN
        RAISE EXCEPTION 'unknown agg %', coalesce(quote_literal(agg), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'agg is one of avg, min, max, sum, count, first, last, increase';
    END IF;
    IF group_by IS NULL OR group_by NOT IN ('device', 'site', 'none') THEN
        RAISE EXCEPTION 'unknown group_by %', coalesce(quote_literal(group_by), 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'group_by is one of device, site, none';
    END IF;
    SELECT m.metric_id, m.cumulative INTO metric_key, cumulative FROM metrics m WHERE m.name = metric;
    IF metric_key IS NULL THEN
        RAISE EXCEPTION 'unknown metric %', coalesce(quote_literal(metric), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'known metrics: ' || (SELECT string_agg(m.name, ', ' ORDER BY m.name) FROM metrics m);
    END IF;
    IF agg = 'increase' AND NOT cumulative THEN
        RAISE EXCEPTION 'increase needs a cumulative metric; % is not one', metric
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'cumulative metrics: ' || (SELECT string_agg(m.name, ', ' ORDER BY m.name)
                                                    FROM metrics m WHERE m.cumulative);
    END IF;
    width := smartcity_bucket_width(bucket);
    unit := substring(bucket FROM '[a-z]+$');
    SELECT s.timezone INTO day_zone FROM rollup_settings s;
    zone := coalesce(tz, day_zone);
    -- An unknown zone raises 22023 (time zone "…" not recognized) here. Whole hours over the whole
    -- range, not only at its ends: Australia/Lord_Howe is UTC+11 in summer and UTC+10:30 in winter.
    -- A daily sample finds any offset kept for a day or more, which covers every zone there is.
    whole_hours := extract(epoch FROM (start_time AT TIME ZONE zone) - (start_time AT TIME ZONE 'UTC'))::bigint % 3600 = 0
               AND extract(epoch FROM (end_time AT TIME ZONE zone) - (end_time AT TIME ZONE 'UTC'))::bigint % 3600 = 0
               AND (unit NOT IN ('h', 'd', 'w', 'mo') OR NOT EXISTS (
                   SELECT 1 FROM generate_series(start_time, end_time, INTERVAL '1 day') AS g(at)
                   WHERE extract(epoch FROM (g.at AT TIME ZONE zone) - (g.at AT TIME ZONE 'UTC'))::bigint % 3600 <> 0));

    IF device_ids IS NOT NULL THEN
        SELECT array_agg(x.id ORDER BY x.id) INTO missing
        FROM unnest(device_ids) AS x(id) WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.device_id = x.id);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'unknown device %', array_to_string(missing, ', ')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF site_ids IS NOT NULL THEN
        SELECT array_agg(x.id ORDER BY x.id) INTO missing
        FROM unnest(site_ids) AS x(id) WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.site_id = x.id);
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'unknown site %', array_to_string(missing, ', ')
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    SELECT array_agg(d.id ORDER BY d.device_id), array_agg(d.device_id ORDER BY d.device_id),
           array_agg(CASE group_by WHEN 'device' THEN d.device_id WHEN 'site' THEN d.site_id ELSE 'all' END
                     ORDER BY d.device_id)
      INTO devs, names, groups
    FROM devices d
    WHERE (device_ids IS NULL OR d.device_id = ANY (device_ids))
      AND (site_ids IS NULL OR d.site_id = ANY (site_ids))
      AND (device_ids IS NOT NULL OR EXISTS (SELECT 1 FROM device_kind_metrics k
                                              WHERE k.kind = d.kind AND k.metric_id = metric_key));
    IF devs IS NULL THEN
        RETURN;
    END IF;

    level := CASE
        WHEN unit IN ('d', 'w', 'mo') AND zone = day_zone THEN 3
        WHEN unit IN ('d', 'w', 'mo', 'h') AND whole_hours THEN 2
        WHEN unit = 's' AND extract(epoch FROM width)::bigint % 60 <> 0 THEN 0
        ELSE 1 END;
    -- Nested regions m0 <= h0 <= d0 <= d1 <= h1 <= m1: days inside, hours and minutes at the edges,
    -- raw readings outside [m0, m1). An empty level collapses onto the one inside it.
    IF level >= 1 THEN
        m0 := smartcity_bucket_ceil(INTERVAL '1 minute', start_time, 'UTC');
        m1 := time_bucket(INTERVAL '1 minute', end_time);
    END IF;
    IF level < 1 OR m0 >= m1 THEN m0 := end_time; m1 := end_time; END IF;
    IF level >= 2 THEN
        h0 := smartcity_bucket_ceil(INTERVAL '1 hour', m0, 'UTC');
        h1 := time_bucket(INTERVAL '1 hour', m1);
    END IF;
    IF level < 2 OR h0 >= h1 THEN h0 := m1; h1 := m1; END IF;
    IF level >= 3 THEN
        d0 := smartcity_bucket_ceil(INTERVAL '1 day', h0, day_zone);
        d1 := time_bucket(INTERVAL '1 day', h1, day_zone);
    END IF;
    IF level < 3 OR d0 >= d1 THEN d0 := h1; d1 := h1; END IF;

    -- Pending hours are read raw; their bounds as constants keep the raw scan to their chunks.
    SELECT min(p.hour), max(p.hour) + INTERVAL '1 hour' INTO pend_lo, pend_hi
    FROM rollup_pending p
    WHERE p.device = ANY (devs) AND p.hour >= time_bucket(INTERVAL '1 hour', m0) AND p.hour < m1;
    IF pend_lo IS NOT NULL THEN
        -- pend_runs: each device's consecutive pending hours as one span (a backfill leaves long
        -- runs), so the raw read probes the readings once per span rather than once per hour.
        pending_cte := $q$pend AS MATERIALIZED (
              SELECT DISTINCT p.device, p.hour FROM rollup_pending p
              WHERE p.device = ANY ($2) AND p.hour >= time_bucket(INTERVAL '1 hour', $5) AND p.hour < $6),
            pend_runs AS (
              SELECT x.device, min(x.hour) AS lo, max(x.hour) + INTERVAL '1 hour' AS hi
              FROM (SELECT p.device, p.hour,
                           p.hour - INTERVAL '1 hour' * row_number() OVER (PARTITION BY p.device ORDER BY p.hour) AS run
                    FROM pend p) x
              GROUP BY x.device, x.run),
            $q$;
        not_pending := ' AND NOT EXISTS (SELECT 1 FROM pend p WHERE p.device = r.device AND p.hour = %s)';
    END IF;

    -- Only the regions that are not empty: every branch costs planning time.
    IF start_time < m0 THEN
        branches := branches || format($q$
        SELECT %s FROM readings r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.time >= $3 AND r.time < $5$q$, raw_cols);
    END IF;
    IF m1 < end_time THEN
        branches := branches || format($q$
        SELECT %s FROM readings r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.time >= $6 AND r.time < $4$q$, raw_cols);
    END IF;
    IF pend_lo IS NOT NULL THEN
        -- Summed up per hour, or per minute when buckets are minutes: either nests in a bucket.
        grain := CASE WHEN level >= 2 THEN INTERVAL '1 hour' ELSE INTERVAL '1 minute' END;
        branches := branches || format($q$
        SELECT r.device, min(r.time) AS first_time, count(*)::integer AS count, sum(r.value) AS sum,
               min(r.value) AS min, max(r.value) AS max, first(r.value, r.time) AS first,
               last(r.value, r.time) AS last, max(r.time) AS last_time, %s AS increase
        FROM (SELECT r.device, r.time, r.value, %s AS rise
              FROM pend_runs p
              -- ORDER BY: a ChunkAppend, which opens only the chunks of each span.
              CROSS JOIN LATERAL (
                  SELECT r.device, r.time, r.value FROM readings r
                  WHERE r.device = p.device AND r.metric = $1 AND r.time >= p.lo AND r.time < p.hi
                    AND r.time >= greatest($5, $16) AND r.time < least($6, $17)
                  ORDER BY r.time) r) r
        GROUP BY r.device, time_bucket(%L, r.time)$q$,
            CASE WHEN agg = 'increase' THEN 'sum(r.rise)' ELSE '0::float8' END,
            CASE WHEN agg = 'increase'
                 THEN format('smartcity_counter_rise(lag(r.value) OVER (PARTITION BY r.device, '
                             'time_bucket(%L, r.time) ORDER BY r.time), r.value)', grain)
                 ELSE 'NULL::float8' END,
            grain);
    END IF;
    IF m0 < h0 THEN
        branches := branches || format($q$
        SELECT %s FROM rollup_1m r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $5 AND r.bucket < $7 %s$q$,
            row_cols, format(not_pending, 'time_bucket(INTERVAL ''1 hour'', r.bucket)'));
    END IF;
    IF h1 < m1 THEN
        branches := branches || format($q$
        SELECT %s FROM rollup_1m r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $8 AND r.bucket < $6 %s$q$,
            row_cols, format(not_pending, 'time_bucket(INTERVAL ''1 hour'', r.bucket)'));
    END IF;
    IF h0 < d0 THEN
        branches := branches || format($q$
        SELECT %s FROM rollup_1h r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $7 AND r.bucket < $9 %s$q$,
            row_cols, format(not_pending, 'r.bucket'));
    END IF;
    IF d1 < h1 THEN
        branches := branches || format($q$
        SELECT %s FROM rollup_1h r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $10 AND r.bucket < $8 %s$q$,
            row_cols, format(not_pending, 'r.bucket'));
    END IF;
    IF d0 < d1 AND pend_lo IS NULL THEN
        branches := branches || format($q$
        SELECT %s FROM rollup_1d r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $9 AND r.bucket < $10$q$, row_cols);
    ELSIF d0 < d1 THEN
        -- A day holding a pending hour: its other hours from the hourly rollup instead.
        branches := branches || format($q$
        SELECT %1$s FROM rollup_1d r
        WHERE r.metric = $1 AND r.device = ANY ($2) AND r.bucket >= $9 AND r.bucket < $10
          AND NOT EXISTS (SELECT 1 FROM pend p WHERE p.device = r.device AND p.hour >= r.bucket
                          AND p.hour < ((r.bucket AT TIME ZONE $13) + INTERVAL '1 day') AT TIME ZONE $13)$q$,
            row_cols);
        branches := branches || format($q$
        SELECT %1$s FROM (SELECT DISTINCT p.device, time_bucket(INTERVAL '1 day', p.hour, $13) AS day
                          FROM pend p WHERE p.hour >= $9 AND p.hour < $10) dd
        JOIN rollup_1h r ON r.device = dd.device AND r.metric = $1 AND r.bucket >= dd.day
                        AND r.bucket < ((dd.day AT TIME ZONE $13) + INTERVAL '1 day') AT TIME ZONE $13
        WHERE r.bucket >= $9 AND r.bucket < $10 %2$s$q$, row_cols, format(not_pending, 'r.bucket'));
    END IF;
    parts := array_to_string(branches, E'\n        UNION ALL');

    -- Buckets that divide an hour fall the same in UTC as in any zone a whole number of hours
    -- away, and bucketing without a zone is cheaper per row.
    bucket_expr := CASE WHEN whole_hours AND unit IN ('s', 'm', 'h') AND width <= INTERVAL '1 hour'
                             AND 3600 % extract(epoch FROM width)::bigint = 0
                        THEN 'time_bucket($14, t.first_time)'
                        ELSE 'time_bucket($14, t.first_time, $18)' END;

    IF agg = 'increase' THEN
        -- Each device's last reading before the range, for the rise into its first bucket: raw
        -- readings of the day before, else the hourly rollups before that (and any hour there still
        -- pending, read raw).
        lookback := time_bucket(INTERVAL '1 hour', start_time) - INTERVAL '1 day';
        old_pending := EXISTS (SELECT 1 FROM rollup_pending p WHERE p.device = ANY (devs) AND p.hour < lookback);
        parts := format($q$
        SELECT p.*, false AS before FROM (%1$s) p
        UNION ALL
        (SELECT DISTINCT ON (x.device) x.device, x.t, 0, NULL, NULL, NULL, x.v, x.v, x.t, NULL, true
        FROM (
            SELECT r.device, r.time AS t, r.value AS v
            FROM unnest($2) AS dev(id)
            CROSS JOIN LATERAL (SELECT r.device, r.time, r.value FROM readings r
                                WHERE r.device = dev.id AND r.metric = $1 AND r.time >= $15 AND r.time < $3
                                ORDER BY r.time DESC LIMIT 1) r
            UNION ALL
            SELECT h.device, h.last_time, h.last
            FROM unnest($2) AS dev(id)
            CROSS JOIN LATERAL (SELECT h.device, h.last_time, h.last FROM rollup_1h h
                                WHERE h.device = dev.id AND h.metric = $1 AND h.bucket < $15
                                ORDER BY h.bucket DESC LIMIT 1) h
            %2$s
        ) x
        ORDER BY x.device, x.t DESC)
        $q$, parts, CASE WHEN old_pending THEN $q$
            UNION ALL
            SELECT r.device, r.time, r.value
            FROM (SELECT DISTINCT p.device, p.hour FROM rollup_pending p
                  WHERE p.device = ANY ($2) AND p.hour < $15) p
            CROSS JOIN LATERAL (SELECT r.device, r.time, r.value FROM readings r
                                WHERE r.device = p.device AND r.metric = $1 AND r.time >= p.hour
                                  AND r.time < p.hour + INTERVAL '1 hour' AND r.time < $15
                                ORDER BY r.time DESC LIMIT 1) r
            $q$ ELSE '' END);
        value_expr := 'sum(t.increase + smartcity_counter_rise(t.prev_last, t.first)) FILTER (WHERE NOT t.before)';
    ELSE
        value_expr := CASE agg
            WHEN 'avg' THEN 'sum(t.sum) / sum(t.count)'
            WHEN 'sum' THEN 'sum(t.sum)'
            WHEN 'min' THEN 'min(t.min)'
            WHEN 'max' THEN 'max(t.max)'
            WHEN 'count' THEN 'sum(t.count)::float8'
            WHEN 'first' THEN '(array_agg(t.first ORDER BY t.first_time, t.name))[1]'
            WHEN 'last' THEN '(array_agg(t.last ORDER BY t.last_time DESC, t.name DESC))[1]' END;
        parts := format('SELECT p.*, false AS before FROM (%s) p', parts);
    END IF;

    RETURN QUERY EXECUTE format($q$
        WITH %1$s parts AS (%2$s),
        tagged AS (
            SELECT dk.name, dk.grp, p.*, %4$s AS prev_last
            FROM parts p JOIN unnest($2, $11, $12) AS dk(id, name, grp) ON dk.id = p.device
        )
        SELECT t.grp, %5$s AS b, %3$s, sum(t.count)
        FROM tagged t
        GROUP BY t.grp, b
        HAVING sum(t.count) > 0
        ORDER BY t.grp, b
        $q$, pending_cte, parts, value_expr,
        CASE WHEN agg = 'increase' THEN 'lag(p.last) OVER (PARTITION BY p.device ORDER BY p.first_time)'
             ELSE 'NULL::float8' END,
        bucket_expr)
    USING metric_key, devs, start_time, end_time, m0, m1, h0, h1, d0, d1, names, groups,
          day_zone, width, lookback, pend_lo, pend_hi, zone;
END
$$;
