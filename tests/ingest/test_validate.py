"""Validating observations against the catalogue, the device's kind and the time window."""

from __future__ import annotations

import pytest

from ingest.decode import Observation
from ingest.validate import DeviceRef, TimeWindow, validate_observations
from smartcity.catalog import METRICS
from smartcity.contract import Reason

NOW = 1_800_000_000.0
WINDOW = TimeWindow(future_s=300, past_s=400 * 86400)
AQ = DeviceRef(7, "aq-test-01", "air_quality_station")


def test_valid_observations_become_readings_with_catalogue_ids() -> None:
    out = validate_observations(AQ, [Observation(NOW - 60, "pm25", 12), Observation(None, "co", 800.5)],
                                NOW, WINDOW)
    assert out.rejections == []
    assert out.readings == [
        (NOW - 60, 7, METRICS["pm25"].id, 12.0),
        (NOW, 7, METRICS["co"].id, 800.5),  # no ts: the receive time
    ]


@pytest.mark.parametrize(("obs", "reason"), [
    (Observation(None, "radon", 1), Reason.UNKNOWN_METRIC),
    (Observation(None, "water_level", 1), Reason.UNKNOWN_METRIC),  # not a metric of this kind
    (Observation(None, "pm25", "12"), Reason.INVALID_SCHEMA),
    (Observation(None, "pm25", True), Reason.INVALID_SCHEMA),
    (Observation(None, "pm25", None), Reason.INVALID_SCHEMA),
    (Observation(None, "pm25", {"v": 1}), Reason.INVALID_SCHEMA),
    (Observation(None, "pm25", float("nan")), Reason.NON_FINITE),
    (Observation(None, "pm25", float("-inf")), Reason.NON_FINITE),
    (Observation(None, "pm25", -0.1), Reason.OUT_OF_RANGE),
    (Observation(None, "pm25", 1000.01), Reason.OUT_OF_RANGE),
    (Observation(None, "pm25", 10**400), Reason.OUT_OF_RANGE),
    (Observation(NOW + 301, "pm25", 1), Reason.TIMESTAMP_OUT_OF_WINDOW),
    (Observation(NOW - 401 * 86400, "pm25", 1), Reason.TIMESTAMP_OUT_OF_WINDOW),
])
def test_each_invalid_observation_gets_its_reason(obs: Observation, reason: Reason) -> None:
    out = validate_observations(AQ, [obs, Observation(None, "pm10", 5)], NOW, WINDOW)
    assert [r.reason for r in out.rejections] == [reason]
    assert [metric for _, _, metric, _ in out.readings] == [METRICS["pm10"].id]  # neighbour kept


def test_range_bounds_are_inclusive() -> None:
    out = validate_observations(AQ, [Observation(None, "pm25", 0), Observation(None, "pm25", 1000)],
                                NOW, WINDOW)
    assert out.rejections == [] and len(out.readings) == 2
