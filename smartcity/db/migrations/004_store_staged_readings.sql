-- Move ingest's staged readings into `readings` at the cost of a plain INSERT, without an ERROR in the
-- server log when a batch holds a redelivered reading.
--
-- A plain INSERT costs the server about a third less than INSERT … ON CONFLICT DO NOTHING (no
-- speculative insertion per row), and duplicates only come with redeliveries and device resends.
-- Tried first, a duplicate raises unique_violation; caught here, in PL/pgSQL, the error is never
-- reported to the log (caught by the client it would write an ERROR and a STATEMENT line each time),
-- and the batch goes in again skipping duplicates. The caller's session holds `readings_staging`
-- (a temporary table, found through pg_temp first on the search path).
CREATE FUNCTION store_staged_readings() RETURNS bigint
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
    RETURN stored;
END
$$;
