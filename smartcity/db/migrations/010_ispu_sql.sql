-- The ISPU (Permen LHK P.14/MENLHK/SETJEN/KUM.1/7/2020) in SQL, for Grafana's map and the alert rules,
-- which can only run SQL:
--
--   SELECT * FROM smartcity_ispu_sub_index('pm25', 100.0);   -- → (sub_index, band, beyond_scale)
--   SELECT * FROM smartcity_site_ispu(now());                -- every site's index now
--
-- The tables hold no hand-written copy of the regulation: seed_catalog (smartcity/db/seed.py, run by
-- every `smartcity db migrate`) fills them from smartcity/airquality.py, the module the API's
-- api/indices.py computes with, and from the defaults of the SMARTCITY_INDEX__ settings. The functions
-- repeat api/indices.py's arithmetic in the same order of operations, so a sub-index is the same float.

CREATE TABLE ispu_categories (
    band    smallint PRIMARY KEY CHECK (band >= 0),  -- 0 the lowest
    id      text NOT NULL UNIQUE,
    name    text NOT NULL,
    name_en text NOT NULL,
    color   text NOT NULL,
    i_low   integer NOT NULL,
    i_high  integer NOT NULL CHECK (i_high > i_low)
);

-- The pollutants in the table's order (which breaks ties of the dominant one) and the hours of their
-- mean. Their catalogue unit is the table's µg/m³ (seed_catalog refuses another).
CREATE TABLE ispu_pollutants (
    pollutant       text PRIMARY KEY REFERENCES metrics (name),
    position        smallint NOT NULL UNIQUE,
    particulate     boolean NOT NULL,
    averaging_hours integer NOT NULL CHECK (averaging_hours BETWEEN 1 AND 168)
);

-- One row per pollutant and band: concentrations [x_low, x_high] (µg/m³) map to [i_low, i_high].
CREATE TABLE ispu_breakpoints (
    pollutant text NOT NULL REFERENCES ispu_pollutants ON DELETE CASCADE,
    band      smallint NOT NULL REFERENCES ispu_categories,
    x_low     double precision NOT NULL CHECK (x_low >= 0),
    x_high    double precision NOT NULL CHECK (x_high > x_low),
    i_low     integer NOT NULL,
    i_high    integer NOT NULL CHECK (i_high > i_low),
    PRIMARY KEY (pollutant, band)
);

CREATE TABLE ispu_settings (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Share of a window's hours that must hold readings before its mean is used.
    min_coverage double precision NOT NULL CHECK (min_coverage > 0 AND min_coverage <= 1)
);

-- A pollutant's sub-index at a concentration in µg/m³: linear between the band's edges, the band's
-- upper index exactly on its upper edge, 500 and beyond_scale above the last column. A NULL
-- concentration (no mean) gives NULLs; a negative or non-finite one, or an unknown pollutant, raises
-- 22023, as compute_sub_index raises InvalidConcentration.
CREATE FUNCTION smartcity_ispu_sub_index(pollutant text, concentration double precision,
                                         OUT sub_index double precision, OUT band text,
                                         OUT beyond_scale boolean)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    b ispu_breakpoints%ROWTYPE;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ispu_pollutants p WHERE p.pollutant = smartcity_ispu_sub_index.pollutant) THEN
        RAISE EXCEPTION 'unknown pollutant %', coalesce(quote_literal(pollutant), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = coalesce('known: ' || (SELECT string_agg(p.pollutant, ', ' ORDER BY p.position)
                                                FROM ispu_pollutants p),
                                  'none: the table is seeded by `smartcity db migrate`');
    END IF;
    IF concentration IS NULL THEN
        RETURN;
    END IF;
    IF concentration = 'NaN' OR concentration IN ('Infinity', '-Infinity') THEN
        RAISE EXCEPTION '%: concentration % is not a finite number', pollutant, concentration
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF concentration < 0 THEN
        RAISE EXCEPTION '%: concentration % is negative', pollutant, concentration
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO b FROM ispu_breakpoints x
    WHERE x.pollutant = smartcity_ispu_sub_index.pollutant AND concentration <= x.x_high
    ORDER BY x.band LIMIT 1;
    IF NOT FOUND THEN
        SELECT x.i_high, c.id, true INTO sub_index, band, beyond_scale
        FROM ispu_breakpoints x JOIN ispu_categories c ON c.band = x.band
        WHERE x.pollutant = smartcity_ispu_sub_index.pollutant ORDER BY x.band DESC LIMIT 1;
        RETURN;
    END IF;
    -- compute_sub_index's expression, operation for operation: the same float, not a near miss.
    IF concentration = b.x_high THEN
        sub_index := b.i_high;
    ELSIF concentration - b.x_low >= 1e-300 OR concentration = b.x_low THEN
        sub_index := (b.i_high - b.i_low)::float8 / (b.x_high - b.x_low) * (concentration - b.x_low) + b.i_low;
    ELSE
        -- A denormal step above the band's edge: PostgreSQL raises where a product underflows to
        -- zero, and Python's product is that zero (the edge's index). Only here, so the common
        -- path pays for no subtransaction.
        BEGIN
            sub_index := (b.i_high - b.i_low)::float8 / (b.x_high - b.x_low) * (concentration - b.x_low)
                         + b.i_low;
        EXCEPTION WHEN numeric_value_out_of_range THEN
            sub_index := b.i_low;
        END;
    END IF;
    band := (SELECT c.id FROM ispu_categories c WHERE c.band = b.band);
    beyond_scale := false;
END
$$;

-- A site's ISPU from its highest sub-index, rounded up as compute_site_index does
-- (math.ceil(round(value, 6))): a value less than 5e-7 above a whole number is float noise and
-- reads as that number. value - floor(value) is exact, and 5e-7 as a float lies just below 5e-7, so
-- the comparison falls on the same side as Python's rounding of the exact value.
CREATE FUNCTION smartcity_ispu_round_up(value double precision) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (floor(value) + CASE WHEN value - floor(value) <= 5e-7 THEN 0 ELSE 1 END)::integer
$$;

-- Every site's ISPU at `at`, as GET /api/v1/ispu?site=…&at=… answers with the default settings:
-- each pollutant's mean over [at − averaging_hours, at) from the planner (exact whatever the
-- refresher's lag), used only when min_coverage of the window's hours held readings; the highest
-- sub-index wins, ties to the table's order; no number (NULLs) without a particulate among them.
-- The hours and the coverage are ispu_pollutants' and ispu_settings', seeded from the settings'
-- defaults: an API run with other SMARTCITY_INDEX__ values answers with those instead.
CREATE FUNCTION smartcity_site_ispu("at" timestamptz)
RETURNS TABLE (site_id text, name text, latitude double precision, longitude double precision,
               ispu integer, category text, color text, dominant text)
-- No JIT, as in smartcity_aggregate: over the demo fleet compiling doubled a ~100 ms call.
LANGUAGE plpgsql STABLE SET jit = off AS $$
#variable_conflict use_column
BEGIN
    IF "at" IS NULL OR "at" IN ('infinity', '-infinity') THEN
        RAISE EXCEPTION 'at (%) must be a finite time', coalesce("at"::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'for example now()';
    END IF;
    RETURN QUERY
    -- One planner call per pollutant for every site (not one per site and pollutant), in 1-minute
    -- buckets as the API reads them: the mean is the buckets' count-weighted mean, and each bucket
    -- counts for the hour of its start counted back from `at` (smartcity/db/queries/indices.py).
    WITH windows AS (
        SELECT p.pollutant, a.key AS site,
               sum(a.value * a.count) / nullif(sum(a.count), 0) AS concentration,
               count(DISTINCT least(ceil(extract(epoch FROM smartcity_site_ispu."at" - a.time) / 3600)::int - 1,
                                    p.averaging_hours - 1))::float8 / p.averaging_hours AS coverage
        FROM ispu_pollutants p
        CROSS JOIN LATERAL smartcity_aggregate(
            p.pollutant, '1m', 'avg', smartcity_site_ispu."at" - make_interval(hours => p.averaging_hours),
            smartcity_site_ispu."at", group_by => 'site') a
        GROUP BY p.pollutant, a.key
    ),
    usable AS (
        SELECT w.site, w.pollutant, p.position, p.particulate, s.sub_index, s.band
        FROM windows w
        JOIN ispu_pollutants p ON p.pollutant = w.pollutant
        CROSS JOIN LATERAL smartcity_ispu_sub_index(w.pollutant, w.concentration) s
        WHERE w.coverage >= (SELECT x.min_coverage FROM ispu_settings x)
    ),
    top AS (
        SELECT DISTINCT ON (u.site) u.site, u.pollutant, u.sub_index, u.band
        FROM usable u
        WHERE EXISTS (SELECT 1 FROM usable q WHERE q.site = u.site AND q.particulate)
        ORDER BY u.site, u.sub_index DESC, u.position
    )
    SELECT s.site_id, s.name, s.latitude, s.longitude, smartcity_ispu_round_up(t.sub_index),
           c.name, c.color, t.pollutant
    FROM sites s
    LEFT JOIN top t ON t.site = s.site_id
    LEFT JOIN ispu_categories c ON c.id = t.band
    ORDER BY s.site_id;
END
$$;
