"""Decoding payload bytes: every contract format, and every malformed shape as a rejection."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ingest.decode import Observation, decode_payload, parse_ts
from smartcity.contract import MAX_PAYLOAD_BYTES, Reason

T0 = datetime(2026, 11, 27, 2, 0, tzinfo=UTC).timestamp()


LEAP_2016 = datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() + 0.999999


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


# RFC 3339 §5.6 date-time, and what §5.6's NOTE and §5.7 allow.
@pytest.mark.parametrize(("raw", "expected"), [
    ("2026-11-27t02:00:00z", T0),  # NOTE: "T" and "Z" may be lower case
    ("2026-11-27t02:00:00Z", T0),
    ("2026-11-27T02:00:00z", T0),
    ("2026-11-26T22:00:00-04:00", T0),
    ("2026-11-27T02:00:00-00:00", T0),  # §4.3: UTC, local offset unknown
    ("2026-11-28T01:59:00+23:59", T0),  # the largest offset the grammar has
    ("2026-11-27T02:00:00.5Z", T0 + 0.5),
    ("2026-11-27T02:00:00.000001Z", T0 + 1e-6),
    ("2026-11-27T02:00:00.1234567890123456789Z", T0 + 0.123456),  # any length, kept to the µs
    ("2026-11-27T10:00:00.25+08:00", T0 + 0.25),
    ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC).timestamp()),
    ("0001-01-01T00:00:00Z", -62135596800.0),
    ("9999-12-31T23:59:59Z", 253402300799.0),
    # A leap second is the last microsecond of its minute, whatever its fraction.
    ("2016-12-31T23:59:60Z", LEAP_2016),
    ("2016-12-31T23:59:60.5Z", LEAP_2016),
    ("2016-12-31t23:59:60z", LEAP_2016),
    ("2016-12-31T15:59:60-08:00", LEAP_2016),  # §5.7: shifted by the offset, the same instant
    ("2017-01-01T07:59:60+08:00", LEAP_2016),
    ("2015-06-30T23:59:60Z", datetime(2015, 6, 30, 23, 59, 59, tzinfo=UTC).timestamp() + 0.999999),
    # Any month end may hold one (§5.7); whether IERS announced it is not the receiver's to know.
    ("2026-11-30T23:59:60Z", datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp() + 0.999999),
])
def test_rfc3339_accepts(raw: str, expected: float) -> None:
    assert parse_ts(raw) == pytest.approx(expected, abs=1e-6)
    out = decode_payload(orjson.dumps({"ts": raw, "metrics": {"pm25": 1}}))
    assert out.rejections == [] and out.observations[0].time == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("raw", "why"), [
    ("20261130T081500Z", "basic format"),
    ("2026-11-30T081500Z", "basic time"),
    ("20261130T08:15:00Z", "basic date"),
    ("2026-W48-1", "week date"),
    ("2026-W48-1T08:15:00Z", "week date-time"),
    ("2026-334", "ordinal date"),
    ("2026-334T08:15:00Z", "ordinal date-time"),
    ("2026-11-30T08:15:00+00", "offset without minutes"),
    ("2026-11-30T08:15:00+0000", "offset without colon"),
    ("2026-11-30T08:15:00+08", "offset without minutes"),
    ("2026-11-30T08:15:00+08:00:00", "offset with seconds"),
    ("2026-11-30T08:15:00", "no offset"),
    ("2026-11-30T08:15:00 Z", "space before Z"),
    ("2026-11-30T08:15:00UTC", "zone name"),
    ("2026-11-30 08:15:00Z", "space separator: not agreed in the contract"),
    ("2026-11-30 08:15:00+00:00", "space separator (Python's str(datetime))"),
    ("2026-11-30_08:15:00Z", "other separator"),
    ("2026-11-30T08:15Z", "no seconds"),
    ("2026-11-30", "date only"),
    ("08:15:00Z", "time only"),
    ("2026-11-30T08:15:00.Z", "empty fraction"),
    ("2026-11-30T08:15:00,5Z", "comma fraction"),
    ("2026-13-01T00:00:00Z", "month 13"),
    ("2026-00-10T00:00:00Z", "month 0"),
    ("2026-11-00T00:00:00Z", "day 0"),
    ("2026-11-31T00:00:00Z", "30 November is the last"),
    ("2026-02-29T00:00:00Z", "not a leap year"),
    ("2026-11-30T24:00:00Z", "hour 24"),
    ("2026-11-30T08:60:00Z", "minute 60"),
    ("2026-11-30T08:15:61Z", "second 61"),
    ("2026-11-30T08:15:60Z", "leap second not at 23:59 UTC"),
    ("2026-11-29T23:59:60Z", "leap second not on a month's last day"),
    ("2016-12-31T23:59:60+08:00", "leap second at 15:59:60Z"),
    ("2026-11-30T08:15:00+24:00", "offset hour 24"),
    ("2026-11-30T08:15:00+08:60", "offset minute 60"),
    ("2026-1-30T08:15:00Z", "one-digit month"),
    ("+2026-11-30T08:15:00Z", "signed year"),
    ("12026-11-30T08:15:00Z", "five-digit year"),
    ("\uff12\uff10\uff12\uff16-11-30T08:15:00Z", "full-width digits"),
    (" 2026-11-30T08:15:00Z", "leading space"),
    ("2026-11-30T08:15:00Z\n", "trailing newline"),
    ("2026-11-30T08:15:00.5+08:00x", "trailing text"),
    ("", "empty"),
])
def test_rfc3339_refuses(raw: str, why: str) -> None:
    out = decode_payload(orjson.dumps({"ts": raw, "metrics": {"pm25": 1}}))
    assert out.observations == [], why  # the reading is not stored at a guessed time …
    [rejection] = out.rejections  # … but quarantined, saying why
    assert rejection.reason is Reason.INVALID_SCHEMA, why
    assert "is not RFC 3339" in rejection.detail, why


@pytest.mark.parametrize("raw", [
    "0000-01-01T00:00:00Z",  # RFC 3339 allows year 0000; there is no reading from then
    "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00:00Z
    "9999-12-31T23:59:59-01:00",  # 10000-01-01T00:59:59Z
])
def test_rfc3339_beyond_years_1_to_9999_is_out_of_window(raw: str) -> None:
    [rejection] = decode_payload(orjson.dumps({"ts": raw, "metrics": {"pm25": 1}})).rejections
    assert rejection.reason is Reason.TIMESTAMP_OUT_OF_WINDOW
    assert "outside years 1-9999" in rejection.detail


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


# Duplicate member names: orjson would keep the last silently, so the whole payload is refused.
@pytest.mark.parametrize(("payload", "key"), [
    (b'{"metrics": {"pm25": 1, "pm25": 2}}', "pm25"),
    (b'{"metrics": {"pm25": 1, "pm25": 1}}', "pm25"),  # even the same value: the sender is confused
    (b'{"metrics": {"pm25": 1}, "metrics": {"pm10": 2}}', "metrics"),
    (b'{"ts": 1795744800, "ts": "2026-11-27T02:00:00Z", "metrics": {"pm25": 1}}', "ts"),
    (b'{"metrics": {"pm25": 1}, "meta": {"a": {"b": 1, "b": 1}}}', "b"),  # anywhere in the document
    (b'[{"metrics": {"pm25": 1}}, {"ts": 1, "metrics": {"pm10": 1, "pm10": 2}}]', "pm10"),
    (b'[{"n": "pm25", "v": 1, "v": 2}]', "v"),
    (b'[{"bn": "a/", "bn": "b/", "n": "pm25", "v": 1}]', "bn"),
    (b'{"metrics": {"pm25": 1, "pm\\u0032\\u0035": 2}}', "pm25"),  # the same name once unescaped
    (b'{"metrics": {"pm25": 1, "pm25": 2}, "x": "\\u003a"}', "pm25"),  # an escaped colon offsets the count
    (b'{"metrics": {"pm25": 1, "pm25": 2}, "pad": "::"}', "pm25"),
    (b'{"metrics": {"pm25": NaN, "pm25": 1}}', "pm25"),  # the stdlib fallback path
    (b'{"metrics": {"pm25": 1, "pm25": 18446744073709551616}}', "pm25"),  # beyond orjson's writer
])
def test_duplicate_members_are_refused_naming_the_key(payload: bytes, key: str) -> None:
    out = decode_payload(payload)
    assert out.observations == []
    assert [r.reason for r in out.rejections] == [Reason.INVALID_JSON]
    assert f"duplicate member {key!r}" in out.rejections[0].detail


@pytest.mark.parametrize("payload", [
    b'{"ts": "2026-11-27T10:00:00+08:00", "fw": "a:b:c", "metrics": {"pm25": 1}}',
    b'{"note": "a\\u003ab", "metrics": {"pm25": 1}}',
    b'{"note": "a\\"b:", "metrics": {"pm25": 1}}',
    b'{"metrics": {"pm25": 1}, "meta": {"metrics": {"pm25": 2}}}',  # one name in two objects
    b'[{"metrics": {"pm25": 1}}, {"metrics": {"pm25": 2}}]',
    b'{"metrics" : {"pm25" :1}}',
])
def test_colons_and_escapes_without_duplicates_still_decode(payload: bytes) -> None:
    out = decode_payload(payload)
    assert out.rejections == [] and out.observations
    assert out.observations[0] == Observation(out.observations[0].time, "pm25", 1)


@pytest.mark.parametrize(("payload", "one_per_metric"), [
    (b'{"metrics": {"pm25": 1, "pm10": 2}}', True),  # one object: its members are unique
    (b'[{"metrics": {"pm25": 1}}, {"metrics": {"pm25": 2}}]', False),  # a batch may repeat one
    (b'[{"n": "pm25", "v": 1}, {"n": "pm25", "v": 2}]', False),  # so may a SenML pack
    (b'{"metrics": {"pm25": 1}, "metrics": {"pm25": 2}}', False),  # refused, nothing to validate
])
def test_only_a_single_observation_promises_one_value_per_metric(payload: bytes,
                                                                 one_per_metric: bool) -> None:
    assert decode_payload(payload, received_at=1.8e9).one_per_metric is one_per_metric
