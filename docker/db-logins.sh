#!/bin/sh
# Create or update the platform's database logins, each a LOGIN role that is a member of one group
# role the migrations make (README "Database roles"):
#   INGEST_DB_USER  (default smartcity_ingest_login) in smartcity_ingest  (migration 012), the ingest workers
#   API_DB_USER     (default smartcity_api_login)    in smartcity_api     (migration 012), the API
#   ALERTS_DB_USER  (default smartcity_alerts_login) in smartcity_alerts  (migration 014), the alert evaluator
#   GRAFANA_DB_USER (default grafana)                in smartcity_grafana (migration 011), read-only
# with the passwords INGEST_DB_PASSWORD, API_DB_PASSWORD, ALERTS_DB_PASSWORD and GRAFANA_DB_PASSWORD
# (all required).
# Run by compose's one-shot `db-logins` service after the migrations, on every start, so a changed
# password takes effect. Connection (as the owner): libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
set -eu
: "${INGEST_DB_PASSWORD:?set INGEST_DB_PASSWORD (compose: PASER_INGEST_DB_PASSWORD)}"
: "${API_DB_PASSWORD:?set API_DB_PASSWORD (compose: PASER_API_DB_PASSWORD)}"
: "${ALERTS_DB_PASSWORD:?set ALERTS_DB_PASSWORD (compose: PASER_ALERTS_DB_PASSWORD)}"
: "${GRAFANA_DB_PASSWORD:?set GRAFANA_DB_PASSWORD (compose: PASER_GRAFANA_DB_PASSWORD)}"

# login, the environment variable holding its password, group role, read-only (true/false)
make_login() {
    # psql quotes the names (:"login") and the password (:'password') itself, and reads the
    # password from the environment (\getenv): it is on no command line.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --single-transaction \
        -v login="$1" -v password_from="$2" -v group="$3" -v read_only="$4" <<'SQL'
\getenv password :password_from
SELECT format('CREATE ROLE %I LOGIN', :'login')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \gexec
-- Whatever the role was before, it becomes a plain login that can only do what its group can.
ALTER ROLE :"login" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
    PASSWORD :'password';
GRANT :"group" TO :"login";
\if :read_only
-- Grafana's: a second guard besides the grants, every transaction of this login is read-only,
-- and a panel's query cannot hold a backend for ever.
ALTER ROLE :"login" SET default_transaction_read_only = on;
ALTER ROLE :"login" SET statement_timeout = '30s';
\endif
SQL
    echo "db-logins: role $1 is a member of $3"
}

make_login "${INGEST_DB_USER:-smartcity_ingest_login}" INGEST_DB_PASSWORD smartcity_ingest false
make_login "${API_DB_USER:-smartcity_api_login}" API_DB_PASSWORD smartcity_api false
make_login "${ALERTS_DB_USER:-smartcity_alerts_login}" ALERTS_DB_PASSWORD smartcity_alerts false
make_login "${GRAFANA_DB_USER:-grafana}" GRAFANA_DB_PASSWORD smartcity_grafana true
