"""Fault injection: each fault does what it says, is counted, replays by seed, and the ledger
predicts exactly what ingest's decoder and validator make of every message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import orjson
import pytest

from ingest.batch import InboundMessage
from ingest.decode import decode_payload
from ingest.rows import route_messages
from ingest.validate import DeviceRef, TimeWindow
from simulators.encode import FORMATS, Format, encode_payload
from simulators.faults import (
    FAULT_NAMES,
    UNKNOWN_METRICS,
    FaultInjector,
    Ledger,
    Report,
    check_faults,
)
from simulators.fleet import DeviceSpec, SimulatedDevice, build_fleet
from smartcity.catalog import DEVICE_KINDS, METRICS
from smartcity.contract import telemetry_topic

T0 = 1_790_000_000.0
INTERVAL = 10.0
WINDOW = TimeWindow(300.0, 400 * 86400.0)
FLEET = build_fleet(8, seed=4)  # one device of each kind
ROUNDS = 40


def _play(faults: Mapping[str, float] | None, seed: int = 7, fmt: Format = "json",
          fleet: list[DeviceSpec] = FLEET, rounds: int = ROUNDS
          ) -> tuple[FaultInjector, Ledger, list[list[Report]], list[InboundMessage]]:
    """Run ``rounds`` of ``fleet`` through an injector; return it, the ledger, the reports
    (per round, per device) and the messages as ingest would receive them half a second later."""
    injector = FaultInjector(faults, seed, fmt=fmt, expect=True)
    ledger = Ledger()
    devices = [SimulatedDevice.create(spec, seed) for spec in fleet]
    reports, inbound = [], []
    for number in range(rounds):
        now = T0 + number * INTERVAL
        this_round = []
        for device in devices:
            spec = device.spec
            values = {name: float(v[0]) for name, v in device.sample(np.array([now])).items()}
            report = injector.report(spec.device_id, spec.kind, now, values)
            this_round.append(report)
            for message in report.messages:
                ledger.record(spec.device_id, message)
                inbound.append(InboundMessage(telemetry_topic(spec.device_id), message.payload,
                                              now + 0.5, content_type=message.content_type))
        reports.append(this_round)
    return injector, ledger, reports, inbound


def _ingest(inbound: list[InboundMessage], fleet: list[DeviceSpec] = FLEET
            ) -> tuple[dict[tuple[str, str, int], float], Counter[str]]:
    """Return what ingest's router would store (first copy wins, as in the database) and quarantine."""
    refs = {spec.device_id: DeviceRef(i, spec.device_id, spec.kind) for i, spec in enumerate(fleet)}
    by_key = {ref.id: ref.device_id for ref in refs.values()}
    metric_names = {metric.id: name for name, metric in METRICS.items()}
    stored: dict[tuple[str, str, int], float] = {}
    reasons: Counter[str] = Counter()
    for message in inbound:  # one at a time: the time window is relative to each message
        rows = route_messages([message], refs.get, WINDOW)
        for time, device, metric, value in rows.readings:
            stored.setdefault((by_key[device], metric_names[metric], round(time * 1000)), value)
        reasons.update(r.reason.value for item in rows.quarantine for r in item.rejections)
    return stored, reasons


def _assert_ledger_matches_ingest(ledger: Ledger, inbound: list[InboundMessage]) -> None:
    stored, reasons = _ingest(inbound)
    assert stored == ledger.readings
    assert reasons == ledger.quarantined
    assert ledger.messages == len(inbound)


def test_without_faults_each_report_is_one_plain_message() -> None:
    injector = FaultInjector(None, seed=1, fmt="senml")
    report = injector.report("aq-kuaro-01", "air_quality_station", T0, {"pm25": 1.0})
    assert len(report.messages) == 1 and not (report.goes_offline or report.reconnects)
    assert report.messages[0].payload == encode_payload("senml", "aq-kuaro-01", [(T0, {"pm25": 1.0})])
    assert report.messages[0].content_type == "application/senml+json"
    assert injector.counts == Counter(dict.fromkeys(FAULT_NAMES, 0))


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_faults_the_ledger_expects_every_reading_and_no_quarantine(fmt: Format) -> None:
    injector, ledger, _, inbound = _play(None, fmt=fmt, rounds=5)
    _assert_ledger_matches_ingest(ledger, inbound)
    metrics = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in FLEET)
    assert len(ledger.readings) == 5 * metrics and not ledger.quarantined
    assert sum(injector.counts.values()) == 0


@pytest.mark.parametrize("fault", FAULT_NAMES)
def test_each_fault_alone_is_counted_and_predicted_exactly(fault: str) -> None:
    injector, ledger, _, inbound = _play({fault: 0.2})
    assert injector.counts[fault] > 0
    assert {name for name, n in injector.counts.items() if n} == {fault}
    _assert_ledger_matches_ingest(ledger, inbound)


@pytest.mark.parametrize("fmt", FORMATS)
def test_all_faults_together_are_predicted_exactly_in_every_format(fmt: Format) -> None:
    injector, ledger, _, inbound = _play(dict.fromkeys(FAULT_NAMES, 0.3), fmt=fmt)
    assert all(injector.counts[name] > 0 for name in FAULT_NAMES)
    _assert_ledger_matches_ingest(ledger, inbound)
    assert set(ledger.quarantined) == {"out_of_range", "timestamp_out_of_window", "invalid_json",
                                       "unknown_metric"}


def test_faults_replay_by_seed_and_differ_between_seeds() -> None:
    faults = dict.fromkeys(FAULT_NAMES, 0.2)
    first, second, other = (_play(faults, seed=seed) for seed in (7, 7, 8))
    payloads = [[message.payload for message in run[3]] for run in (first, second, other)]
    assert first[0].counts == second[0].counts and payloads[0] == payloads[1]
    assert payloads[0] != payloads[2]


def test_one_fault_switched_on_leaves_the_others_events_where_they_were() -> None:
    alone = _play({"duplicate": 0.2})[2]
    together = _play({"duplicate": 0.2, "unknown_metric": 0.5})[2]
    twice = [[len(report.messages) for report in round_] for round_ in alone]
    assert twice == [[len(report.messages) for report in round_] for round_ in together]


def _reports_of(reports: list[list[Report]], device: int) -> list[Report]:
    return [round_[device] for round_ in reports]


def test_dropout_goes_offline_then_sends_what_it_kept_as_one_backfill_batch() -> None:
    injector, ledger, reports, inbound = _play({"dropout": 0.1})
    episodes = 0
    for index in range(len(FLEET)):
        series = _reports_of(reports, index)
        for number, report in enumerate(series):
            if not report.goes_offline:
                continue
            back = next((n for n in range(number + 1, len(series)) if series[n].reconnects), None)
            if back is None:  # still offline when the run ended
                continue
            episodes += 1
            assert all(not series[n].messages for n in range(number, back))
            backfill = orjson.loads(series[back].messages[0].payload)
            assert isinstance(backfill, list) and len(backfill) == back - number  # every one kept
            times = [decode_payload(orjson.dumps(element)).observations[0].time
                     for element in backfill]
            assert times == [T0 + n * INTERVAL for n in range(number, back)]
            assert len(series[back].messages) == 2  # the backfill, then the live report
    assert episodes > 0 and injector.counts["dropout"] >= episodes
    _assert_ledger_matches_ingest(ledger, inbound)


def test_stuck_repeats_the_last_values() -> None:
    _, _, reports, _ = _play({"stuck": 0.2}, fmt="json")
    repeats = 0
    for index in range(len(FLEET)):
        metrics = [orjson.loads(r.messages[0].payload)["metrics"] for r in _reports_of(reports, index)]
        repeats += sum(a == b for a, b in zip(metrics, metrics[1:], strict=False))
    assert repeats > 5


def test_spike_puts_one_value_far_above_its_range() -> None:
    injector, ledger, reports, _ = _play({"spike": 0.2})
    spikes = 0
    for round_ in reports:
        for report in round_:
            metrics = orjson.loads(report.messages[0].payload)["metrics"]
            high = [name for name, value in metrics.items() if value > METRICS[name].max_value]
            assert len(high) <= 1
            spikes += len(high)
    assert spikes == injector.counts["spike"] == ledger.quarantined["out_of_range"]


def test_clock_skew_shifts_times_some_beyond_the_future_window() -> None:
    injector, ledger, reports, _ = _play({"clock_skew": 0.3})
    offsets = []
    for number, round_ in enumerate(reports):
        for report in round_:
            ts = decode_payload(report.messages[0].payload).observations[0].time
            if ts != T0 + number * INTERVAL:
                offsets.append(ts - (T0 + number * INTERVAL))
    assert len(offsets) == injector.counts["clock_skew"]
    assert min(offsets) < -60 and max(offsets) > 600  # into the past and beyond the window
    assert any(60 <= offset <= 240 for offset in offsets)  # a little ahead, still stored
    assert ledger.quarantined["timestamp_out_of_window"] > 0


def test_duplicate_sends_the_same_message_twice_and_the_ledger_counts_it_once() -> None:
    injector, ledger, reports, inbound = _play({"duplicate": 0.3})
    doubles = [r for round_ in reports for r in round_ if len(r.messages) == 2]
    assert len(doubles) == injector.counts["duplicate"] > 0
    assert all(r.messages[0] == r.messages[1] for r in doubles)
    assert len(inbound) == len(FLEET) * ROUNDS + len(doubles)
    metrics = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in FLEET)
    assert len(ledger.readings) == ROUNDS * metrics


@pytest.mark.parametrize("fmt", FORMATS)
def test_malformed_messages_are_invalid_json(fmt: Format) -> None:
    injector, ledger, _, inbound = _play({"malformed": 0.3}, fmt=fmt)
    bad = [m for m in inbound if decode_payload(m.payload).rejections]
    assert len(bad) == injector.counts["malformed"] == ledger.quarantined["invalid_json"] > 0
    assert all(decode_payload(m.payload).rejections[0].reason == "invalid_json" for m in bad)


def test_unknown_metric_adds_a_name_outside_the_catalogue() -> None:
    injector, ledger, _, inbound = _play({"unknown_metric": 0.3})
    extra = [o.metric for m in inbound for o in decode_payload(m.payload).observations
             if o.metric not in METRICS]
    assert len(extra) == injector.counts["unknown_metric"] == ledger.quarantined["unknown_metric"]
    assert set(extra) <= set(UNKNOWN_METRICS) and not set(UNKNOWN_METRICS) & set(METRICS)


@pytest.mark.parametrize("faults", [{"typo": 0.1}, {"spike": 1.5}, {"spike": -0.1}])
def test_check_faults_names_the_bad_entry(faults: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(faults))):
        check_faults(faults)


def test_check_faults_keeps_only_enabled_faults() -> None:
    assert check_faults({"spike": 0.0, "stuck": 0.5}) == {"stuck": 0.5}
    assert check_faults(None) == {}
