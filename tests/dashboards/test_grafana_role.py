"""smartcity_grafana against the real database: it reads what panels and alert rules need, runs the
planner (SECURITY INVOKER) and the rules' SQL, and writes nothing, creates nothing, reads no API key.
The compose login script (docker/db-logins.sh) runs here too, with psql, against the cluster."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg import sql

from dashboards.alerts import alert_rule_groups
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from smartcity.db.roles import login_url
from smartcity.services import EmbeddedPostgres
from tests.api.readings_seed import register, write_readings
from tests.dashboards.panel_runs import ROLE, as_grafana
from tests.roles import all_tables, drop_login, run_login_script

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FLEET = {
    "aq-grogot-01": ("air_quality_station", "tanah-grogot"),
    "aq-grogot-02": ("air_quality_station", "tanah-grogot"),
    "aq-kuaro-01": ("air_quality_station", "kuaro"),
    "river-grogot-01": ("river_level_sensor", "tanah-grogot"),
    "river-kuaro-01": ("river_level_sensor", "kuaro"),
}
PLANNER = ("SELECT key, time, value, count FROM smartcity_aggregate(%s, %s, %s, %s, %s,"
           " NULL, NULL, 'site') ORDER BY key, time")


def _seed(db: psycopg.Connection, database_url: str) -> dict[str, list[tuple[float, float]]]:
    """A day and a half of PM2.5 and water level, every 10 minutes; return each device's (epoch, value)."""
    keys = register(db, FLEET)
    rng = np.random.default_rng(7)
    series: dict[str, list[tuple[float, float]]] = {}
    start = T0.timestamp()
    for device_id, (kind, site) in FLEET.items():
        metric = "pm25" if kind == "air_quality_station" else "water_level"
        # Haze at Tanah Grogot, clean air at Kuaro; the Grogot gauge above the warning level.
        base = {"pm25": 80.0 if site == "tanah-grogot" else 20.0,
                "water_level": 3.4 if site == "tanah-grogot" else 1.2}[metric]
        values = base + rng.normal(0, 0.05 * base, 216)
        series[device_id] = [(start + 600 * i, float(v)) for i, v in enumerate(values)]
        write_readings(database_url, keys, [(device_id, metric, t, v) for t, v in series[device_id]])
    return series


def test_the_role_is_nologin_and_reads_the_catalogue(db: psycopg.Connection) -> None:
    can_login, superuser = db.execute(
        "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone()
    assert (can_login, superuser) == (False, False)
    with as_grafana(db):
        sites = db.execute("SELECT site_id FROM sites ORDER BY site_id").fetchall()
        for table in ("metrics", "device_kinds", "device_kind_metrics", "devices", "readings",
                      "latest_readings", "quarantine", "rollup_1m", "rollup_1h", "rollup_1d"):
            db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert len(sites) == 10 and ("tanah-grogot",) in sites


def test_the_planner_answers_the_role_as_it_answers_the_owner(db: psycopg.Connection,
                                                              database_url: str) -> None:
    series = _seed(db, database_url)
    question = ("pm25", "1h", "avg", T0, T0 + timedelta(hours=36))
    # Before a refresh every hour is pending: the planner reads raw readings (and rollup_pending).
    with as_grafana(db):
        pending = db.execute(PLANNER, question).fetchall()
        lag = db.execute("SELECT smartcity_rollup_lag()").fetchone()
    assert lag is not None and lag[0] > timedelta(0)
    db.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
    with as_grafana(db):
        rolled = db.execute(PLANNER, question).fetchall()
        daily = db.execute(PLANNER, ("pm25", "1d", "avg", T0, T0 + timedelta(days=2))).fetchall()
    owner = db.execute(PLANNER, question).fetchall()
    assert len(rolled) == 2 * 36 and rolled == owner
    assert [(k, t, c) for k, t, _, c in pending] == [(k, t, c) for k, t, _, c in rolled]
    assert np.allclose([v for *_, v, _ in pending], [v for *_, v, _ in rolled])
    # And it is the mean of the readings themselves.
    first_hour = [v for device in ("aq-grogot-01", "aq-grogot-02")
                  for t, v in series[device] if t < T0.timestamp() + 3600]
    grogot = [row for row in rolled if row[0] == "tanah-grogot"][0]
    assert grogot[1] == T0 and grogot[3] == len(first_hour) == 12
    assert grogot[2] == pytest.approx(np.mean(first_hour))
    assert {key for key, *_ in daily} == {"kuaro", "tanah-grogot"}


def _rule_sql(uid: str, start: datetime, end: datetime, ref_id: str = "A") -> str:
    """A rule's query with its two time macros put in as Grafana does (RFC 3339 literals)."""
    rules = {rule["uid"]: rule for group in alert_rule_groups()["groups"] for rule in group["rules"]}
    raw_sql: str = next(d for d in rules[uid]["data"] if d["refId"] == ref_id)["model"]["rawSql"]
    literal = "'{}'".format
    return (raw_sql.replace("$__timeFrom()", literal(start.isoformat().replace("+00:00", "Z")))
                   .replace("$__timeTo()", literal(end.isoformat().replace("+00:00", "Z"))))


def test_the_alert_rules_queries_run_as_the_role(db: psycopg.Connection, database_url: str) -> None:
    series = _seed(db, database_url)
    db.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
    end = T0 + timedelta(hours=30, minutes=5)  # not on an hour: the planner reads the edges raw
    with as_grafana(db):
        day, five = end - timedelta(hours=24), end - timedelta(minutes=5)
        pm25 = db.execute(_rule_sql("smartcity-pm25-24h-tidak-sehat", day, end)).fetchall()
        river = db.execute(_rule_sql("smartcity-river-waspada", five, end)).fetchall()
        levels = db.execute(_rule_sql("smartcity-river-waspada", five, end, "L")).fetchall()
        # Every other rule's queries run with the role's rights too (silence, ISPU, rate of rise).
        for rule in (r for group in alert_rule_groups()["groups"] for r in group["rules"]):
            for query in (d for d in rule["data"] if d["datasourceUid"] != "__expr__"):
                db.execute(_rule_sql(rule["uid"], end - timedelta(hours=1), end, query["refId"])).fetchall()
    lo, hi = (end - timedelta(hours=24)).timestamp(), end.timestamp()
    stations = [(device, site) for device, (kind, site) in FLEET.items() if kind == "air_quality_station"]
    expected = {site: np.mean([v for device, s in stations if s == site
                               for t, v in series[device] if lo <= t < hi])
                for site in ("kuaro", "tanah-grogot")}
    assert [site for site, _ in pm25] == ["kuaro", "tanah-grogot"]
    assert {site: value for site, value in pm25} == pytest.approx(expected)
    # The haze district is over the Tidak Sehat edge, the clean one under it.
    assert dict(pm25)["tanah-grogot"] > 55.4 > dict(pm25)["kuaro"]  # the ISPU's Tidak Sehat edge
    lo = (end - timedelta(minutes=5)).timestamp()
    assert [(device, site) for device, site, _ in river] == [("river-grogot-01", "tanah-grogot"),
                                                             ("river-kuaro-01", "kuaro")]
    for device, _, value in river:
        assert value == pytest.approx(np.mean([v for t, v in series[device] if lo <= t < hi]))
    # Gauges the rule file names no level for are judged against its value, the Waspada level.
    assert levels == [("river-grogot-01", "tanah-grogot", 3.0), ("river-kuaro-01", "kuaro", 3.0)]
    assert river[0][2] > 3.0 > river[1][2]


def test_the_role_writes_nothing(db: psycopg.Connection, database_url: str) -> None:
    _seed(db, database_url)
    tables = all_tables(db)
    assert "readings" in tables and "api_keys" in tables and any("_chunk" in t for t in tables)
    before = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone() for t in tables}
    attempts = {"INSERT INTO {} DEFAULT VALUES", "UPDATE {} SET {} = {} WHERE false",
                "DELETE FROM {} WHERE false", "TRUNCATE {}"}
    allowed = []
    for table in tables:
        column = db.execute("SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass"
                            " AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = ''"
                            " ORDER BY attnum LIMIT 1",
                            (table,)).fetchone()[0]
        for attempt in attempts:
            statement = attempt.format(table, column, column) if "SET" in attempt else attempt.format(table)
            with as_grafana(db):
                try:
                    db.execute(statement)
                except psycopg.errors.InsufficientPrivilege:
                    continue
            allowed.append(statement)
    assert allowed == []
    assert {t: db.execute(f"SELECT count(*) FROM {t}").fetchone() for t in tables} == before


def test_the_role_has_no_right_on_api_keys_broker_accounts_or_the_migration_record(
        db: psycopg.Connection) -> None:
    for table in ("api_keys", "broker_accounts", "schema_migrations"):
        rights = db.execute(
            "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',"
            " 'TRIGGER']) AS p WHERE has_table_privilege(%s, %s, p)", (ROLE, table)).fetchall()
        assert rights == [], table
        with as_grafana(db), pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))


def test_the_role_reads_commands_and_their_outcomes_and_nothing_more(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO devices (device_id, kind, site_id, mqtt_username, mqtt_password_hash)"
               " VALUES ('light-cmd-01', 'street_light', 'kuaro', 'light-cmd-01', '$7$101$x$y')")
    db.execute("INSERT INTO commands (command_id, device_id, action, issued_at, issued_by, deadline)"
               " VALUES ('cmd-grafana-01', 'light-cmd-01', 'on', now(), 'test', now() + interval '1 minute')")
    rights = db.execute(
        "SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',"
        " 'TRIGGER']) AS p WHERE has_table_privilege(%s, 'commands', p)", (ROLE,)).fetchall()
    assert rights == [("SELECT",)]
    with as_grafana(db):
        assert db.execute("SELECT command_id, action, outcome FROM commands").fetchall() == [
            ("cmd-grafana-01", "on", "pending")]


def test_the_role_reads_devices_but_not_their_mqtt_password_hashes(db: psycopg.Connection) -> None:
    db.execute("INSERT INTO devices (device_id, kind, site_id, mqtt_username, mqtt_password_hash)"
               " VALUES ('wx-hash-01', 'weather_station', 'kuaro', 'wx-hash-01', '$7$101$x$y')")
    with as_grafana(db):
        assert db.execute("SELECT device_id, site_id, status, revoked_at FROM devices").fetchall() == [
            ("wx-hash-01", "kuaro", "unknown", None)]
    for statement in ("SELECT mqtt_password_hash FROM devices", "SELECT * FROM devices"):
        with as_grafana(db), pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute(statement)


@pytest.mark.parametrize("statement", [
    "SELECT * FROM smartcity_refresh_rollups(100)",
    "SELECT smartcity_set_rollup_timezone('UTC')",
    "SELECT store_staged_readings()",
    "CREATE TABLE public.grafana_was_here (x int)",
    "CREATE ROLE grafana_made_this",
])
def test_functions_that_write_and_creating_fail_for_the_role(db: psycopg.Connection, statement: str) -> None:
    with as_grafana(db), pytest.raises((psycopg.errors.InsufficientPrivilege,
                                        psycopg.errors.UndefinedTable)) as caught:
        db.execute(statement)
    # store_staged_readings reads a temporary staging table ingest makes: without one it is
    # refused for that; with one it would be refused at the first write (see the test above).
    if isinstance(caught.value, psycopg.errors.UndefinedTable):
        assert statement == "SELECT store_staged_readings()"
    assert db.execute("SELECT to_regclass('public.grafana_was_here')").fetchone() == (None,)
    assert db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'grafana_made_this'").fetchone() is None


def _run_login_script(postgres: EmbeddedPostgres, login: str, password: str) -> tuple[int, str]:
    """Run the compose login script for Grafana's ``login``; return its status and stderr."""
    # The script makes the services' logins too: here under names of their own, dropped at once
    # (tests/db/test_login_script.py tests those).
    tag = uuid.uuid4().hex[:8]
    others = {"INGEST_DB_USER": f"ingest_{tag}", "API_DB_USER": f"api_{tag}",
              "ALERTS_DB_USER": f"alerts_{tag}"}
    result = run_login_script(postgres.url, {
        "GRAFANA_DB_USER": login, "GRAFANA_DB_PASSWORD": password,
        "INGEST_DB_PASSWORD": tag, "API_DB_PASSWORD": tag, "ALERTS_DB_PASSWORD": tag, **others})
    with psycopg.connect(postgres.url, autocommit=True) as db:
        for other in others.values():
            drop_login(db, other)
    return result.returncode, result.stderr


def test_the_compose_login_script_makes_a_read_only_login(postgres: EmbeddedPostgres,
                                                          db: psycopg.Connection) -> None:
    login = f"grafana_{uuid.uuid4().hex[:8]}"
    first, second = "it's a \"password\" $HOME ;--", "another one"
    try:
        status, stderr = _run_login_script(postgres, login, first)
        assert status == 0, stderr
        with psycopg.connect(login_url(postgres.url, login, first), autocommit=True) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
            member = conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (ROLE,)).fetchone()
            assert member == (True,)
            assert conn.execute("SELECT count(*) FROM sites").fetchone() == (10,)
            conn.execute(PLANNER, ("pm25", "1h", "avg", T0, T0 + timedelta(hours=1))).fetchall()
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM api_keys")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO sites (site_id, name, latitude, longitude)"
                             " VALUES ('x-site', 'X', 0, 0)")
        # Run again with a new password (every compose start does): the role is updated, not duplicated.
        status, stderr = _run_login_script(postgres, login, second)
        assert status == 0, stderr
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(login_url(postgres.url, login, first)).close()
        with psycopg.connect(login_url(postgres.url, login, second)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (login,)
    finally:
        drop_login(db, login)


def test_the_login_script_refuses_without_a_password(postgres: EmbeddedPostgres) -> None:
    status, stderr = _run_login_script(postgres, "grafana_nopass", "")
    assert status != 0 and "set GRAFANA_DB_PASSWORD" in stderr


def test_the_role_runs_the_ispu_map_as_the_owner_does(db: psycopg.Connection) -> None:
    # The map panel calls smartcity_site_ispu(), which reads the ISPU tables with the caller's rights.
    at = "2026-11-30T04:00:00Z"
    owner = db.execute("SELECT * FROM smartcity_site_ispu(%s) ORDER BY site_id", (at,)).fetchall()
    with as_grafana(db):
        as_role = db.execute("SELECT * FROM smartcity_site_ispu(%s) ORDER BY site_id", (at,)).fetchall()
        sub = db.execute("SELECT * FROM smartcity_ispu_sub_index('pm25', 55.4)").fetchone()
    assert len(as_role) == 10 and as_role == owner
    assert sub is not None and sub[0] == 100.0
