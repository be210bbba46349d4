"""Validating observations against the catalogue, the device's kind and the time window."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest.decode import Observation, decode_payload
from ingest.validate import DeviceRef, TimeWindow, validate_observations
from smartcity.catalog import METRICS, METRICS_BY_ID
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
    out = validate_observations(AQ, [Observation(NOW - 1, "pm25", 0), Observation(NOW, "pm25", 1000)],
                                NOW, WINDOW)
    assert out.rejections == [] and len(out.readings) == 2


T = NOW - 60
T_ISO = datetime.fromtimestamp(T, UTC).isoformat().replace("+00:00", "Z")


def _batch(*elements: tuple[object, dict[str, object]]) -> bytes:
    return orjson.dumps([{"ts": ts, "metrics": metrics} for ts, metrics in elements])


# One message, one value per metric and instant: (payload, stored (metric, value), rejection details).
@pytest.mark.parametrize(("payload", "stored", "details"), [
    pytest.param(_batch((T, {"pm25": 1}), (T, {"pm25": 2})), [],
                 [f"pm25 at {T_ISO} has 2 different values in one message (1.0, 2.0); none stored"],
                 id="batch_two_values"),
    pytest.param(_batch((T, {"pm25": 1, "pm10": 5}), (T, {"pm25": 2, "pm10": 5})), [("pm10", 5.0)],
                 [f"pm25 at {T_ISO} has 2 different values"], id="batch_conflict_neighbours_kept"),
    pytest.param(_batch((T, {"pm25": 1}), (T, {"pm25": 1.0})), [("pm25", 1.0)], [],
                 id="batch_identical_repeat_stored_once"),
    pytest.param(_batch((T_ISO, {"pm25": 1}), (int(T * 1000), {"pm25": 2})), [],
                 [f"pm25 at {T_ISO} has 2 different values"], id="same_instant_in_two_spellings"),
    pytest.param(_batch((T, {"pm25": 1}), (T + 4e-7, {"pm25": 2})), [],  # distinct floats
                 ["pm25 at", "has 2 different values"], id="within_one_microsecond"),
    pytest.param(_batch((T, {"pm25": 1}), (T + 0.001, {"pm25": 2})), [("pm25", 1.0), ("pm25", 2.0)], [],
                 id="one_millisecond_apart"),
    pytest.param(_batch((T, {"pm25": 1}), (T, {"pm25": 2}), (T, {"pm25": 1})), [],
                 [f"pm25 at {T_ISO} has 2 different values in one message (1.0, 2.0)"],
                 id="three_values_two_distinct"),
    pytest.param(_batch((T, {"pm25": 1}), (T, {"pm25": -5})), [("pm25", 1.0)],
                 ["pm25: value -5 outside"], id="an_invalid_second_value_is_its_own_rejection"),
    pytest.param(b'[{"n": "pm25", "v": 1}, {"n": "pm25", "v": 2}]', [],
                 ["pm25 at", "has 2 different values"], id="senml_without_t"),
    pytest.param(b'[{"n": "pm25", "v": 1}, {"n": "pm25", "v": 1}]', [("pm25", 1.0)], [],
                 id="senml_identical_repeat_stored_once"),
    pytest.param(b'[{"n": "pm25", "v": 1, "t": 0}, {"n": "pm25", "v": 2}]', [],
                 ["pm25 at", "has 2 different values"], id="senml_t0_is_the_receive_time"),
    pytest.param(b'[{"n": "pm25", "v": 1, "t": -1}, {"n": "pm25", "v": 2}]', [("pm25", 1.0), ("pm25", 2.0)],
                 [], id="senml_distinct_times"),
    pytest.param(b'[{"bt": %d, "n": "co", "u": "mg/m3", "v": 1}, {"n": "co", "u": "ug/m3", "v": 1000}]' % T,
                 [("co", 1000.0)], [], id="senml_same_value_in_two_units"),
])
def test_one_value_per_metric_and_instant_in_a_message(
        payload: bytes, stored: list[tuple[str, float]], details: list[str]) -> None:
    decoded = decode_payload(payload, received_at=NOW)
    assert decoded.rejections == []
    out = validate_observations(AQ, decoded.observations, NOW, WINDOW)
    assert [(METRICS_BY_ID[metric].name, value) for _, _, metric, value in out.readings] == stored
    assert len(out.rejections) == (1 if details else 0), out.rejections
    for rejection in out.rejections:
        assert all(part in rejection.detail for part in details), rejection.detail
        expected = Reason.OUT_OF_RANGE if "outside" in rejection.detail else Reason.INVALID_SCHEMA
        assert rejection.reason is expected


def test_readings_keep_their_order_when_a_repeat_is_settled() -> None:
    observations = [Observation(T, "pm10", 1), Observation(T, "pm25", 2), Observation(T + 1, "pm10", 3),
                    Observation(T, "pm25", 2), Observation(T, "co", 4)]
    out = validate_observations(AQ, observations, NOW, WINDOW)
    assert out.rejections == []
    assert [(time, METRICS_BY_ID[metric].name) for time, _, metric, _ in out.readings] == [
        (T, "pm10"), (T, "pm25"), (T + 1, "pm10"), (T, "co")]
