"""Decoding payload bytes: every contract format, and every malformed shape as a rejection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ingest.decode import Observation, decode_payload, parse_ts
from smartcity.contract import MAX_PAYLOAD_BYTES, Reason

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-11-27T02:00:00Z", T0),
    ("2026-11-27T10:00:00+08:00", T0),
    ("2026-11-27T02:00:00.250Z", T0 + 0.25),
    (T0, T0),
    (int(T0), T0),
    (int(T0 * 1000), T0),  # > 1e11: epoch milliseconds
])
def test_timestamps_in_every_contract_form(raw: object, expected: float) -> None:
    assert parse_ts(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["yesterday", "2026-11-27T02:00:00", True, None, [1], float("nan")])
def test_bad_timestamps_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_ts(raw)


def test_single_observation() -> None:
    out = decode_payload(b'{"ts": "2026-11-27T02:00:00Z", "metrics": {"pm25": 12.3, "pm10": 20}}')
    assert out.rejections == []
    assert out.observations == [Observation(T0, "pm25", 12.3), Observation(T0, "pm10", 20)]


def test_observation_without_ts_has_no_time() -> None:
    out = decode_payload(b'{"metrics": {"pm25": 1}}')
    assert out.observations == [Observation(None, "pm25", 1)]


def test_batch_keeps_good_elements_and_rejects_bad_ones() -> None:
    payload = b'[{"ts": 1764208800, "metrics": {"pm25": 1}}, {"metrics": 5}, "x",' \
              b' {"ts": "nope", "metrics": {"pm25": 2}}]'
    out = decode_payload(payload)
    assert out.observations == [Observation(1764208800.0, "pm25", 1)]
    assert [r.reason for r in out.rejections] == [Reason.INVALID_SCHEMA] * 3
    assert out.rejections[0].detail.startswith("element 1")


def test_batch_over_the_limit_is_rejected_whole() -> None:
    payload = b"[" + b",".join([b'{"metrics": {"pm25": 1}}'] * 1001) + b"]"
    out = decode_payload(payload)
    assert out.observations == []
    assert out.rejections[0].reason is Reason.INVALID_SCHEMA


def test_non_finite_values_survive_decoding_for_the_validator() -> None:
    out = decode_payload(b'{"metrics": {"pm25": NaN, "pm10": Infinity, "co": 1e999, "no2": 3}}')
    values = {o.metric: o.value for o in out.observations}
    assert values["no2"] == 3
    assert all(v != v or abs(v) == float("inf") for k, v in values.items() if k != "no2")


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", Reason.INVALID_JSON),
    (b'{"metrics": {"pm25": 1}', Reason.INVALID_JSON),
    (b"\xff\xfe\x00garbage", Reason.INVALID_JSON),
    (b'{"metrics": {"pm25": "\xc3\x28"}}', Reason.INVALID_JSON),  # invalid UTF-8
    (b"[" * 5000 + b"]" * 5000, Reason.INVALID_JSON),  # nesting beyond any parser's limit
    (b"42", Reason.INVALID_SCHEMA),
    (b"[]", Reason.INVALID_SCHEMA),
    (b'{"ts": 1}', Reason.INVALID_SCHEMA),
    (b'{"metrics": {}}', Reason.INVALID_SCHEMA),
    (b'{"metrics": [1, 2]}', Reason.INVALID_SCHEMA),
    (b'{"ts": 1e30, "metrics": {"pm25": 1}}', Reason.TIMESTAMP_OUT_OF_WINDOW),
    (b'{"metrics": {"pm25": 1}, "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}',
     Reason.PAYLOAD_TOO_LARGE),
])
def test_malformed_payloads_become_rejections(payload: bytes, reason: Reason) -> None:
    out = decode_payload(payload)
    assert out.observations == []
    assert [r.reason for r in out.rejections] == [reason]
    assert out.rejections[0].detail
