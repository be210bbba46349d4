-- smartcity_grafana: the read-only role Grafana's data source logs in through (README "Grafana").
-- It may read what panels and alert rules show and call the planner, and nothing else: no write
-- anywhere, and no right at all on api_keys (key hashes, scopes) or schema_migrations.
--
-- NOLOGIN: a deployment logs in as a role of its own that is a member of this one, with a password
-- it chooses (compose: docker/grafana-db-login.sh), so no password ever sits in a migration.
-- Roles belong to the cluster, not the database: an existing smartcity_grafana (made by a DBA on a
-- server where the migrating role may not CREATE ROLE) is kept and only granted to.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'smartcity_grafana') THEN
        CREATE ROLE smartcity_grafana NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO smartcity_grafana;

-- The catalogue and registry (variables, labels, units), the raw and latest readings, the rollups,
-- and the quarantine (platform health: rejected messages by reason).
GRANT SELECT ON sites, metrics, device_kinds, device_kind_metrics, devices,
                readings, latest_readings, quarantine,
                rollup_1m, rollup_1h, rollup_1d
    TO smartcity_grafana;

-- smartcity_aggregate() and smartcity_rollup_lag() are SECURITY INVOKER: they run with the
-- caller's rights, so the caller must be able to read what they read. The planner reads the
-- rollup zone and the marks of hours still pending a refresh (it answers those from raw readings,
-- which keeps it exact whatever the lag). SECURITY DEFINER would have spared these two grants but
-- would run a dashboard's question with the owner's rights.
GRANT SELECT ON rollup_settings, rollup_pending TO smartcity_grafana;

-- PostgreSQL lets PUBLIC execute functions by default; these grants name what the role relies on,
-- so a later migration that revokes PUBLIC's EXECUTE (least-privilege roles) keeps Grafana working.
-- Functions that write (store_staged_readings, smartcity_refresh_rollups, smartcity_set_rollup_
-- timezone) fail for this role anyway: they run with its rights, which write nothing.
GRANT EXECUTE ON FUNCTION
    smartcity_aggregate(text, text, text, timestamptz, timestamptz, text[], text[], text, text),
    smartcity_bucket_width(text),
    smartcity_bucket_ceil(interval, timestamptz, text),
    smartcity_rollup_lag()
    TO smartcity_grafana;

-- The ISPU map (migration 010): its functions, and the tables seeded from smartcity/airquality.py
-- that they read with the caller's rights.
GRANT SELECT ON ispu_categories, ispu_pollutants, ispu_breakpoints, ispu_settings TO smartcity_grafana;
GRANT EXECUTE ON FUNCTION
    smartcity_site_ispu(timestamptz),
    smartcity_ispu_sub_index(text, double precision),
    smartcity_ispu_round_up(double precision)
    TO smartcity_grafana;

-- Stated, not only implied: whatever default privileges a server has, this role has no right on
-- the API keys or the migration record.
REVOKE ALL ON api_keys, schema_migrations FROM smartcity_grafana;
