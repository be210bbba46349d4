#!/bin/sh
# Create or update Grafana's database login: a LOGIN role that is a member of smartcity_grafana, the
# read-only role migration 011 makes, with the password compose passes in. Run by compose's
# one-shot `grafana-db-login` service after the migrations, on every start, so a changed password
# takes effect. Connection: libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
# Login name: GRAFANA_DB_USER (default grafana); password: GRAFANA_DB_PASSWORD (required).
set -eu
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD (compose: PASER_GRAFANA_DB_PASSWORD)}"
GRAFANA_DB_USER="${GRAFANA_DB_USER:-grafana}"

# psql quotes the name (:"login") and the password (:'password') itself; the password never
# appears on a command line.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet -v login="$GRAFANA_DB_USER" -v password="$GRAFANA_DB_PASSWORD" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'login')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \gexec
-- Whatever the role was before, it becomes a plain login that can only do what smartcity_grafana can.
ALTER ROLE :"login" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
    PASSWORD :'password';
GRANT smartcity_grafana TO :"login";
-- A second guard besides the grants: every transaction of this login is read-only, and a panel's
-- query cannot hold a backend for ever.
ALTER ROLE :"login" SET default_transaction_read_only = on;
ALTER ROLE :"login" SET statement_timeout = '30s';
SQL
echo "grafana-db-login: role $GRAFANA_DB_USER is a member of smartcity_grafana"
