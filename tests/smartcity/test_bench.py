"""`smartcity bench ingest`: histogram quantiles as PromQL computes them, the MQTT wire encoding, and a
small end-to-end run on its own embedded stack."""

from __future__ import annotations

import math
import time
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from smartcity.bench import IngestBenchConfig, run_ingest_bench
from smartcity.bench.logins import BenchLogins, create_bench_logins
from smartcity.bench.prometheus import Histogram as Buckets
from smartcity.bench.prometheus import histogram_quantile, merge_snapshots, parse_exposition
from smartcity.bench.stack import bench_services
from smartcity.bench.wire import encode_publish, encode_varint
from smartcity.broker_url import parse_broker_url
from smartcity.cli import main
from smartcity.db.connect import connect
from smartcity.launcher import migrate_database
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


# --- broker logins on vs off (issue 11) -------------------------------------------------------------

_OWN_STACK = {"database_url": None, "mqtt_url": None}


def _connack(port: int, username: str | None, password: str | None, client_id: str = "") -> ReasonCode:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    answers: list[ReasonCode] = []
    client.on_connect = lambda c, u, flags, reason, props: answers.append(reason)
    client.connect("127.0.0.1", port)
    try:
        while not answers:
            client.loop(timeout=0.1)  # waits on the socket: the CONNACK ends it
    finally:
        client.disconnect()
    return answers[0]


def test_the_bench_stack_with_auth_lets_in_only_the_run_s_accounts(bench_tmpdir: Path) -> None:
    settings = Settings(_env_file=None, **_OWN_STACK)  # type: ignore[arg-type]
    made: list[BenchLogins] = []

    def prepare(url: str) -> None:
        migrate_database(url)
        with connect(url, purpose="test", autocommit=True) as conn:
            made.append(create_bench_logins(conn, workers=2, publishers=3))

    with bench_services(settings, prepare, broker_auth=True) as services:
        logins = made[0]
        # One account per process, named as the platform names them on its own database.
        assert [w.username for w in logins.workers] == ["smartcity-ingest-1", "smartcity-ingest-2"]
        assert len(set(logins.usernames())) == 2 + 3 + 1
        port = parse_broker_url(services.mqtt_url).port
        for login in (*logins.workers, *logins.publishers, logins.probe):
            assert not _connack(port, login.username, login.password).is_failure, login.username
        for user, password in ((None, None), ("smartcity-ingest-1", logins.workers[1].password),
                               ("someone", logins.probe.password)):
            assert _connack(port, user, password).is_failure, user
        # The worker's URL as the bench gives it to the child, login included.
        url = parse_broker_url(logins.workers[0].url(parse_broker_url(services.mqtt_url)))
        assert (url.username, url.password, url.port) == ("smartcity-ingest-1", logins.workers[0].password,
                                                          port)
    assert leftover_bench_stacks(bench_tmpdir) == []


def test_the_bench_stack_without_auth_takes_anonymous_clients(bench_tmpdir: Path) -> None:
    settings = Settings(_env_file=None, **_OWN_STACK)  # type: ignore[arg-type]
    with bench_services(settings, migrate_database) as services:
        assert not _connack(parse_broker_url(services.mqtt_url).port, None, None).is_failure


@pytest.mark.slow
def test_a_run_with_auth_on_stores_every_reading_through_per_process_logins(bench_tmpdir: Path) -> None:
    config = IngestBenchConfig(messages=2000, publishers=2, workers=2, devices=20, timeout=60, auth=True)
    settings = Settings(_env_file=None, **_OWN_STACK)  # type: ignore[arg-type]
    result = run_ingest_bench(config, settings, progress=False)
    # Two workers and two publishers each held their own login the whole run: a shared login would
    # have kicked one of each pair out (client ids are bound to logins) and lost or delayed readings.
    assert result.readings_published == 12_000 == result.readings_stored
    assert not result.lost and result.errors == [] and result.quarantined == 0
    assert result.config["auth"] is True and "broker logins on" in result.to_text()
    assert leftover_bench_stacks(bench_tmpdir) == []


@pytest.mark.slow
def test_auth_both_runs_off_then_on_and_prints_the_ratio(bench_tmpdir: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "ingest", "--messages", "1000", "--devices", "10",
                                       "--auth", "both", "--json"],
                                env={"SMARTCITY_DATABASE_URL": None, "SMARTCITY_MQTT_URL": None})
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert [r["config"]["auth"] for r in out["off"]] == [False]
    assert [r["config"]["auth"] for r in out["on"]] == [True]
    assert all(r["readings_stored"] == 6000 for r in (*out["off"], *out["on"]))
    rates = out["median_readings_per_second"]
    for side in ("off", "on"):  # one run each: the median is that run's figure
        assert rates[side] == out[side][0]["readings_per_second"]
    assert out["ratio_on_off"] == pytest.approx(rates["on"] / rates["off"], rel=1e-3)
    for side in ("off", "on"):
        # Both figures are rounded in the JSON (the run's p99 to 0.1 ms, the median to 0.1 ms): they
        # may differ by up to 0.1 ms, and a float above that by a hair (143.8 against 143.7 was seen).
        assert out["median_p99_ms"][side] == pytest.approx(out[side][0]["latency_p99"] * 1000, abs=0.15)
    assert len(out["load_average_before"]) == 3 and out["lost"] is False
    assert leftover_bench_stacks(bench_tmpdir) == []


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--runs", "3"], {}, "--runs needs --auth both"),
    (["--auth", "on"], {"SMARTCITY_MQTT_URL": "mqtt://127.0.0.1:1"}, "needs the bench's own broker"),
    (["--auth", "both"], {"SMARTCITY_MQTT_URL": "mqtt://127.0.0.1:1"}, "needs the bench's own broker"),
    (["--auth", "maybe"], {}, "'maybe' is not one of"),
])
def test_the_auth_options_refuse_what_cannot_run_before_starting_anything(
        args: list[str], env: dict[str, str], message: str, bench_tmpdir: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "ingest", "--messages", "10", *args],
                                env={"SMARTCITY_DATABASE_URL": None, "SMARTCITY_MQTT_URL": None, **env})
    assert result.exit_code == 2 and message in result.output, result.output
    assert leftover_bench_stacks(bench_tmpdir) == []  # nothing was started
