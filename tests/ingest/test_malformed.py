"""A battery of malformed telemetry: each case's reasons, first through routing, then a real worker.

Every case has a topic of its own (mostly a device of its own), so its quarantine rows and stored
readings can be told apart after the whole battery went through one worker. The worker must still
be running afterwards and store a valid message sent last.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.batch import InboundMessage
from ingest.pipeline import IngestWorker
from ingest.rows import route_messages
from ingest.validate import DeviceRef, TimeWindow
from smartcity.broker_url import BrokerAddress
from smartcity.contract import MAX_PAYLOAD_BYTES, Reason, status_topic, telemetry_topic
from smartcity.devices import register_device
from tests.ingest.refusal import REFUSED_VALUE, readings_refusing
from tests.ingest.test_worker import _wait_for_messages
from tests.mqtt import mqtt_publisher

SENML = "application/senml+json"
DAY = 86400.0
WINDOW = TimeWindow(future_s=300, past_s=400 * DAY)  # IngestSettings' defaults
_R = Reason


@dataclass(frozen=True)
class Case:
    """One malformed (or edge) message and what must become of it."""

    name: str
    payload: bytes
    reasons: tuple[Reason, ...] = ()  # quarantine reasons, any order
    stored: dict[str, float] | None = None  # metric → value of each stored reading
    kind: str = "air_quality_station"
    content_type: str | None = None
    topic: str | None = None  # a topic of its own instead of the case device's telemetry topic
    refused: bool = False  # valid, but the database refuses it (a test trigger): storage_rejected

    @property
    def device_id(self) -> str:
        return "bad-" + self.name.replace("_", "-")

    @property
    def target(self) -> str:
        return self.topic or telemetry_topic(self.device_id)

    @property
    def registered(self) -> bool:
        return self.topic is None or self.topic == status_topic(self.device_id)


def _j(document: object) -> bytes:
    return json.dumps(document).encode()


def _obs(ts: object, **metrics: object) -> bytes:
    return _j({"ts": ts, "metrics": metrics})


def build_cases(now: float) -> list[Case]:
    """The battery, with timestamps relative to ``now``."""
    ok = {"pm10": 5.0}
    big = b"1" + b"0" * 400
    return [
        # Not JSON at all.
        Case("empty", b"", (_R.INVALID_JSON,)),
        Case("whitespace_only", b"  \n ", (_R.INVALID_JSON,)),
        Case("truncated_object", b'{"ts": 1, "metrics": {"pm25": ', (_R.INVALID_JSON,)),
        Case("truncated_batch", b'[{"metrics": {"pm25": 1}}, {"metr', (_R.INVALID_JSON,)),
        Case("trailing_garbage", b'{"metrics": {"pm25": 1}} trailing', (_R.INVALID_JSON,)),
        Case("two_documents", b'{"metrics": {"pm25": 1}}{"metrics": {"pm25": 2}}', (_R.INVALID_JSON,)),
        Case("bom_prefixed", b'\xef\xbb\xbf{"metrics": {"pm25": 1}}', (_R.INVALID_JSON,)),
        Case("utf16", '{"metrics": {"pm25": 1}}'.encode("utf-16"), (_R.INVALID_JSON,)),
        Case("invalid_utf8", b'{"metrics": {"pm25": "\xc3\x28"}}', (_R.INVALID_JSON,)),
        Case("binary_garbage", bytes(range(256)), (_R.INVALID_JSON,)),
        Case("random_bytes", random.Random(8428).randbytes(512), (_R.INVALID_JSON,)),
        Case("single_quotes", b"{'metrics': {'pm25': 1}}", (_R.INVALID_JSON,)),
        Case("deep_arrays", b"[" * 10000 + b"]" * 10000, (_R.INVALID_JSON,)),
        Case("deep_objects", b'{"a":' * 10000 + b"1" + b"}" * 10000, (_R.INVALID_JSON,)),
        Case("int_of_5000_digits", b'{"metrics": {"pm25": ' + b"9" * 5000 + b"}}", (_R.INVALID_JSON,)),
        Case("oversized", b'{"metrics": {"pm25": 1}, "pad": "' + b"x" * MAX_PAYLOAD_BYTES + b'"}',
             (_R.PAYLOAD_TOO_LARGE,)),
        # JSON of the wrong shape.
        Case("top_level_number", b"42", (_R.INVALID_SCHEMA,)),
        Case("top_level_null", b"null", (_R.INVALID_SCHEMA,)),
        Case("top_level_string", b'"pm25=1"', (_R.INVALID_SCHEMA,)),
        Case("metrics_list", b'{"metrics": [["pm25", 1]]}', (_R.INVALID_SCHEMA,)),
        Case("metrics_string", b'{"metrics": "pm25=1"}', (_R.INVALID_SCHEMA,)),
        Case("metrics_number", b'{"metrics": 12.5}', (_R.INVALID_SCHEMA,)),
        Case("metrics_null", b'{"metrics": null}', (_R.INVALID_SCHEMA,)),
        Case("metrics_empty", b'{"metrics": {}}', (_R.INVALID_SCHEMA,)),
        Case("metrics_missing", b'{"ts": 1, "pm25": 1}', (_R.INVALID_SCHEMA,)),
        Case("ts_object", _obs({"s": now}, pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_bool", _obs(True, pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_array", _obs([now], pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_without_offset", _obs("2026-11-27T02:00:00", pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_nan", b'{"ts": NaN, "metrics": {"pm25": 1}}', (_R.INVALID_SCHEMA,)),
        # Values of the wrong type: the neighbouring pm10 is still stored.
        Case("value_string", _obs(now, pm25="12", **ok), (_R.INVALID_SCHEMA,), ok),
        Case("value_null", _obs(now, pm25=None, **ok), (_R.INVALID_SCHEMA,), ok),
        Case("value_object", _obs(now, pm25={"v": 1}, **ok), (_R.INVALID_SCHEMA,), ok),
        Case("value_array", _obs(now, pm25=[1, 2], **ok), (_R.INVALID_SCHEMA,), ok),
        Case("value_bool", _obs(now, pm25=True, **ok), (_R.INVALID_SCHEMA,), ok),
        Case("nan_and_infinities", b'{"metrics": {"pm25": NaN, "co": Infinity, "no2": -Infinity, "pm10": 5}}',
             (_R.NON_FINITE,) * 3, ok),
        Case("float_literal_1e309", b'{"metrics": {"pm25": 1e309, "pm10": 5}}', (_R.NON_FINITE,), ok),
        Case("int_literal_400_digits", b'{"metrics": {"pm25": ' + big + b', "co": -' + big + b"}}",
             (_R.OUT_OF_RANGE,) * 2),
        Case("out_of_range", _obs(now, pm25=-1, co=100001, **ok), (_R.OUT_OF_RANGE,) * 2, ok),
        Case("unknown_metrics", _obs(now, radon=3, water_level=1, **ok), (_R.UNKNOWN_METRIC,) * 2, ok),
        Case("lone_surrogate_name", b'{"metrics": {"\\ud800": 1, "pm10": 5}}', (_R.UNKNOWN_METRIC,), ok),
        Case("nul_in_name", b'{"metrics": {"pm\\u0000": 1, "pm10": 5}}', (_R.UNKNOWN_METRIC,), ok),
        # A repeated member name: which value was meant is unknown, so the whole payload is refused.
        Case("duplicate_keys_refused", b'{"metrics": {"pm10": 1, "pm10": 2}}', (_R.INVALID_JSON,)),
        Case("duplicate_metrics_member", b'{"metrics": {"pm25": 1}, "metrics": {"pm10": 2}}',
             (_R.INVALID_JSON,)),
        Case("batch_conflicting_values", _j([{"ts": now - 60, "metrics": {"pm25": 1, "pm10": 5}},
                                             {"ts": now - 60, "metrics": {"pm25": 2}}]),
             (_R.INVALID_SCHEMA,), ok),
        Case("batch_identical_repeat", _j([{"ts": now - 60, "metrics": ok}, {"ts": now - 60, "metrics": ok}]),
             (), ok),
        Case("senml_conflict_without_t",
             _j([{"n": "pm25", "v": 1}, {"n": "pm25", "v": 2}, {"n": "pm10", "v": 5}]),
             (_R.INVALID_SCHEMA,), ok),
        Case("senml_bver_5", _j([{"bver": 5, "n": "pm10", "v": 5}]), (), ok),
        Case("senml_vb_for_pm25", _j([{"n": "pm25", "vb": True}, {"n": "pm10", "v": 5}]),
             (_R.INVALID_SCHEMA,), ok),
        Case("senml_first_record_unnamed", _j([{"bt": now - 10, "v": 1}, {"n": "pm10", "v": 5}]),
             (_R.INVALID_SCHEMA,), ok),
        Case("ts_space_separator", _obs("2026-11-27 02:00:00Z", pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_iso8601_basic", _obs("20261127T020000Z", pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_offset_without_colon", _obs("2026-11-27T10:00:00+0800", pm25=1), (_R.INVALID_SCHEMA,)),
        Case("ts_lower_case",
             _obs(datetime.fromtimestamp(now - 60, UTC).strftime("%Y-%m-%dt%H:%M:%S.%fz"), pm10=5), (), ok),
        # Timestamps (window: 300 s ahead, 400 days back).
        Case("future_1h", _obs(now + 3600, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("future_6min", _obs(now + 360, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("future_2min_is_fine", _obs(now + 120, pm10=1), (), {"pm10": 1.0}),
        Case("ancient_401_days", _obs(now - 401 * DAY, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("epoch_1970", _obs(1, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("epoch_ms_now", _obs(int(now * 1000), pm10=3), (), {"pm10": 3.0}),
        Case("epoch_us_now", _obs(int(now * 1e6), pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("ms_edge_below_1e11_is_seconds", _obs(99999999999, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("ms_edge_above_1e11_is_1973", _obs(100000000001, pm25=1), (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("ts_1e30", b'{"ts": 1e30, "metrics": {"pm25": 1}}', (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("ts_400_digits", b'{"ts": ' + big + b', "metrics": {"pm25": 1}}', (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        # Batches.
        Case("batch_over_1000", b"[" + b",".join([b'{"metrics": {"pm25": 1}}'] * 1001) + b"]",
             (_R.INVALID_SCHEMA,)),
        Case("batch_empty", b"[]", (_R.INVALID_SCHEMA,)),
        Case("batch_nested", b'[[{"metrics": {"pm25": 1}}]]', (_R.INVALID_SCHEMA,)),
        Case("batch_mixed", _j([{"ts": now - 60, "metrics": ok}, {"metrics": 5}, "x",
                                {"ts": now + 3600, "metrics": {"pm25": 1}}]),
             (_R.INVALID_SCHEMA, _R.INVALID_SCHEMA, _R.TIMESTAMP_OUT_OF_WINDOW), ok),
        # SenML.
        Case("senml_ppm_for_particulates", _j([{"n": "pm25", "u": "ppm", "v": 1}, {"n": "pm10", "v": 5}]),
             (_R.UNIT_MISMATCH,), ok),
        Case("senml_unknown_unit", _j([{"n": "co", "u": "furlong", "v": 1}]), (_R.UNIT_MISMATCH,)),
        Case("senml_unit_not_a_string", _j([{"n": "co", "u": 7, "v": 1}]), (_R.INVALID_SCHEMA,)),
        Case("senml_missing_value", _j([{"n": "pm25"}, {"n": "pm10", "v": 5}]), (_R.INVALID_SCHEMA,), ok),
        Case("senml_v_and_vb", _j([{"n": "pm25", "v": 1, "vb": True}]), (_R.INVALID_SCHEMA,)),
        Case("senml_string_value", _j([{"n": "pm25", "vs": "high"}]), (_R.INVALID_SCHEMA,)),
        Case("senml_bver_11", _j([{"bver": 11, "n": "pm25", "v": 1}, {"n": "pm10", "v": 5}]),
             (_R.INVALID_SCHEMA,) * 2),
        Case("senml_bad_base_time", _j([{"bt": "now", "n": "pm25", "v": 1}]), (_R.INVALID_SCHEMA,)),
        Case("senml_no_name", _j([{"bn": "urn:dev:ow:10e2073a01080063", "v": 1}]), (_R.INVALID_SCHEMA,)),
        Case("senml_must_understand_field", _j([{"n": "pm25", "v": 1, "x_": 1}]), (_R.INVALID_SCHEMA,)),
        Case("senml_nan_value", b'[{"n": "pm25", "v": NaN}, {"n": "pm10", "v": 5}]', (_R.NON_FINITE,), ok),
        Case("senml_unknown_metric", _j([{"n": "radon", "u": "Bq", "v": 1}]), (_R.UNKNOWN_METRIC,)),
        Case("senml_relative_times", _j([{"n": "pm25", "v": 7, "t": -60}, {"bt": -30, "n": "pm10", "v": 5}]),
             (), {"pm25": 7.0, "pm10": 5.0}),
        Case("senml_relative_future_1h", _j([{"n": "pm25", "v": 1, "t": 3600}]),
             (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("senml_relative_401_days_ago", _j([{"n": "pm25", "v": 1, "t": -401 * DAY}]),
             (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("senml_absolute_future_1h", _j([{"bt": now + 3600, "n": "pm25", "v": 1}]),
             (_R.TIMESTAMP_OUT_OF_WINDOW,)),
        Case("senml_over_1000_records", b"[" + b",".join([b'{"n": "pm25", "v": 1}'] * 1001) + b"]",
             (_R.INVALID_SCHEMA,)),
        Case("senml_array_via_content_type", b'[{"metrics": {"pm25": 1}}]', (_R.INVALID_SCHEMA,),
             content_type=SENML),
        Case("senml_object_via_content_type", b'{"n": "pm25", "v": 1}', (_R.INVALID_SCHEMA,),
             content_type=SENML),
        Case("senml_weather_units", _j([
            {"bn": "ws/", "bt": now - 10, "bu": "K", "n": "temperature", "v": 300},
            {"n": "pressure", "u": "Pa", "v": 101325},
            {"n": "wind_speed", "u": "km/h", "v": 36},
            {"n": "temperature", "v": 400}]),
             (_R.OUT_OF_RANGE,), {"temperature": 26.85, "pressure": 1013.25, "wind_speed": 10.0},
             kind="weather_station", content_type=SENML),
        Case("senml_street_light", _j([
            {"n": "lamp_on", "vb": True}, {"n": "lamp_power", "u": "kW", "v": 0.08},
            {"n": "lamp_on", "vb": "yes"}]),
             (_R.INVALID_SCHEMA,), {"lamp_on": 1.0, "lamp_power": 80.0}, kind="street_light"),
        Case("senml_gases_in_ppm", _j([{"bu": "ppm", "n": "co", "v": 1}, {"n": "no2", "u": "ppb", "v": 50}]),
             (), {"co": 28.01 * 1000 / 24.45, "no2": 50 * 46.0055 / 24.45}),
        # Topics the worker subscribes to, with ids or payloads it must refuse. A topic that names
        # no valid device id is no channel of the contract: the payload is not even looked at.
        Case("topic_upper_case_id", _obs(now, pm25=1), (_R.INVALID_TOPIC,),
             topic="smartcity/v1/devices/UPPER/telemetry"),
        Case("topic_too_short_id", _obs(now, pm25=1), (_R.INVALID_TOPIC,),
             topic="smartcity/v1/devices/x/telemetry"),
        Case("topic_non_ascii_id", _obs(now, pm25=1), (_R.INVALID_TOPIC,),
             topic="smartcity/v1/devices/sensör-01/telemetry"),
        Case("topic_empty_id", _obs(now, pm25=1), (_R.INVALID_TOPIC,),
             topic="smartcity/v1/devices//telemetry"),
        Case("topic_id_too_long_status", b"online", (_R.INVALID_TOPIC,),
             topic="smartcity/v1/devices/" + "a" * 65 + "/status"),
        # Valid to ingest, refused by the database (a trigger on readings): quarantined alone.
        Case("refused_by_database", _obs(now, pm10=REFUSED_VALUE, pm25=1), (_R.STORAGE_REJECTED,),
             refused=True),
        Case("unknown_device", _obs(now, pm25=1), (_R.UNKNOWN_DEVICE,),
             topic="smartcity/v1/devices/bad-never-registered/telemetry"),
        Case("status_payload", b"maybe", (_R.INVALID_SCHEMA,), topic=status_topic("bad-status-payload")),
    ]


_CASES = build_cases(time.time())


def _lookup(cases: list[Case]) -> dict[str, DeviceRef]:
    return {c.device_id: DeviceRef(i + 1, c.device_id, c.kind) for i, c in enumerate(cases) if c.registered}


@pytest.mark.parametrize("case", _CASES, ids=lambda c: c.name)
def test_case_routes_to_its_reasons(case: Case) -> None:
    now = time.time()
    case = next(c for c in build_cases(now) if c.name == case.name)  # fresh timestamps
    devices = _lookup([case])
    message = InboundMessage(case.target, case.payload, now, content_type=case.content_type)
    rows = route_messages([message], devices.get, WINDOW)
    routed = Counter(r for r in case.reasons if r is not Reason.STORAGE_REJECTED)
    assert len(rows.quarantine) == (1 if routed else 0)  # one item per message, all parts in it
    assert Counter(r.reason for q in rows.quarantine for r in q.rejections) == routed
    assert all(q.summary() and q.payload == case.payload for q in rows.quarantine)
    assert len(rows.readings) == (2 if case.refused else len(case.stored or {}))


def test_battery_is_large_and_reaches_every_reason() -> None:
    assert len(_CASES) >= 40
    assert len({c.target for c in _CASES}) == len(_CASES)  # quarantine rows are matched by topic
    assert {r for c in _CASES for r in c.reasons} == set(Reason)


@pytest.mark.parametrize("topic", [
    "smartcity/v1/devices/bad-extra-level/telemetry/extra",
    "smartcity/v1/devices/bad-dot-dot/../telemetry",
    "smartcity/v1/devices/bad-trailing/telemetry/",
    "smartcity/v1/devices/bad-case/Telemetry",
    "smartcity/v1/devices//telemetry",
    "smartcity/v1/devices/bad-no-channel",
    "smartcity/v2/devices/bad-version/telemetry",
    "smartcity/v1/devices/UPPER/telemetry",
    "smartcity/v1/devices/x/telemetry",
    "smartcity/v1/devices/" + "a" * 65 + "/telemetry",
    "devices/bad-prefix/telemetry",
])
def test_topics_that_are_no_channel_are_quarantined_as_invalid_topic(topic: str) -> None:
    message = InboundMessage(topic, b'{"metrics": {"pm25": 1}}', time.time())
    rows = route_messages([message], lambda _: DeviceRef(1, "bad-extra-level", "air_quality_station"), WINDOW)
    assert [q.reason for q in rows.quarantine] == [Reason.INVALID_TOPIC]
    assert rows.quarantine[0].device_id is None and rows.readings == [] and rows.last_seen == {}


def test_the_platforms_commands_channel_is_ignored_not_quarantined() -> None:
    message = InboundMessage("smartcity/v1/devices/bad-commands/commands", b'{"lamp_on": 1}', time.time())
    rows = route_messages([message], lambda _: DeviceRef(1, "bad-commands", "street_light"), WINDOW)
    assert (rows.quarantine, rows.readings, rows.statuses, rows.last_seen) == ([], [], [], {})


@pytest.mark.slow
def test_worker_survives_the_battery_and_quarantines_each_case(
        worker: IngestWorker, db: psycopg.Connection, gateway: BrokerAddress) -> None:
    cases = build_cases(time.time())
    for case in cases:
        if case.registered:
            register_device(db, case.device_id, case.kind, "tanah-grogot")
    register_device(db, "bad-final-valid", "air_quality_station", "kuaro")

    with readings_refusing(db) as refusal, mqtt_publisher(gateway) as client:
        for case in cases:
            properties = None
            if case.content_type is not None:
                properties = Properties(PacketTypes.PUBLISH)
                properties.ContentType = case.content_type
            client.publish(case.target, case.payload, qos=1,
                           properties=properties).wait_for_publish(timeout=5)
        client.publish(telemetry_topic("bad-final-valid"), b'{"metrics": {"pm25": 9}}',
                       qos=1).wait_for_publish(timeout=5)
        _wait_for_messages(worker, len(cases) + 1)

    assert worker._thread.is_alive()
    final = db.execute("SELECT r.value FROM readings r JOIN devices d ON d.id = r.device"
                       " WHERE d.device_id = 'bad-final-valid'").fetchall()
    assert final == [(9.0,)]
    quarantined: dict[str, Counter[str]] = {}
    for topic, detail, by_reason in db.execute(
            "SELECT topic, detail, parts->'by_reason' FROM quarantine").fetchall():
        assert detail and topic not in quarantined  # one row per message
        quarantined[topic] = Counter(by_reason)
    refused = db.execute("SELECT detail FROM quarantine WHERE reason = 'storage_rejected'").fetchone()
    assert refused is not None and refusal in refused[0]
    stored: dict[str, dict[str, float]] = {}
    for device_id, metric, value in db.execute(
            "SELECT d.device_id, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device"
            " JOIN metrics m ON m.metric_id = r.metric").fetchall():
        stored.setdefault(device_id, {})[metric] = value
    for case in cases:
        assert quarantined.get(case.target, Counter()) == Counter(r.value for r in case.reasons), case.name
        assert stored.get(case.device_id, {}) == pytest.approx(case.stored or {}), case.name
    assert sum(sum(c.values()) for c in quarantined.values()) == sum(len(c.reasons) for c in cases)
    assert worker.counters.quarantined == sum(len(c.reasons) for c in cases)
