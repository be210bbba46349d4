"""`smartcity simulate` as users run it: live against a real broker, backfill into the database."""

from __future__ import annotations

import orjson
import psycopg
from click.testing import CliRunner

from ingest.pipeline import IngestWorker
from simulators.encode import FORMATS
from simulators.faults import FAULT_NAMES
from simulators.scenarios import SCENARIOS
from smartcity.cli import main, simulate
from smartcity.services import EmbeddedMosquitto
from tests.logins import BrokerLogins
from tests.mqtt import clear_retained_statuses
from tests.services import wait_until


def _simulate(env: dict[str, str], *args: str):  # noqa: ANN202 - click's Result
    return CliRunner().invoke(main, ["simulate", *args], env=env, catch_exceptions=False)


def test_backfill_registers_the_fleet_and_stores_history(database_url: str,
                                                         db: psycopg.Connection) -> None:
    result = _simulate({"SMARTCITY_DATABASE_URL": database_url}, "--size", "3", "--kind-mix",
                       "weather_station", "--backfill", "1d", "--interval", "3600", "--json")
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)  # the progress bar goes to stderr
    assert out["devices"] == 3 and out["stored"] == out["readings"] == 3 * 24 * 6
    assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 3
    assert db.execute("SELECT count(*) FROM readings").fetchone()[0] == 3 * 24 * 6


def test_live_run_with_faults_publishes_and_counts_them(
        database_url: str, mosquitto: EmbeddedMosquitto, broker_login: BrokerLogins) -> None:
    # Each device logs in as itself. (Not the shared gateway login: the broker binds the client
    # id to the login, so twenty devices sharing one would keep taking each other's connection.)
    env = {"SMARTCITY_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto.port}", "SMARTCITY_DATABASE_URL": database_url,
           "SMARTCITY_SIMULATOR__FLEET_SECRET": "tests-fleet-secret-0123456789abcdef"}
    result = _simulate(env, "--register", "--size", "20", "--scenario", "sensor-faults",
                       "--fault", "spike=0.5", "--format", "senml", "--interval", "0.2", "--duration", "1",
                       "--json")
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.stdout)
    assert stats["telemetry_published"] >= 20
    assert stats["faults"]["spike"] > 0
    # Its devices' retained statuses would reach a later test's worker: leave none behind.
    assert len(clear_retained_statuses(broker_login("gateway"), broker_login("ingest"))) >= 20


def test_a_live_run_with_a_fleet_secret_registers_its_devices_and_each_logs_in_as_itself(
        database_url: str, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        worker: IngestWorker, broker_login: BrokerLogins) -> None:
    # No shared login in the URL: each device's password comes from the fleet secret, and
    # --register puts the devices in the registry, which lets them in at the broker.
    env = {"SMARTCITY_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto.port}", "SMARTCITY_DATABASE_URL": database_url,
           "SMARTCITY_SIMULATOR__FLEET_SECRET": "tests-fleet-secret-0123456789abcdef"}
    result = _simulate(env, "--size", "3", "--kind-mix", "river_level_sensor", "--register",
                       "--interval", "0.2", "--duration", "1", "--json")
    assert result.exit_code == 0, result.output
    stats = orjson.loads(result.stdout)
    assert stats["telemetry_published"] >= 3
    assert stats["rejected"] == stats["dropped"] == 0 and stats["acknowledged"] == (
        stats["telemetry_published"] + stats["status_published"])
    wait_until(lambda: db.execute("SELECT count(DISTINCT device) FROM readings").fetchone() == (3,),
               message="every simulated device's readings stored")
    assert len(clear_retained_statuses(broker_login("gateway"), broker_login("ingest"))) >= 3


def test_bad_options_are_refused_before_anything_starts() -> None:
    unknown_fault = _simulate({}, "--size", "2", "--fault", "gremlins=0.1")
    assert unknown_fault.exit_code == 2 and "gremlins" in unknown_fault.output
    bad_probability = _simulate({}, "--size", "2", "--fault", "spike=2")
    assert bad_probability.exit_code == 2 and "[0, 1]" in bad_probability.output
    bad_pair = _simulate({}, "--size", "2", "--fault", "spike=often")
    assert bad_pair.exit_code == 2 and "NAME=NUMBER" in bad_pair.output
    bad_kind = _simulate({}, "--size", "2", "--kind-mix", "toaster=1")
    assert bad_kind.exit_code == 2 and "toaster" in bad_kind.output


def test_options_offer_exactly_the_simulators_own_names() -> None:
    choices = {param.name: getattr(param.type, "choices", None) for param in simulate.params}
    assert list(choices["scenario"]) == list(SCENARIOS)
    assert list(choices["fmt"]) == list(FORMATS)
    usage = CliRunner().invoke(main, ["simulate", "--help"], terminal_width=200).output
    assert all(name in usage for name in FAULT_NAMES), usage
    # A name the simulators lack is refused by click before anything starts.
    unknown = _simulate({}, "--size", "2", "--scenario", "volcano")
    assert unknown.exit_code == 2 and "volcano" in unknown.output
