"""Simulated devices that stand in for hardware: numpy models per kind, fleets, MQTT publishing.

The library API, for tests of other applications that want Paser's sensors without the hardware::

    from simulators import Ledger, build_fleet, get_scenario, run_scenario

    fleet = build_fleet(50, seed=1, mix={"river_level_sensor": 1, "weather_station": 1})
    # A broker URL (mqtt://user:password@host:port, mqtts://…) or a parsed BrokerAddress.
    ledger = run_scenario(fleet, "mqtt://127.0.0.1:1883", scenario="flood", rounds=3, seed=1)
    ledger.readings   # {(device_id, metric, epoch_ms): value} that a correct ingest stores
    ledger.quarantined  # Counter of the reason codes it should quarantine (faults only)

`expected_readings` gives a device's readings at any times without a broker. The same seed (and
anchor, for scenarios) always gives the same values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from simulators.encode import Format
from simulators.faults import FAULT_NAMES, Ledger
from simulators.fleet import DeviceSpec, SimulatedDevice, build_fleet, demo_fleet
from simulators.publish import FleetPublisher, PublisherStats, run_simulator
from simulators.scenarios import SCENARIOS, Scenario, get_scenario
from smartcity.broker_url import BrokerAddress, parse_broker_url

__all__ = [
    "FAULT_NAMES", "SCENARIOS", "DeviceSpec", "FleetPublisher", "Ledger", "PublisherStats", "Scenario",
    "SimulatedDevice", "build_fleet", "demo_fleet", "expected_readings", "get_scenario",
    "run_scenario", "run_simulator",
]


def expected_readings(spec: DeviceSpec, seed: int, times: Sequence[float] | np.ndarray,
                      scenario: str = "normal", anchor: float | None = None) -> dict[str, np.ndarray]:
    """Return what ``spec``'s device reads at ``times`` (ascending epoch seconds), per metric."""
    device = SimulatedDevice.create(spec, seed, get_scenario(scenario), anchor)
    return device.sample(np.asarray(times, dtype=np.float64))


def run_scenario(specs: Sequence[DeviceSpec], broker: BrokerAddress | str, *,
                 scenario: str = "normal",
                 rounds: int = 1, seed: int = 0, fmt: Format = "json", qos: int = 1,
                 timeout: float = 60.0) -> Ledger:
    """Publish ``rounds`` reports per device of ``scenario`` (faults included) and return the ledger.

    Returns once the broker has acknowledged every message (QoS 1). The ledger holds the readings
    a correct ingest stores and the quarantine reasons it should record.

    Raises:
        TimeoutError: the broker did not acknowledge everything within ``timeout`` seconds.
    """
    if isinstance(broker, str):
        broker = parse_broker_url(broker)
    chosen = get_scenario(scenario)
    anchor = time.time()
    ledger = Ledger()
    publisher = FleetPublisher(
        specs, broker, seed=seed, qos=qos, fmt=fmt, faults=dict(chosen.faults),
        ledger=ledger, make_device=lambda spec, s: SimulatedDevice.create(spec, s, chosen, anchor),
    )
    with publisher:
        if not publisher.wait_connected(timeout):
            raise TimeoutError(f"devices did not connect to {broker} within {timeout} s")
        for _ in range(rounds):
            publisher.publish_once()
        if not publisher.flush(timeout):
            raise TimeoutError(f"the broker did not acknowledge every message within {timeout} s")
    return ledger
