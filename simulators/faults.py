"""Fault injection for simulated devices, and a ledger of what ingest should make of each message.

Faults are switched on by a mapping of fault name → probability per report (``{"spike": 0.01}``),
drawn from each device's own generator, so a seed replays the same faults whatever else runs:

- ``dropout``: the device goes offline for 1-3 reports, keeping its readings, then reconnects
  and sends them as one backfill message (the contract's batch format) before its live report.
- ``stuck``: the sensor repeats its last values for 2-5 reports.
- ``spike``: one value far above the catalogue range (ingest: ``out_of_range``).
- ``clock_skew``: the report's time is off by minutes to hours — into the past, a little into
  the future, or beyond the future window (ingest: ``timestamp_out_of_window``).
- ``duplicate``: the message is sent twice (ingest stores its readings once).
- ``malformed``: the message is garbled: truncated, a stray comma, a non-UTF-8 byte (``invalid_json``).
- ``unknown_metric``: the report carries an extra metric outside the catalogue (``unknown_metric``).

Sensor faults (stuck, spike) shape the readings, also those kept during a dropout; message
faults (clock_skew, duplicate, malformed, unknown_metric) shape live messages only.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from simulators.encode import Format, Sample, chunk_samples, content_type, encode_payload, encoded_value
from simulators.fleet import device_seed
from simulators.scenarios import FAULT_NAMES
from smartcity.catalog import DEVICE_KINDS, METRICS

__all__ = ["FAULT_NAMES", "UNKNOWN_METRICS", "FaultInjector", "Ledger", "Message", "Report",
           "check_faults"]

UNKNOWN_METRICS = ("radon", "battery_voltage", "uv_index", "co2_ppm")
# Uniform draws that set a fault's details (how long, which metric, how far), one each per report.
_DETAILS = ("stuck_for", "spike_metric", "spike_size", "dropout_for", "unknown_name",
            "unknown_value", "skew_band", "skew_size", "garble")
_SKEW_MAX_S = 3 * 3600.0
_SKEW_MARGIN_S = 60.0  # keeps a skew clear of the window's edge, whatever the delivery delay


def check_faults(faults: Mapping[str, float] | None) -> dict[str, float]:
    """Return the enabled faults of ``faults`` (name → probability per report).

    Raises:
        ValueError: a name is not a fault, or a probability is outside [0, 1].
    """
    checked = {}
    for name, probability in (faults or {}).items():
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; faults are {', '.join(FAULT_NAMES)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"fault {name}: probability {probability} is not within [0, 1]")
        if probability > 0:
            checked[name] = float(probability)
    return checked


@dataclass(frozen=True, slots=True)
class Message:
    """A telemetry message to publish, with what ingest should store and quarantine from it."""

    payload: bytes
    content_type: str | None = None
    readings: tuple[tuple[str, int, float], ...] = ()  # (metric, epoch ms, value) to be stored
    quarantined: tuple[str, ...] = ()  # one reason code per part to be quarantined


@dataclass(slots=True)
class Report:
    """What a device does in one round: go offline, come back, and which messages it sends."""

    messages: list[Message] = field(default_factory=list)
    goes_offline: bool = False  # a dropout starts: drop the connection, send nothing
    reconnects: bool = False  # a dropout ends: reconnect; the messages start with the backfill


class Ledger:
    """What ingest should hold after the recorded messages: the readings and quarantine counts.

    Readings are keyed by (device id, metric, epoch ms), so a duplicate counts once, as in the
    database. A message is recorded when handed to MQTT, so the ledger is exact at QoS 1 (at
    QoS 0 a lost connection loses messages it counted). Thread-safe: devices coming back from a
    dropout publish from a network thread.
    """

    def __init__(self) -> None:
        self.readings: dict[tuple[str, str, int], float] = {}
        self.quarantined: Counter[str] = Counter()
        self.messages = 0
        self._lock = threading.Lock()

    def record(self, device_id: str, message: Message) -> None:
        """Note that ``message`` of ``device_id`` went out."""
        with self._lock:
            self.messages += 1
            for metric, time_ms, value in message.readings:
                self.readings[(device_id, metric, time_ms)] = value
            self.quarantined.update(message.quarantined)


@dataclass(slots=True)
class _DeviceState:
    rng: np.random.Generator | None
    used_ms: set[int] = field(default_factory=set)  # report times taken, when they must be unique
    last: dict[str, float] | None = None
    stuck_left: int = 0
    offline_left: int = 0
    kept: list[Sample] = field(default_factory=list)  # readings held back during a dropout


class FaultInjector:
    """Turn each device's readings into the messages it sends, with faults injected at random."""

    def __init__(self, faults: Mapping[str, float] | None, seed: int, *, fmt: Format = "json",
                 expect: bool = False, future_window_s: float = 300.0,
                 past_window_s: float = 400 * 86400.0) -> None:
        """``expect``: work out each message's ingest outcome (and keep report times unique)."""
        self.faults = check_faults(faults)
        self.counts: Counter[str] = Counter({name: 0 for name in FAULT_NAMES})
        self._p = np.array([self.faults.get(name, 0.0) for name in FAULT_NAMES])
        self._seed, self._fmt, self._expect = seed, fmt, expect
        self._content_type = content_type(fmt)
        self._future_s, self._past_s = future_window_s, past_window_s
        self._states: dict[str, _DeviceState] = {}

    def report(self, device_id: str, kind: str, ts: float, values: Mapping[str, float]) -> Report:
        """Return what ``device_id`` (of ``kind``) sends for its readings ``values`` at ``ts``."""
        if not self.faults and not self._expect:  # the common case: one plain message, no state
            return Report([Message(encode_payload(self._fmt, device_id, [(ts, values)]),
                                   self._content_type)])
        state = self._states.get(device_id)
        if state is None:
            rng = np.random.default_rng(device_seed(self._seed, f"{device_id}#faults")) \
                if self.faults else None
            state = self._states[device_id] = _DeviceState(rng)
        if state.rng is None:
            return Report([self._message(device_id, kind, ts, [(self._claim(state, ts) / 1000, values)])])
        return self._faulty_report(state, device_id, kind, ts, dict(values))

    def _faulty_report(self, state: _DeviceState, device_id: str, kind: str, ts: float,
                       values: dict[str, float]) -> Report:
        assert state.rng is not None
        # The same draws for every report, used or not: switching one fault on leaves the
        # others' events where they were.
        draws = state.rng.random(len(FAULT_NAMES) + len(_DETAILS))
        split = len(FAULT_NAMES)
        hit = dict(zip(FAULT_NAMES, (draws[:split] < self._p).tolist(), strict=True))
        u = dict(zip(_DETAILS, draws[split:].tolist(), strict=True))
        if state.stuck_left:
            state.stuck_left -= 1
            values = dict(state.last or values)
            self.counts["stuck"] += 1
        elif hit["stuck"] and state.last is not None:
            state.stuck_left = 1 + int(u["stuck_for"] * 4)  # 2-5 reports in all
            values = dict(state.last)
            self.counts["stuck"] += 1
        state.last = dict(values)
        if hit["spike"]:
            metric = list(values)[int(u["spike_metric"] * len(values))]
            limits = METRICS[metric]
            span = limits.max_value - limits.min_value
            values[metric] = limits.max_value + span * (0.5 + 4.5 * u["spike_size"])
            self.counts["spike"] += 1

        report = Report()
        if state.offline_left or (hit["dropout"] and not state.kept):
            if not state.offline_left:
                state.offline_left = 1 + int(u["dropout_for"] * 3)
                report.goes_offline = True
            state.offline_left -= 1
            state.kept.append((self._claim(state, ts) / 1000, values))
            self.counts["dropout"] += 1
            return report
        if state.kept:  # back from a dropout: everything kept, in one backfill message
            report.reconnects = True
            for chunk in chunk_samples("batch", device_id, state.kept):
                report.messages.append(self._message(device_id, kind, ts, chunk, "batch"))
            state.kept = []

        if hit["unknown_metric"]:
            name = UNKNOWN_METRICS[int(u["unknown_name"] * len(UNKNOWN_METRICS))]
            values[name] = round(100.0 * u["unknown_value"], 3)
            self.counts["unknown_metric"] += 1
        time_ms = round(ts * 1000)
        if hit["clock_skew"]:
            time_ms += round(self._skew_s(u["skew_band"], u["skew_size"]) * 1000)
            self.counts["clock_skew"] += 1
        message = self._message(device_id, kind, ts, [(self._claim_ms(state, time_ms) / 1000, values)])
        if hit["malformed"]:
            message = Message(_garble(message.payload, int(u["garble"] * 3)), message.content_type,
                              quarantined=("invalid_json",))
            self.counts["malformed"] += 1
        report.messages.append(message)
        if hit["duplicate"]:
            report.messages.append(message)
            self.counts["duplicate"] += 1
        return report

    def _skew_s(self, band: float, size: float) -> float:
        """Return a clock error: into the past, a little into the future, or beyond the window."""
        near_future = self._future_s - _SKEW_MARGIN_S
        if band < 1 / 3 and near_future > _SKEW_MARGIN_S:
            return _SKEW_MARGIN_S + size * (near_future - _SKEW_MARGIN_S)
        if band < 2 / 3:
            return self._future_s + 5 * _SKEW_MARGIN_S + size * (_SKEW_MAX_S - 5 * _SKEW_MARGIN_S)
        return -(_SKEW_MARGIN_S + size * (_SKEW_MAX_S - _SKEW_MARGIN_S))

    def _claim(self, state: _DeviceState, ts: float) -> int:
        return self._claim_ms(state, round(ts * 1000))

    def _claim_ms(self, state: _DeviceState, time_ms: int) -> int:
        """Return ``time_ms``, moved on to a free millisecond when the ledger is kept.

        Two reports of a device at the same instant (a skewed clock landing on another report)
        would be one row in the database, which the ledger could not predict.
        """
        if self._expect:
            while time_ms in state.used_ms:
                time_ms += 1
            state.used_ms.add(time_ms)
        return time_ms

    def _message(self, device_id: str, kind: str, sent_at: float, samples: list[Sample],
                 fmt: Format | None = None) -> Message:
        """Encode ``samples`` as one message sent at ``sent_at``; work out what ingest keeps."""
        fmt = fmt or self._fmt
        payload = encode_payload(fmt, device_id, samples)
        ctype = content_type(fmt)
        if not self._expect:
            return Message(payload, ctype)
        stored: list[tuple[str, int, float]] = []
        rejected: list[str] = []
        allowed = DEVICE_KINDS[kind].metrics
        earliest, latest = sent_at - self._past_s, sent_at + self._future_s
        for ts, metrics in samples:
            ms = round(ts * 1000)
            for metric, raw in metrics.items():
                # The validator's order: metric, then range, then time window.
                value = encoded_value(metric, raw)
                if metric not in allowed:
                    rejected.append("unknown_metric")
                elif not METRICS[metric].in_range(value):
                    rejected.append("out_of_range")
                elif not earliest <= ms / 1000 <= latest:
                    rejected.append("timestamp_out_of_window")
                else:
                    stored.append((metric, ms, float(value)))
        return Message(payload, ctype, tuple(stored), tuple(rejected))


def _garble(payload: bytes, how: int) -> bytes:
    """Return ``payload`` made invalid JSON: cut in half, a stray comma, or a byte that is not UTF-8."""
    if how == 0:
        return payload[:len(payload) // 2]  # a strict prefix of an object or array never parses
    if how == 1:
        return payload[:-1] + b",," + payload[-1:]
    return b"\xff" + payload
