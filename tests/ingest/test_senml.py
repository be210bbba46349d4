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
    ([{"v": 1}], True),  # no name, but a value: a (bad) SenML record, not a batch element
    ([{"bt": 1795744800, "bver": 10}, {"n": "pm25", "v": 1}], True),  # a first record without a name
    ([{"t": -5, "vb": True}, {"n": "lamp_on", "vb": False}], True),
    (["x", {"n": "pm25", "v": 1}], True),  # non-objects do not decide
    ([{"metrics": {"pm25": 1}}], False),
    ([{"n": "pm25", "metrics": {"pm25": 1}}], False),  # a batch element with a stray field
    ([{"ts": 1, "metrics": {}}, {"n": "pm25", "v": 1}], False),  # one batch element makes a batch
    ([{"n": "pm25", "v": 1}, {"metrics": {"pm25": 1}}], False),  # wherever it stands
    ([{"ts": 1}], False),
    ([{}], False),
    ([1, 2], False),
    ([[{"n": "pm25"}]], False),
])
def test_shape(document: list[Any], expected: bool) -> None:
    assert looks_like_senml(document) is expected


@pytest.mark.parametrize(("payload", "details"), [
    # Each says what is wrong with the record rather than asking a SenML record for 'metrics'.
    (b'[{"v": 3}]', ["record 0: has no name n naming a metric"]),
    (b'[{"bt": 1795744800, "u": "ug/m3", "v": 3}, {"n": "pm10", "v": 4}]',
     ["record 0: has no name n naming a metric"]),
    (b'[{"bn": "urn:dev:ow:10e2073a01080063", "bver": 10}, {"n": "pm10", "v": 4}]',
     ["record 0: has no name n naming a metric"]),
    # A batch with a SenML record among its elements says the two do not mix.
    (b'[{"metrics": {"pm25": 3}}, {"n": "pm10", "v": 4}]',
     ["element 1: needs a non-empty object 'metrics' (it has SenML fields, but a batch cannot hold "
      "SenML records)"]),
])
def test_packs_without_a_first_name_get_a_reason_that_says_what_is_wrong(
        payload: bytes, details: list[str]) -> None:
    assert [r.detail for r in decode_payload(payload, received_at=1_795_744_800.0).rejections] == details


def test_shape_detection_routes_packs_and_batches_apart() -> None:
    senml = decode_payload(b'[{"n": "pm25", "v": 3}]')
    batch = decode_payload(b'[{"metrics": {"pm25": 3}}]')
    assert senml.observations == batch.observations == [Observation(None, "pm25", 3)]
    unnamed_first = decode_payload(b'[{"bt": 1795744800, "v": 3}, {"n": "pm10", "v": 4}]')
    assert unnamed_first.observations == [Observation(1795744800.0, "pm10", 4)]


@pytest.mark.parametrize(("bver", "reads"), [
    (1, True), (5, True), (9, True), (10, True), (10.0, True),  # RFC 8428 §4.4: up to the known one
    (11, False), (12, False), (2**64, False), (0, False), (-10, False), (10.5, False),
    ("10", False), (True, False), (None, False),
])
def test_versions_up_to_10_are_read_newer_ones_refused(bver: object, reads: bool) -> None:
    results = list(iter_senml([{"bver": bver, "n": "pm25", "v": 1}, {"n": "pm10", "v": 2}], 0.0))
    if reads:
        assert results == [SenmlValue(None, "pm25", 1), SenmlValue(None, "pm10", 2)]
    else:
        refused = f"record 0: bver {bver!r:.20} is not supported (versions 1 to 10)"
        assert results == [
            Rejection(Reason.INVALID_SCHEMA, refused),
            Rejection(Reason.INVALID_SCHEMA, "record 1: inherits the invalid bver of record 0"),
        ]


@pytest.mark.parametrize(("record", "expected"), [
    ({"n": "lamp_on", "vb": True}, 1.0),  # lamp_on is the catalogue's one switch (unit 0/1)
    ({"n": "lamp_on", "vb": False}, 0.0),
    ({"n": "lamp_on", "v": 1}, 1),  # a switch may also send its number
    ({"n": "radon", "vb": True}, 1.0),  # not in the catalogue: the validator's unknown_metric
    ({"n": "pm25", "vb": True}, "pm25 is a number, not a boolean (vb); booleans are for lamp_on"),
    ({"n": "pm25", "vb": False}, "pm25 is a number"),
    ({"n": "lamp_power", "vb": True}, "lamp_power is a number"),
    ({"n": "temperature", "u": "Cel", "vb": True}, "temperature is a number"),
    ({"n": "energy", "vb": True}, "energy is a number"),
])
def test_booleans_only_for_switches(record: dict[str, Any], expected: float | str) -> None:
    [result] = iter_senml([record], 0.0)
    if isinstance(expected, str):
        assert isinstance(result, Rejection) and result.reason is Reason.INVALID_SCHEMA
        assert result.detail.startswith(f"record 0: {expected}")
    else:
        assert result == SenmlValue(None, record["n"], expected)


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
