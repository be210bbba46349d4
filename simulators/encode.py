"""Device readings → telemetry payload bytes in the contract's formats: json, batch and SenML (RFC 8428).

A *sample* is what a device read at one moment: ``(epoch seconds, {metric: value})``. Times are
written to the millisecond and values to three decimals (``lamp_on`` as an integer), the same
way in every format, so `encoded_time_ms` and `encoded_value` tell exactly what ingest will
decode — the fault ledger relies on that to predict the stored rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

import orjson

from smartcity.contract import MAX_BATCH, MAX_PAYLOAD_BYTES, SENML_CONTENT_TYPE

__all__ = [
    "FORMATS",
    "SENML_CONTENT_TYPE",
    "Format",
    "Sample",
    "chunk_samples",
    "content_type",
    "encode_messages",
    "encode_observation",
    "encode_payload",
    "encoded_time_ms",
    "encoded_value",
]

Format = Literal["json", "batch", "senml"]
FORMATS: tuple[Format, ...] = ("json", "batch", "senml")
Sample = tuple[float, Mapping[str, float]]
_INTEGER_METRICS = frozenset({"lamp_on"})  # a 0/1 switch reads better as 0/1 than 0.0/1.0


def encoded_time_ms(ts: float) -> int:
    """Return epoch milliseconds as every format writes ``ts`` (epoch seconds)."""
    return round(ts * 1000)


def encoded_value(metric: str, value: float) -> float:
    """Return ``value`` as the payload carries it: three decimals, ``lamp_on`` an integer."""
    return int(value) if metric in _INTEGER_METRICS else round(value, 3)


def content_type(fmt: Format) -> str | None:
    """Return the MQTT v5 content type to publish ``fmt`` with (None: JSON told apart by shape)."""
    return SENML_CONTENT_TYPE if fmt == "senml" else None


@lru_cache(maxsize=256)  # a round stamps the whole fleet with one time: format it once
def _rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def _observation(ts: float, metrics: Mapping[str, float]) -> dict[str, object]:
    return {"ts": _rfc3339(encoded_time_ms(ts)),
            "metrics": {name: encoded_value(name, value) for name, value in metrics.items()}}


def encode_observation(ts: float, metrics: Mapping[str, float]) -> bytes:
    """Return the contract's single-observation JSON for epoch-second ``ts`` and ``metrics``."""
    return orjson.dumps(_observation(ts, metrics))


def _senml_records(device_id: str, samples: Sequence[Sample]) -> Iterator[dict[str, object]]:
    # Base name and base time in the first record only (RFC 8428 §4.1: they carry over); each
    # later sample's time is relative to it, so a pack of many reports stays small.
    base_ms = encoded_time_ms(samples[0][0])
    first = True
    for ts, metrics in samples:
        offset_ms = encoded_time_ms(ts) - base_ms
        for name, value in metrics.items():
            record: dict[str, object] = {}
            if first:
                record.update(bn=f"{device_id}/", bt=base_ms / 1000)
                first = False
            if offset_ms:
                record["t"] = offset_ms / 1000
            record.update(n=name, v=encoded_value(name, value))
            yield record


def _parts(fmt: Format, device_id: str, samples: Sequence[Sample]) -> list[bytes]:
    """Return the encoded array elements of ``samples``: observations, or SenML records."""
    if fmt == "senml":
        return [orjson.dumps(record) for record in _senml_records(device_id, samples)]
    return [orjson.dumps(_observation(ts, metrics)) for ts, metrics in samples]


def encode_payload(fmt: Format, device_id: str, samples: Sequence[Sample]) -> bytes:
    """Encode ``samples`` of ``device_id`` as one message in ``fmt``.

    ``json`` takes exactly one sample; ``batch`` up to 1000; a ``senml`` pack up to 1000 records.

    Raises:
        ValueError: unknown format, no samples, more than one message's worth, or over 64 KiB.
    """
    if fmt not in FORMATS:
        raise ValueError(f"payload format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not samples:
        raise ValueError("nothing to encode: no samples")
    if fmt == "json":
        if len(samples) != 1:
            raise ValueError(f"the json format carries one sample, not {len(samples)}")
        payload = encode_observation(*samples[0])
    else:
        parts = _parts(fmt, device_id, samples)
        if len(parts) > MAX_BATCH:
            raise ValueError(f"{len(parts)} {fmt} elements in one message, limit {MAX_BATCH}")
        payload = b"[" + b",".join(parts) + b"]"
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{len(payload)} bytes in one message, limit {MAX_PAYLOAD_BYTES}")
    return payload


def chunk_samples(fmt: Format, device_id: str, samples: Sequence[Sample]) -> list[list[Sample]]:
    """Split ``samples`` into the fewest messages of ``fmt`` the contract's limits allow.

    ``json`` puts one sample in each; ``batch`` and ``senml`` fill each message up to 1000
    elements and 64 KiB, never splitting one sample across two messages.
    """
    if fmt == "json":
        return [[sample] for sample in samples]
    chunks: list[list[Sample]] = []
    chunk: list[Sample] = []
    elements = size = 0
    for sample in samples:
        # Sized with a stand-alone encoding: exact for batch; for SenML each record may gain a
        # relative time ``"t":…,`` inside a pack, which the per-record allowance covers.
        parts = _parts(fmt, device_id, [sample])
        grow = sum(map(len, parts)) + len(parts) * (1 if fmt == "batch" else 24)
        if chunk and (elements + len(parts) > MAX_BATCH or size + grow + 64 > MAX_PAYLOAD_BYTES):
            chunks.append(chunk)
            chunk, elements, size = [], 0, 0
        chunk.append(sample)
        elements, size = elements + len(parts), size + grow
    if chunk:
        chunks.append(chunk)
    return chunks


def encode_messages(fmt: Format, device_id: str, samples: Sequence[Sample]) -> list[bytes]:
    """Encode ``samples`` in ``fmt`` as the fewest messages the contract's limits allow."""
    return [encode_payload(fmt, device_id, chunk) for chunk in chunk_samples(fmt, device_id, samples)]
