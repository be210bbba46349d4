"""`smartcity bench ingest`: histogram quantiles as PromQL computes them, the MQTT wire encoding, and a
small end-to-end run on its own embedded stack."""

from __future__ import annotations

import math
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from smartcity.bench import IngestBenchConfig, run_ingest_bench
from smartcity.bench.prometheus import Histogram as Buckets
from smartcity.bench.prometheus import histogram_quantile, merge_snapshots, parse_exposition
from smartcity.bench.wire import encode_publish, encode_varint
from smartcity.cli import main
from smartcity.settings import Settings
from tests.services import leftover_bench_stacks

INF = math.inf
# 10 observations ≤ 0.1 s, 50 in (0.1, 0.3], 30 in (0.3, 1], 10 above 1 s.
HAND_MADE = [(0.1, 10.0), (0.3, 60.0), (1.0, 90.0), (INF, 100.0)]


@pytest.mark.parametrize(("q", "expected"), [
    (0.05, 0.05),  # first bucket: interpolated from 0
    (0.1, 0.1),
    (0.5, 0.26),  # rank 50: 40 of the 50 in (0.1, 0.3] → 0.1 + 0.2 × 40/50
    (0.75, 0.65),  # rank 75: 15 of 30 in (0.3, 1] → 0.3 + 0.7 × 15/30
    (0.9, 1.0),
    (0.95, 1.0),  # in the +Inf bucket: the largest finite bound
    (0.99, 1.0),
])
def test_histogram_quantile_interpolates_within_buckets_like_prometheus(q: float, expected: float) -> None:
    assert histogram_quantile(q, HAND_MADE) == pytest.approx(expected)


def test_histogram_quantile_edge_cases() -> None:
    assert math.isnan(histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]))  # no observations
    assert math.isnan(histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]))  # no +Inf bucket
    assert histogram_quantile(-0.1, HAND_MADE) == -INF
    assert histogram_quantile(1.1, HAND_MADE) == INF
    assert histogram_quantile(0.5, list(reversed(HAND_MADE))) == pytest.approx(0.26)  # order-free


def test_quantile_of_scraped_histograms_merged_over_workers() -> None:
    texts = []
    for observations in ([0.02] * 50, [0.2] * 40 + [2.0] * 10):
        registry = CollectorRegistry()
        delay = Histogram("smartcity_ingest_reading_delay_seconds", "delay", registry=registry,
                          buckets=(0.01, 0.05, 0.1, 0.3, 1.0, 5.0))
        for value in observations:
            delay.observe(value)
        texts.append(generate_latest(registry).decode())
    merged = merge_snapshots(parse_exposition(t) for t in texts)
    hist = merged.histogram("smartcity_ingest_reading_delay_seconds")
    assert hist.count == 100
    assert hist.buckets[0] == (0.01, 0.0) and hist.buckets[-1] == (INF, 100.0)
    # rank 50 is the last of the 50 in (0.01, 0.05]; rank 95 is the 5th of 10 in (1, 5].
    assert hist.quantile(0.5) == pytest.approx(0.05)
    assert hist.quantile(0.95) == pytest.approx(1.0 + 4.0 * 5 / 10)
    assert merged.value("smartcity_ingest_reading_delay_seconds_count") == 100
    with pytest.raises(ValueError, match="bucket bounds"):
        hist.merge(Buckets(((1.0, 1.0), (INF, 1.0))))


def test_publish_packets_are_encoded_per_mqtt5() -> None:
    assert encode_varint(0) == b"\x00" and encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01" and encode_varint(16_383) == b"\xff\x7f"
    packet = encode_publish(b"a/b", b"{}", qos=1, packet_id=258)
    # PUBLISH QoS 1, remaining length 10, topic "a/b", packet id 0x0102, no properties, payload.
    assert packet == b"\x32\x0a\x00\x03a/b\x01\x02\x00{}"
    assert encode_publish(b"t", b"x", qos=0, packet_id=0) == b"\x30\x05\x00\x01t\x00x"


def test_cli_refuses_fewer_devices_than_publishers_before_starting_anything() -> None:
    result = CliRunner().invoke(main, ["bench", "ingest", "--devices", "1", "--publishers", "2"])
    assert result.exit_code == 2 and "one device per publisher" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("client", ["paho", "raw"])
def test_small_run_stores_every_published_reading(client: str, bench_tmpdir: Path) -> None:
    config = IngestBenchConfig(messages=3000, publishers=2, workers=1, devices=20, timeout=60,
                               client=client)  # type: ignore[arg-type]
    settings = Settings(_env_file=None, database_url=None, mqtt_url=None)  # type: ignore[call-arg]
    started = time.monotonic()
    result = run_ingest_bench(config, settings, progress=False)
    assert time.monotonic() - started < 30
    assert result.messages_published == 3000
    assert result.readings_published == 18_000 == result.readings_stored
    assert result.readings_not_stored == 0 and not result.lost and not result.timed_out
    assert result.duplicates_counted == 0 and result.quarantined == 0 and result.errors == []
    assert result.latency_observations == 3000
    assert result.latency_p50 is not None and result.latency_p99 is not None
    assert 0 < result.latency_p50 <= result.latency_p95 <= result.latency_p99  # type: ignore[operator]
    assert result.readings_per_second > 0 and result.cpu_seconds["ingest workers"] > 0
    out = orjson.loads(orjson.dumps(result.to_dict()))
    assert out["readings_stored"] == 18_000 and out["verdict"].startswith("verdict: ")
    assert "bucket-interpolated" in result.to_text()
    assert leftover_bench_stacks(bench_tmpdir) == []  # the temporary stack is removed
