"""Haze: the PM2.5 24-hour rule fires for the districts the haze covers, only those, over the
episode's plateau. Silence: a gap in a device's history raises the silence alert `after` into it,
and readings resuming clear it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from tests.alerts.conftest import Clock, Evaluator, transitions
from tests.alerts.history import demo_devices, grid_start, haze_at, refresh_rollups, register, store

START = datetime(2026, 8, 1, tzinfo=UTC)
HAZE_SITES = ("tanah-grogot", "kuaro")
HAZE_START = START + timedelta(days=1)
RAMP, PLATEAU, CLEAR = 1.0, 2.0, 1.0
HAZE_RULES = """
version: 1
rules:
  - id: pm25-24h
    kind: threshold
    title: PM2.5 rata-rata 24 jam tidak sehat
    severity: critical
    select: {kinds: [air_quality_station]}
    metric: pm25
    scope: site
    window: 24h
    op: ">"
    value: 55.4
    hysteresis: 5
    min_coverage: 0.75
  - id: ispu-tidak-sehat
    kind: ispu_category
    title: ISPU tidak sehat
    category: tidak_sehat
    hysteresis: 10
"""


def test_haze_fires_for_the_affected_districts_over_the_plateau(alerts_url: str,
                                                                evaluator: Evaluator) -> None:
    stations = demo_devices("air_quality_station")
    register(alerts_url, stations, START - timedelta(days=1))
    end = START + timedelta(days=6)
    interval = 1800.0
    smoky = [s for s in stations if s.site_id in HAZE_SITES]
    store(alerts_url, smoky, START, end, interval,
          haze_at(HAZE_START, grid_start(START, interval), RAMP, PLATEAU, CLEAR))
    store(alerts_url, [s for s in stations if s.site_id not in HAZE_SITES], START, end, interval)
    refresh_rollups(alerts_url)
    clock = Clock(START + timedelta(hours=1))
    service = evaluator(HAZE_RULES, clock)
    service.cycle()
    clock.now = end
    assert not service.cycle().failed
    plateau_from = HAZE_START + timedelta(days=RAMP)
    plateau_to = plateau_from + timedelta(days=PLATEAU)
    with psycopg.connect(alerts_url) as conn:
        got = transitions(conn)
    assert {subject for _, subject, _, _ in got} == set(HAZE_SITES), got
    for site in HAZE_SITES:
        # the ISPU (24-hour PM2.5 among others, smartcity_site_ispu) reaches Tidak Sehat in the haze
        ispu = [(kind, at) for rule, subject, kind, at in got
                if subject == site and rule == "ispu-tidak-sehat"]
        assert [kind for kind, _ in ispu] == ["firing", "resolved"], ispu
        assert HAZE_START < ispu[0][1] <= plateau_to and plateau_to < ispu[1][1]
        mine = [(kind, at) for rule, subject, kind, at in got if subject == site and rule == "pm25-24h"]
        assert [kind for kind, _ in mine] == ["firing", "resolved"], mine
        (_, fired_at), (_, resolved_at) = mine
        # the 24-hour mean crosses during the ramp or the plateau's first day, holds over the
        # plateau, and falls back after the smoke has cleared from the window
        assert HAZE_START < fired_at <= plateau_from + timedelta(days=1)
        assert plateau_to < resolved_at <= plateau_to + timedelta(days=CLEAR + 1)
        assert fired_at.minute == 0 and resolved_at.minute == 0  # judged at whole hours (24-hour window)


SILENCE_RULES = """
version: 1
rules:
  - id: device-silent
    kind: silence
    title: Perangkat tidak melapor
    select: {kinds: [weather_station], sites: [tanah-grogot]}
    after: 30m
"""


def test_silence_raises_after_the_gap_and_clears_when_readings_resume(alerts_url: str,
                                                                       evaluator: Evaluator) -> None:
    station = demo_devices("weather_station", ["tanah-grogot"])
    register(alerts_url, station, START - timedelta(hours=1))
    gap_from, gap_to = START + timedelta(hours=2), START + timedelta(hours=4)
    store(alerts_url, station, START, gap_from, 60.0)
    store(alerts_url, station, gap_to, START + timedelta(hours=6), 60.0)
    clock = Clock(START + timedelta(minutes=30))
    service = evaluator(SILENCE_RULES, clock)
    for minutes in (90, 150, 200, 260, 360):  # several cycles, as the service runs them
        clock.now = START + timedelta(minutes=minutes)
        assert not service.cycle().failed
    with psycopg.connect(alerts_url) as conn:
        last_before, first_after = conn.execute(
            "SELECT max(time) FILTER (WHERE time < %(g)s), min(time) FILTER (WHERE time >= %(g)s)"
            " FROM readings", {"g": gap_to - timedelta(minutes=30)}).fetchone()
        got = transitions(conn)
    minute = timedelta(minutes=1)
    expected_fire = last_before + timedelta(minutes=30)
    expected_fire += (datetime(1970, 1, 1, tzinfo=UTC) - expected_fire) % minute  # next whole minute
    expected_clear = first_after - (first_after - datetime(1970, 1, 1, tzinfo=UTC)) % minute + minute
    subject = station[0].device_id
    assert got == [("device-silent", subject, "firing", expected_fire),
                   ("device-silent", subject, "resolved", expected_clear)]
