"""A simulated fleet through a real broker into a real ingest worker: the database holds exactly
what the publisher's ledger says it sent, and quarantines exactly the faults it injected.

Every simulated device logs in with credentials of its own, registered as `smartcity up` registers
the demo fleet; the broker lets each publish only as itself.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import psycopg
import pytest

from ingest.pipeline import IngestWorker
from simulators import expected_readings, run_scenario
from simulators.encode import Format
from simulators.faults import FAULT_NAMES, Ledger
from simulators.fleet import DeviceSpec, build_fleet
from simulators.publish import FleetPublisher
from smartcity.broker_url import parse_broker_url
from smartcity.contract import status_topic
from smartcity.services import EmbeddedMosquitto
from tests.logins import BrokerLogins
from tests.mqtt import mqtt_publisher
from tests.services import wait_until

pytestmark = pytest.mark.slow

_STORED = (
    "SELECT d.device_id, m.name, round(extract(epoch FROM r.time) * 1000)::bigint, r.value"
    " FROM readings r JOIN devices d ON d.id = r.device JOIN metrics m ON m.metric_id = r.metric"
)
# Rejected parts by reason: one quarantine row per message counts its parts in parts->'by_reason'.
_QUARANTINED = ("SELECT p.key, sum(p.value::int) FROM quarantine q, jsonb_each_text(q.parts->'by_reason') p"
                " WHERE q.device_id = ANY(%s) GROUP BY p.key")


def _registered_fleet(broker_login: BrokerLogins, specs: list[DeviceSpec]) -> Iterator[list[DeviceSpec]]:
    tag = uuid.uuid4().hex[:6]
    fleet = broker_login.fleet([replace(spec, device_id=f"f{tag}-{spec.device_id}") for spec in specs])
    gateway = broker_login("gateway")
    yield fleet
    with mqtt_publisher(gateway) as client:  # no retained statuses left for later subscribers
        infos = [client.publish(status_topic(spec.device_id), b"", qos=1, retain=True)
                 for spec in fleet]
        for info in infos:
            info.wait_for_publish(timeout=10)


@pytest.fixture
def big_fleet(broker_login: BrokerLogins) -> Iterator[list[DeviceSpec]]:
    """A thousand registered devices of every kind in every district."""
    yield from _registered_fleet(broker_login, build_fleet(1000, seed=11))


@pytest.fixture
def faulty_fleet(broker_login: BrokerLogins) -> Iterator[list[DeviceSpec]]:
    """Forty registered devices, weighted towards the stations."""
    yield from _registered_fleet(broker_login, build_fleet(
        40, seed=12, mix={"air_quality_station": 3, "weather_station": 2, "river_level_sensor": 1,
                          "street_light": 1, "water_meter": 1}))


def _stored(db: psycopg.Connection) -> dict[tuple[str, str, int], float]:
    return {(device, metric, ms): value for device, metric, ms, value in db.execute(_STORED)}


def _quarantined(db: psycopg.Connection, fleet: list[DeviceSpec]) -> Counter[str]:
    rows = db.execute(_QUARANTINED, ([spec.device_id for spec in fleet],)).fetchall()
    return Counter(dict(rows))


def _run_rounds(publisher: FleetPublisher, rounds: int) -> None:
    assert publisher.wait_connected(20)
    for _ in range(rounds):
        publisher.publish_once()
    assert publisher.flush(20)


def test_a_thousand_devices_publish_and_ingest_stores_exactly_what_they_sent(
        worker: IngestWorker, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        big_fleet: list[DeviceSpec]) -> None:
    ledger = Ledger()
    with FleetPublisher(big_fleet, parse_broker_url(mosquitto.url), seed=11, ledger=ledger) as publisher:
        _run_rounds(publisher, 2)
    expected = len(ledger.readings)
    assert ledger.messages == 2 * len(big_fleet) and not ledger.quarantined
    wait_until(lambda: worker.counters.readings_stored >= expected, timeout=30,
               message=f"{expected} readings stored")
    assert _stored(db) == ledger.readings  # every device, metric, millisecond and value
    assert _quarantined(db, big_fleet) == Counter()
    stats = publisher.stats()
    assert stats.telemetry_published == 2 * len(big_fleet)
    assert stats.acknowledged == stats.published and stats.dropped == 0


@pytest.mark.parametrize("fmt", ["json", "senml"])
def test_every_fault_ends_in_the_database_as_the_ledger_predicts(
        worker: IngestWorker, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        faulty_fleet: list[DeviceSpec], fmt: Format) -> None:
    ledger = Ledger()
    faults = dict.fromkeys(FAULT_NAMES, 0.15)
    with FleetPublisher(faulty_fleet, parse_broker_url(mosquitto.url), seed=12, fmt=fmt,
                        faults=faults, ledger=ledger) as publisher:
        _run_rounds(publisher, 12)
    stats = publisher.stats()
    assert all(stats.faults[name] > 0 for name in FAULT_NAMES), stats.faults
    assert set(ledger.quarantined) == {"out_of_range", "timestamp_out_of_window", "invalid_json",
                                       "unknown_metric"}
    wait_until(lambda: _quarantined(db, faulty_fleet) == ledger.quarantined
               and len(_stored(db)) >= len(ledger.readings), timeout=20,
               message=f"quarantine {dict(ledger.quarantined)} and {len(ledger.readings)} readings")
    assert _stored(db) == ledger.readings  # duplicates stored once, backfills and skews in place
    assert worker.counters.readings_duplicate > 0


@pytest.fixture
def small_fleet(broker_login: BrokerLogins) -> Iterator[list[DeviceSpec]]:
    """Eight registered devices, rivers and stations."""
    yield from _registered_fleet(broker_login, build_fleet(
        8, seed=13, mix={"river_level_sensor": 1, "weather_station": 1, "air_quality_station": 1}))


@pytest.mark.parametrize("scenario", ["flood", "sensor-faults"])
def test_the_library_api_runs_a_scenario_and_returns_what_ingest_should_hold(
        worker: IngestWorker, db: psycopg.Connection, mosquitto: EmbeddedMosquitto,
        small_fleet: list[DeviceSpec], scenario: str) -> None:
    ledger = run_scenario(small_fleet, mosquitto.url, scenario=scenario, rounds=4,
                          seed=13)
    wait_until(lambda: _stored(db) == ledger.readings, timeout=20, message="ledger stored")
    wait_until(lambda: _quarantined(db, small_fleet) == ledger.quarantined, timeout=10,
               message="quarantine as predicted")
    assert ledger.readings
    if scenario == "flood":  # with faults, a device in a dropout holds its reports back
        assert ledger.messages == 4 * len(small_fleet)


def test_expected_readings_are_deterministic_and_in_range() -> None:
    spec = build_fleet(1, seed=2, kinds=["river_level_sensor"])[0]
    times = 1_800_000_000.0 + 600.0 * np.arange(144)
    first = expected_readings(spec, 2, times, scenario="flood", anchor=times[0])
    again = expected_readings(spec, 2, times, scenario="flood", anchor=times[0])
    assert np.array_equal(first["water_level"], again["water_level"])
    assert first["water_level"].max() > 4.0  # the flood crest passes the Awas level
