"""Payload encoding: each format decodes through ingest into exactly the readings encoded."""

from __future__ import annotations

import orjson
import pytest

from ingest.decode import decode_payload
from simulators.encode import (
    FORMATS,
    Format,
    Sample,
    chunk_samples,
    content_type,
    encode_messages,
    encode_observation,
    encode_payload,
    encoded_time_ms,
    encoded_value,
)
from smartcity.contract import MAX_BATCH, MAX_PAYLOAD_BYTES, SENML_CONTENT_TYPE

T0 = 1_790_000_000.1234
SAMPLES: list[Sample] = [
    (T0, {"pm25": 12.34567, "pm10": 30.0, "co": 512.0004}),
    (T0 + 10.5, {"pm25": 3.0, "pm10": 0.0, "co": 499.9996}),
    (T0 + 20.0009, {"pm25": 999.9999, "pm10": 2000.0, "co": 0.0}),
]


def _expected(samples: list[Sample]) -> list[tuple[int, str, float]]:
    return [(encoded_time_ms(ts), name, encoded_value(name, value))
            for ts, metrics in samples for name, value in metrics.items()]


def _decoded(fmt: Format, payload: bytes) -> list[tuple[int, str, float]]:
    decoded = decode_payload(payload, content_type(fmt), received_at=T0)
    assert decoded.rejections == []
    return [(round(obs.time * 1000), obs.metric, obs.value) for obs in decoded.observations]


def test_encode_observation_writes_the_contract_single_observation() -> None:
    payload = encode_observation(1_790_000_000.0, {"lamp_on": 1.0, "lamp_power": 87.12345,
                                                   "energy": 1234.5678949})
    assert payload == (b'{"ts":"2026-09-21T14:13:20.000Z",'
                       b'"metrics":{"lamp_on":1,"lamp_power":87.123,"energy":1234.568}}')


@pytest.mark.parametrize("fmt", ["batch", "senml"])
def test_a_multi_sample_format_round_trips_through_the_ingest_decoder(fmt: Format) -> None:
    payload = encode_payload(fmt, "aq-kuaro-01", SAMPLES)
    assert _decoded(fmt, payload) == _expected(SAMPLES)


@pytest.mark.parametrize("sample", SAMPLES)
def test_json_round_trips_one_sample(sample: Sample) -> None:
    payload = encode_payload("json", "aq-kuaro-01", [sample])
    assert _decoded("json", payload) == _expected([sample])
    assert orjson.loads(payload)["ts"].endswith("Z")


def test_senml_is_a_pack_with_base_name_base_time_and_relative_times() -> None:
    records = orjson.loads(encode_payload("senml", "wx-kuaro-01", SAMPLES[:2]))
    assert records[0] == {"bn": "wx-kuaro-01/", "bt": 1_790_000_000.123, "n": "pm25", "v": 12.346}
    assert all("bn" not in record and "bt" not in record for record in records[1:])
    assert [record.get("t", 0) for record in records] == [0, 0, 0, 10.5, 10.5, 10.5]
    assert all(set(record) <= {"bn", "bt", "t", "n", "v"} for record in records)
    assert content_type("senml") == SENML_CONTENT_TYPE
    assert content_type("json") is None and content_type("batch") is None


def test_senml_is_recognised_by_shape_without_a_content_type() -> None:
    payload = encode_payload("senml", "aq-kuaro-01", SAMPLES)
    decoded = decode_payload(payload, None, received_at=T0)
    assert [(round(o.time * 1000), o.metric, o.value) for o in decoded.observations] \
        == _expected(SAMPLES)


def test_lamp_on_is_an_integer_and_values_have_three_decimals() -> None:
    assert encoded_value("lamp_on", 1.0) == 1 and isinstance(encoded_value("lamp_on", 0.0), int)
    assert encoded_value("pm25", 1.23456) == 1.235
    assert encoded_time_ms(1.0004) == 1000 and encoded_time_ms(1.0006) == 1001


@pytest.mark.parametrize(("fmt", "samples"), [
    ("json", []), ("json", SAMPLES[:2]), ("xml", SAMPLES[:1]),
    ("batch", [(T0 + i, {"pm25": 1.0}) for i in range(MAX_BATCH + 1)]),
    ("senml", [(T0 + i, {"pm25": 1.0, "pm10": 2.0}) for i in range(MAX_BATCH // 2 + 1)]),
])
def test_encode_payload_refuses_what_one_message_cannot_carry(fmt: str, samples: list[Sample]) -> None:
    with pytest.raises(ValueError):
        encode_payload(fmt, "aq-kuaro-01", samples)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_encode_messages_splits_within_the_contract_limits_and_loses_nothing(fmt: Format) -> None:
    metrics = {name: 100.0 + i for i, name in
               enumerate(("temperature", "humidity", "pressure", "rainfall", "wind_speed"))}
    samples: list[Sample] = [(T0 + 10 * i, metrics) for i in range(2500)]
    messages = encode_messages(fmt, "wx-tanah-grogot-0001", samples)
    chunks = chunk_samples(fmt, "wx-tanah-grogot-0001", samples)
    assert len(messages) == len(chunks) and sum(map(len, chunks)) == len(samples)
    assert all(len(message) <= MAX_PAYLOAD_BYTES for message in messages)
    if fmt != "json":
        assert len(messages) > 1
    decoded = [item for message in messages for item in _decoded(fmt, message)]
    assert decoded == _expected(samples)
