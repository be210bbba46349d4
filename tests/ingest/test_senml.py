"""SenML (RFC 8428) detection and resolution; the per-record behaviour lives in the golden cases."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ingest.decode import Observation, decode_payload
from ingest.senml import SenmlValue, is_senml_content_type, iter_senml, looks_like_senml
from smartcity.contract import Reason, Rejection


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/senml+json", True),
    ("Application/SenML+JSON", True),
    ("application/senml+json; charset=utf-8", True),
    (" application/senml+json ", True),
    ("application/json", False),
    ("application/senml+cbor", False),
    ("application/senml-exi", False),
    ("", False),
])
def test_content_type(content_type: str, expected: bool) -> None:
    assert is_senml_content_type(content_type) is expected


@pytest.mark.parametrize(("document", "expected"), [
    ([{"n": "pm25", "v": 1}], True),
    ([{"bn": "aq-01/", "n": "pm25", "v": 1}], True),
    ([{"bn": "aq-01/pm25", "v": 1}], True),
    ([{"metrics": {"pm25": 1}}], False),
    ([{"n": "pm25", "metrics": {"pm25": 1}}], False),  # a batch element with a stray field
    ([{"ts": 1, "metrics": {}}, {"n": "pm25", "v": 1}], False),  # only the first element counts
    ([{"v": 1}], False),
    ([1, 2], False),
    ([[{"n": "pm25"}]], False),
])
def test_shape(document: list[Any], expected: bool) -> None:
    assert looks_like_senml(document) is expected


def test_shape_detection_routes_packs_and_batches_apart() -> None:
    senml = decode_payload(b'[{"n": "pm25", "v": 3}]')
    batch = decode_payload(b'[{"metrics": {"pm25": 3}}]')
    assert senml.observations == batch.observations == [Observation(None, "pm25", 3)]
    not_senml = decode_payload(b'[{"v": 3}]')  # neither n nor bn: read as a batch element
    assert [r.detail for r in not_senml.rejections] == ["element 0: needs a non-empty object 'metrics'"]


def test_relative_times_default_to_now() -> None:
    before = time.time()
    [value] = iter_senml([{"n": "pm25", "v": 1, "t": -10}])
    after = time.time()
    assert isinstance(value, SenmlValue)
    assert value.time is not None and before - 10 <= value.time <= after - 10


def test_relative_times_use_the_receive_time_passed_in() -> None:
    out = decode_payload(b'[{"bt": -120, "n": "pm25", "v": 1}, {"n": "pm10", "v": 2, "t": 30}]',
                         received_at=1_800_000_000.0)
    assert [o.time for o in out.observations] == [1_800_000_000.0 - 120, 1_800_000_000.0 - 90]


def test_each_bad_record_is_rejected_on_its_own() -> None:
    pack = [{"n": "pm25", "v": 1}, {"n": "pm25", "vs": "x"}, {"n": "pm10", "v": 2},
            {"n": "pm10", "u": "ppm", "v": 1}]
    results = list(iter_senml(pack, 0.0))
    assert [type(r) for r in results] == [SenmlValue, Rejection, SenmlValue, Rejection]
    assert results[1] == Rejection(Reason.INVALID_SCHEMA, "record 1: string values (vs) not supported")
    assert isinstance(results[3], Rejection) and results[3].reason is Reason.UNIT_MISMATCH
    assert results[3].detail.startswith("record 3: pm10: unit 'ppm'")


def test_base_fields_carry_forward_until_changed() -> None:
    pack = [{"bn": "d/", "bt": 1_800_000_000, "bu": "K", "bv": 273.15, "n": "temperature", "v": 20},
            {"n": "temperature", "v": 21, "t": 1},
            {"bu": "Cel", "bv": 0, "n": "temperature", "v": 22}]
    assert list(iter_senml(pack)) == [
        SenmlValue(1_800_000_000.0, "temperature", pytest.approx(20)),
        SenmlValue(1_800_000_001.0, "temperature", pytest.approx(21)),
        SenmlValue(1_800_000_000.0, "temperature", 22),
    ]
