"""Ninety days of the simulated demo fleet with a Paser haze and a flood, for running the panels' SQL.

The history is stored the way ``smartcity simulate --backfill`` stores it (simulators.backfill):
every 30 minutes for 88 days, then every 10 minutes for the last two. Rollups are refreshed to the
end except the last three hours, which stay pending so the planner's raw path is read too.

The haze (simulators.scenarios.HazeEpisode) covers the air-quality stations of ``HAZE_SITES`` only,
the flood (FloodEvent) every device of ``FLOOD_SITES``; every other device plays ordinary days. So
an alert rule has districts and gauges that must fire and others that must not, at the same time.
Both episodes are placed at absolute times (``haze_plateau``, ``flood_rain``) whatever run of the
backfill samples them: a scenario's episodes count from its run's first sample time.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from ingest.batch import InboundMessage
from ingest.pipeline import route_batch
from ingest.rows import Rows
from ingest.validate import TimeWindow
from ingest.write import Writer
from simulators.backfill import backfill
from simulators.faults import FaultInjector
from simulators.fleet import DeviceSpec, SimulatedDevice, demo_fleet
from simulators.scenarios import SCENARIOS, Scenario
from smartcity.contract import telemetry_topic
from smartcity.db.queries.rollups import REFRESH_ROLLUPS
from smartcity.launcher import register_fleet

__all__ = ["COARSE_S", "END", "FINE_S", "FLOOD_SITES", "HAZE_SITES", "PENDING", "SEED", "ScenarioData",
           "load"]

SEED = 10
END = datetime(2026, 10, 1, tzinfo=UTC)  # the data's end; the dry season, when Kalimantan burns
SPAN = timedelta(days=90)
FINE_SPAN = timedelta(days=2)
PENDING = timedelta(hours=3)  # left unrefreshed: the planner reads these hours raw
COARSE_S = 1800.0
FINE_S = 600.0
HAZE_SITES = ("tanah-grogot", "kuaro")
FLOOD_SITES = ("tanah-grogot", "long-ikis")  # the demo fleet's third gauge, at Kuaro, stays dry
FAULTY_EVERY_S = 6 * 3600.0  # the faulty devices' reports, whose rejected parts go to quarantine
HAZE_START = END - timedelta(days=30)  # ramp 4 d, plateau 6 d, clear 2 d: over 12 days before the end
FLOOD_RAIN_START = END - timedelta(hours=40)  # inside the 10-minute data


@dataclass(frozen=True)
class ScenarioData:
    """What :func:`load` stored, and where its episodes lie."""

    specs: tuple[DeviceSpec, ...]
    readings: int
    haze_plateau: tuple[datetime, datetime]
    flood_rain: tuple[datetime, datetime]
    pending_from: datetime
    quarantined: Counter[str]  # messages quarantined per reason, as the fault injector expects


def _scenario(site_id: str, kind: str, first: float) -> Scenario | None:
    """The episodes a device plays, timed from its run's first sample time ``first``."""
    haze = SCENARIOS["haze"].haze if site_id in HAZE_SITES and kind == "air_quality_station" else None
    flood = SCENARIOS["flood"].flood if site_id in FLOOD_SITES else None
    if haze is None and flood is None:
        return None
    return Scenario(
        "paser-haze-flood", "The haze and flood scenarios placed at fixed times of the history.",
        haze=None if haze is None else replace(haze, start_s=HAZE_START.timestamp() - first),
        flood=None if flood is None else replace(flood, start_s=FLOOD_RAIN_START.timestamp() - first))


def _store(url: str, specs: Sequence[DeviceSpec], start: datetime, end: datetime, interval_s: float) -> int:
    """Backfill ``specs`` from ``start`` to ``end`` (exclusive), each device with its own episodes."""
    first = math.ceil(start.timestamp() / interval_s) * interval_s  # where backfill's grid begins
    groups: dict[str, tuple[Scenario | None, list[DeviceSpec]]] = {}
    for spec in specs:
        scenario = _scenario(spec.site_id, spec.kind, first)
        groups.setdefault(repr(scenario), (scenario, []))[1].append(spec)
    stored = 0
    for scenario, members in groups.values():
        stored += backfill(url, members, SEED, (end - start).total_seconds(), interval_s,
                           scenario=scenario, end=end.timestamp(), progress=False).stored
    return stored


def _quarantine(url: str, specs: Sequence[DeviceSpec]) -> Counter[str]:
    """Route the sensor-faults scenario's reports (one per device every 6 h) as ingest routes them,
    and store what it quarantines; return how many messages the injector expects quarantined for
    each reason (a message rejected for several reasons counts under each, once).

    Only the quarantine is written: the readings these reports carry would duplicate the backfill's.
    """
    injector = FaultInjector(SCENARIOS["sensor-faults"].faults, SEED, expect=True)
    times = np.arange(math.ceil((END - SPAN).timestamp() / FAULTY_EVERY_S) * FAULTY_EVERY_S,
                      END.timestamp(), FAULTY_EVERY_S)
    messages: list[InboundMessage] = []
    expected: Counter[str] = Counter()
    for spec in specs:
        samples = SimulatedDevice.create(spec, SEED).sample(times)
        for i, ts in enumerate(times.tolist()):
            report = injector.report(spec.device_id, spec.kind, ts,
                                     {name: float(values[i]) for name, values in samples.items()})
            for message in report.messages:
                messages.append(InboundMessage(telemetry_topic(spec.device_id), message.payload, ts,
                                               content_type=message.content_type))
                expected.update(set(message.quarantined))  # once per message
    writer = Writer(url)
    try:
        rows = route_batch(writer, messages, TimeWindow(300.0, 400 * 86400.0), threading.Event())
        assert rows is not None
        writer.write_rows(Rows(quarantine=rows.quarantine))
    finally:
        writer.close()
    return expected


def _refresh(conn: psycopg.Connection) -> None:
    """Refresh the rollups until no mark is pending (each call takes a bounded batch of marks)."""
    for _ in range(1000):
        row = conn.execute(REFRESH_ROLLUPS, (100_000,)).fetchone()
        if row is not None and row[0] == 0:
            return
    raise AssertionError("the rollups were still pending after 1000 refreshes")


def load(url: str) -> ScenarioData:
    """Register the demo fleet in the (empty) database at ``url`` and store its history."""
    specs = tuple(demo_fleet())
    register_fleet(url, specs)
    fine_from, pending_from = END - FINE_SPAN, END - PENDING
    readings = _store(url, specs, END - SPAN, fine_from, COARSE_S)
    readings += _store(url, specs, fine_from, pending_from, FINE_S)
    with psycopg.connect(url, autocommit=True) as conn:
        # Statistics first, as autovacuum would gather them a minute later: without them the
        # refresher's per-day joins to readings plan for an empty table and run 5-20 times slower.
        conn.execute("ANALYZE readings")
        _refresh(conn)
    readings += _store(url, specs, pending_from, END, FINE_S)
    quarantined = _quarantine(url, specs)
    plateau_from = HAZE_START + timedelta(days=SCENARIOS["haze"].haze.ramp_days)  # type: ignore[union-attr]
    plateau = (plateau_from,
               plateau_from + timedelta(days=SCENARIOS["haze"].haze.plateau_days))  # type: ignore[union-attr]
    hours = SCENARIOS["flood"].flood.duration_h  # type: ignore[union-attr]
    rain = (FLOOD_RAIN_START, FLOOD_RAIN_START + timedelta(hours=hours))
    return ScenarioData(specs, readings, plateau, rain, pending_from, quarantined)
