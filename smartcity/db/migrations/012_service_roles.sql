-- smartcity_ingest and smartcity_api: the group roles the ingest workers and the API log in through
-- (README "Database roles"), beside smartcity_grafana (migration 011). Each may do what its service
-- does and nothing else; the role that runs `smartcity db migrate` stays the owner of everything and
-- keeps what only an owner may do: the rollup refresher, retention (drop_chunks wants ownership),
-- and the admin commands (apikeys, devices add, quarantine replay).
--
-- NOLOGIN, as in 011: a deployment logs in as a role of its own that is a member (`smartcity up`
-- and compose make them, with passwords they choose), so no password sits in a migration. Roles
-- belong to the cluster: ones a DBA made beforehand (where the migrating role may not CREATE ROLE)
-- are kept and only granted to.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'smartcity_ingest') THEN
        CREATE ROLE smartcity_ingest NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'smartcity_api') THEN
        CREATE ROLE smartcity_api NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO smartcity_ingest, smartcity_api;

-- PostgreSQL 15 and later already keep PUBLIC from creating in schema public; a database that
-- began on an older server may not, and then every login could plant a table or a function that
-- shadows the platform's (CVE-2018-1058). The owner creates; nobody else needs to.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Functions that write run with their caller's rights (SECURITY INVOKER), so a caller without the
-- table rights gets nothing done through them; still, nobody but the roles that use them needs to
-- call them at all. The owner keeps EXECUTE (an owner's right); the rollup refresher is the owner.
REVOKE EXECUTE ON FUNCTION
    store_staged_readings(),
    smartcity_refresh_rollups(integer),
    smartcity_set_rollup_timezone(text),
    smartcity_mark_rollups_stale(timestamptz, timestamptz)
    FROM PUBLIC;


-- ---- smartcity_ingest: the ingest writer (ingest/write.py) -------------------------------------
-- A batch: COPY into a session's temporary staging table (readings_staging: TEMPORARY on the
-- database, which PUBLIC has by default and a hardened server may not), store_staged_readings()
-- (INSERT into readings, marks into rollup_pending), the latest values upserted, devices' last
-- seen and status, and the quarantine. The device directory reads the registry's keys and kinds.
DO $$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO smartcity_ingest', current_database());
END
$$;
GRANT EXECUTE ON FUNCTION store_staged_readings() TO smartcity_ingest;
-- Inserting only: a redelivered reading is skipped by ON CONFLICT DO NOTHING, which reads nothing.
-- No UPDATE, DELETE or TRUNCATE of readings; no SELECT either: ingest never reads them back.
GRANT INSERT ON readings, rollup_pending, quarantine TO smartcity_ingest;
-- The upsert compares the stored time and receive time (ON CONFLICT … DO UPDATE … WHERE).
GRANT SELECT, INSERT, UPDATE ON latest_readings TO smartcity_ingest;
-- Column by column: the ids ingest resolves and the columns it keeps current, never the MQTT
-- password hashes.
GRANT SELECT (id, device_id, kind, last_seen, status, status_changed_at) ON devices TO smartcity_ingest;
GRANT UPDATE (last_seen, status, status_changed_at) ON devices TO smartcity_ingest;


-- ---- smartcity_api: the API reader (api/queries, api/auth.py, POST /api/v1/devices) -------------
-- The catalogue, registry, readings, latest values, the planner's tables (rollups, the pending
-- marks and the rollup zone: smartcity_aggregate is SECURITY INVOKER, see 011), the ISPU tables,
-- and the quarantine listing (GET /api/v1/quarantine, admin keys only).
GRANT SELECT ON sites, metrics, device_kinds, device_kind_metrics,
                readings, latest_readings, quarantine,
                rollup_1m, rollup_1h, rollup_1d, rollup_settings, rollup_pending,
                ispu_categories, ispu_pollutants, ispu_breakpoints, ispu_settings
    TO smartcity_api;
-- Devices: read everything but the MQTT password hashes; register a device (POST /devices: the
-- INSERT … ON CONFLICT (device_id) DO NOTHING RETURNING id of smartcity/devices.py) and nothing
-- more: status and last_seen are ingest's, removal is the owner's.
GRANT SELECT (id, device_id, kind, site_id, latitude, longitude, mqtt_username, status,
              status_changed_at, last_seen, created_at) ON devices TO smartcity_api;
GRANT INSERT (device_id, kind, site_id, latitude, longitude, mqtt_username, mqtt_password_hash)
    ON devices TO smartcity_api;
-- A key check: the key's digest, scope and revocation by its id, and when it was last used.
-- Creating, listing and revoking keys are the owner's (`smartcity apikeys`).
GRANT SELECT (key_id, scope, digest, revoked_at) ON api_keys TO smartcity_api;
GRANT UPDATE (last_used_at) ON api_keys TO smartcity_api;
-- The planner and the indices, named as 011 names them for Grafana (and the counter function the
-- planner calls), so that a later revoke from PUBLIC keeps the API working.
GRANT EXECUTE ON FUNCTION
    smartcity_aggregate(text, text, text, timestamptz, timestamptz, text[], text[], text, text),
    smartcity_bucket_width(text),
    smartcity_bucket_ceil(interval, timestamptz, text),
    smartcity_counter_rise(double precision, double precision),
    smartcity_rollup_lag(),
    smartcity_site_ispu(timestamptz),
    smartcity_ispu_sub_index(text, double precision),
    smartcity_ispu_round_up(double precision)
    TO smartcity_api;

-- Stated, not only implied: whatever default privileges a server has, the ingest role has no
-- right on the API keys, and neither role on the migration record.
REVOKE ALL ON api_keys, schema_migrations FROM smartcity_ingest;
REVOKE ALL ON schema_migrations FROM smartcity_api;
