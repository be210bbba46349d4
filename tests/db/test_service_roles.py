"""The group roles of migration 012 against the real database: each has exactly the rights its service
needs (table by table, column by column, chunks included), and every write outside them is refused
with SQLSTATE 42501 and changes nothing. A migration onto a server where the roles exist already,
run by a role that may not create roles, keeps them and grants to them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from smartcity.db import apply_migrations, seed_catalog
from smartcity.db.roles import login_url
from smartcity.services import EmbeddedPostgres
from tests.roles import all_tables, as_role, row_counts

INGEST, API, ALERTS = "smartcity_ingest", "smartcity_api", "smartcity_alerts"
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
READ_ONLY = {"SELECT"}
# Table-level rights; column-level ones below. Anything not named: no right at all.
EXPECTED_TABLES = {
    INGEST: {"readings": {"INSERT"}, "rollup_pending": {"INSERT"}, "quarantine": {"INSERT"},
             "latest_readings": {"SELECT", "INSERT", "UPDATE"}},
    API: {table: READ_ONLY for table in (
        "sites", "metrics", "device_kinds", "device_kind_metrics", "readings", "latest_readings",
        "quarantine", "rollup_1m", "rollup_1h", "rollup_1d", "rollup_settings", "rollup_pending",
        "ispu_categories", "ispu_pollutants", "ispu_breakpoints", "ispu_settings",
        "alerts", "alert_transitions")} | {"commands": {"SELECT", "INSERT"}},
    ALERTS: {
        **{table: READ_ONLY for table in (
            "sites", "metrics", "device_kinds", "device_kind_metrics", "readings", "latest_readings",
            "rollup_1m", "rollup_1h", "rollup_1d", "rollup_settings", "rollup_pending",
            "ispu_categories", "ispu_pollutants", "ispu_breakpoints", "ispu_settings")},
        "alerts": {"SELECT", "INSERT", "UPDATE"},
        "alert_transitions": {"SELECT", "INSERT", "UPDATE"},
        "alert_webhook_deliveries": {"SELECT", "INSERT", "UPDATE"},
        "alert_subject_state": {"SELECT", "INSERT", "UPDATE", "DELETE"},
        "alert_rule_progress": {"SELECT", "INSERT", "UPDATE", "DELETE"},
    },
}
DEVICE_COLUMNS = {"id", "device_id", "kind", "site_id", "latitude", "longitude", "mqtt_username",
                  "mqtt_password_hash", "status", "status_changed_at", "last_seen", "created_at",
                  "revoked_at"}
ALERT_COLUMNS = {"id", "rule_id", "subject", "site_id", "device_id", "severity", "state", "fired_at",
                 "resolved_at", "value", "last_value", "summary", "acked_at", "acked_by", "ack_note"}
COMMAND_COLUMNS = {"id", "command_id", "device_id", "action", "level", "schedule", "issued_at",
                   "issued_by", "deadline", "outcome", "outcome_at", "detail", "published_at"}
EXPECTED_COLUMNS = {
    INGEST: {("devices", "SELECT"): {"id", "device_id", "kind", "last_seen", "status", "status_changed_at"},
             ("devices", "UPDATE"): {"last_seen", "status", "status_changed_at"}},
    API: {("devices", "SELECT"): DEVICE_COLUMNS - {"mqtt_password_hash"},
          ("devices", "INSERT"): {"device_id", "kind", "site_id", "latitude", "longitude", "mqtt_username",
                                  "mqtt_password_hash"},
          ("api_keys", "SELECT"): {"key_id", "scope", "digest", "revoked_at"},
          ("api_keys", "UPDATE"): {"last_used_at"},
          ("alerts", "SELECT"): ALERT_COLUMNS,
          ("alerts", "UPDATE"): {"acked_at", "acked_by", "ack_note"},
          # Commands (migration 015): stored and read whole; only the outcome and delivery change.
          ("commands", "SELECT"): COMMAND_COLUMNS, ("commands", "INSERT"): COMMAND_COLUMNS,
          ("commands", "UPDATE"): {"outcome", "outcome_at", "detail", "published_at"}},
    ALERTS: {("devices", "SELECT"): {"id", "device_id", "kind", "site_id", "status", "status_changed_at",
                                     "last_seen", "created_at", "revoked_at"},
             **{("alerts", privilege): ALERT_COLUMNS for privilege in ("SELECT", "INSERT", "UPDATE")}},
}


def _hypertable_of(db: psycopg.Connection) -> dict[str, str]:
    """Each chunk's quoted name → its hypertable's name."""
    return dict(db.execute("SELECT format('%I.%I', chunk_schema, chunk_name), hypertable_name"
                           " FROM timescaledb_information.chunks").fetchall())


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("role", [INGEST, API, ALERTS])
def test_each_role_has_exactly_its_table_and_column_rights(db: psycopg.Connection, role: str) -> None:
    chunks = _hypertable_of(db)
    assert {"readings", "rollup_1m", "rollup_1h"} <= set(chunks.values())  # chunks exist to check
    # Every chunk here was made after the grants (the fixture wrote its readings): a chunk gets
    # its hypertable's rights, and no more.
    for table in all_tables(db):
        rights = {p for (p,) in db.execute(
            "SELECT p FROM unnest(%s::text[]) AS p WHERE has_table_privilege(%s, %s, p)",
            (list(TABLE_PRIVILEGES), role, table))}
        expected = EXPECTED_TABLES[role].get(chunks.get(table, table), set())
        assert rights == expected, table
    columns: dict[tuple[str, str], set[str]] = {}
    for table in ("devices", "api_keys", "schema_migrations", "alerts", "commands"):
        for privilege in ("SELECT", "INSERT", "UPDATE", "REFERENCES"):
            granted = {c for (c,) in db.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND has_column_privilege(%s, attrelid, attnum, %s)",
                (table, role, privilege))}
            if granted:
                columns[(table, privilege)] = granted
    assert columns == EXPECTED_COLUMNS[role]
    can_login, superuser, create_role, create_db = db.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = %s",
        (role,)).fetchone()
    assert (can_login, superuser, create_role, create_db) == (False, False, False, False)


@pytest.fixture
def counted(db: psycopg.Connection, seeded: str) -> Iterator[list[str]]:
    """Every table and chunk, checked after the test to hold what it held before."""
    tables = all_tables(db)
    before = row_counts(db, tables)
    assert before["readings"] > 0 and before["rollup_1h"] > 0 and before["quarantine"] == 1
    assert before["api_keys"] == 1 and before["rollup_pending"] > 0
    yield tables
    assert row_counts(db, all_tables(db)) == before
    assert db.execute("SELECT to_regclass('public.role_was_here')").fetchone() == (None,)
    assert db.execute("SELECT count(*) FROM pg_proc WHERE proname = 'role_was_here'").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'role_made_this'").fetchone() == (0,)


def _refused(db: psycopg.Connection, role: str, statement: str) -> None:
    with as_role(db, role), pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        db.execute(statement)
    assert caught.value.sqlstate == "42501", statement


COMMON_REFUSALS = [
    "DELETE FROM readings",
    "UPDATE readings SET value = -1",
    "TRUNCATE readings",
    "DELETE FROM quarantine",
    "UPDATE quarantine SET detail = 'x'",
    "DELETE FROM rollup_1h",
    "INSERT INTO rollup_1m SELECT * FROM rollup_1m LIMIT 0",
    "DELETE FROM rollup_pending",
    "DELETE FROM devices",
    "UPDATE devices SET mqtt_password_hash = 'x'",
    "SELECT mqtt_password_hash FROM devices",
    "SELECT * FROM devices",
    "INSERT INTO api_keys (key_id, scope, digest) VALUES ('aaaaaaaaaaaa', 'admin', sha256('x'))",
    "UPDATE api_keys SET scope = 'admin'",
    "DELETE FROM api_keys",
    "SELECT * FROM schema_migrations",
    "DELETE FROM schema_migrations",
    "INSERT INTO sites VALUES ('x-site', 'X', 0, 0, 'UTC')",
    "UPDATE metrics SET max_value = 1e9",
    "UPDATE rollup_settings SET timezone = 'UTC'",
    "CREATE TABLE public.role_was_here (x int)",
    "CREATE FUNCTION public.role_was_here() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE ROLE role_made_this",
    "SELECT * FROM smartcity_refresh_rollups(100)",
    "SELECT smartcity_set_rollup_timezone('UTC')",
    "SELECT smartcity_mark_rollups_stale('-infinity', 'infinity')",
    "SELECT drop_chunks('readings', older_than => now())",
]
INGEST_REFUSALS = [
    "SELECT count(*) FROM readings",
    "SELECT * FROM api_keys",
    "SELECT key_id FROM api_keys",
    "UPDATE api_keys SET last_used_at = now()",
    "SELECT * FROM rollup_1h",
    "DELETE FROM latest_readings",
    "UPDATE devices SET site_id = 'kuaro'",
    "INSERT INTO devices (device_id, kind, site_id, mqtt_username, mqtt_password_hash)"
    " VALUES ('aq-fake-01', 'air_quality_station', 'kuaro', 'aq-fake-01', 'x')",
]
API_REFUSALS = [
    "INSERT INTO readings VALUES (now(), 1, 1, 1)",
    "INSERT INTO quarantine (topic, reason, reasons, detail, parts, payload, payload_size)"
    " VALUES ('t', 'invalid_json', ARRAY['invalid_json'], 'd', '{}', 'x', 1)",
    "INSERT INTO rollup_pending (device, hour, first_time, last_time) VALUES (1, now(), now(), now())",
    "UPDATE latest_readings SET value = -1",
    "INSERT INTO latest_readings SELECT * FROM latest_readings LIMIT 0",
    "UPDATE devices SET status = 'offline'",
    "SELECT * FROM api_keys",
    "SELECT name FROM api_keys",
    "SELECT store_staged_readings()",
    "UPDATE commands SET device_id = 'light-elsewhere-01'",
    "UPDATE commands SET action = 'off', level = NULL",
    "UPDATE commands SET issued_at = now(), deadline = now() + interval '1 hour'",
    "DELETE FROM commands",
    "TRUNCATE commands",
]


@pytest.mark.parametrize("statement", COMMON_REFUSALS + INGEST_REFUSALS)
def test_the_ingest_role_is_refused(db: psycopg.Connection, counted: list[str], statement: str) -> None:
    _refused(db, INGEST, statement)


@pytest.mark.parametrize("statement", COMMON_REFUSALS + API_REFUSALS)
def test_the_api_role_is_refused(db: psycopg.Connection, counted: list[str], statement: str) -> None:
    _refused(db, API, statement)


@pytest.mark.parametrize("role", [INGEST, API])
def test_no_role_writes_a_chunk_behind_its_hypertable(db: psycopg.Connection, counted: list[str],
                                                      role: str) -> None:
    # A chunk is a table of its own in _timescaledb_internal: rights on it come from the hypertable.
    for chunk in _hypertable_of(db):
        _refused(db, role, f"DELETE FROM {chunk}")
        _refused(db, role, f"TRUNCATE {chunk}")
        _refused(db, role, f"UPDATE {chunk} SET device = device")


def test_a_role_made_beforehand_is_kept_and_a_migrator_without_createrole_grants_to_it(
        postgres: EmbeddedPostgres, db: psycopg.Connection) -> None:
    # The README's recipe for a server where the platform's owner may not CREATE ROLE: the DBA
    # makes the group roles (here they exist cluster-wide already, from the session's migration)
    # and the extension; the owner migrates its own database.
    tag = uuid.uuid4().hex[:8]
    migrator, database = f"migrator_{tag}", f"smartcity_{tag}"
    db.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD {}").format(
        sql.Identifier(migrator), sql.Literal(tag)))
    db.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 7").format(sql.Identifier(INGEST)))
    db.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database),
                                                            sql.Identifier(migrator)))
    admin_url = postgres.url.rsplit("/", 1)[0] + f"/{database}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION timescaledb")
        with psycopg.connect(login_url(admin_url, migrator, tag)) as conn:
            applied = apply_migrations(conn)
            seed_catalog(conn)
        assert {11, 12} <= set(applied)  # the Grafana and the service roles granted to
        with psycopg.connect(admin_url, autocommit=True) as conn:
            owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'readings'").fetchone()
            rights = conn.execute(
                "SELECT has_table_privilege(%s, 'readings', 'INSERT'), has_table_privilege(%s, 'readings',"
                " 'SELECT'), has_table_privilege(%s, 'readings', 'INSERT'),"
                " has_database_privilege(%s, current_database(), 'TEMPORARY')",
                (INGEST, API, API, INGEST)).fetchone()
        assert owner == (migrator,) and rights == (True, True, False, True)
        limit = db.execute("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (INGEST,)).fetchone()
        assert limit == (7,)  # the existing role was granted to, not made again
    finally:
        db.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1").format(sql.Identifier(INGEST)))
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(migrator)))
