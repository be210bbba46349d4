"""`smartcity bench query`: a small run on its own embedded stack gives the issue's JSON, every figure
positive; the report judges the targets; the catch-up backfill stays within raw retention."""

from __future__ import annotations

import math
import time
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from ingest.rows import Rows
from ingest.write import Writer
from simulators.fleet import demo_fleet
from smartcity.bench.query import QueryBenchConfig, QueryBenchError, _catchup_fleet, run_query_bench
from smartcity.bench.query_report import QueryBenchResult, QueryTiming
from smartcity.catalog import DEVICE_KINDS, METRICS
from smartcity.cli import main
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto
from smartcity.settings import Settings
from tests.services import leftover_bench_stacks

QUERIES = {"device_24h_1m", "fleet_24h_1h", "site_90d_1d"}
PER_MINUTE = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in demo_fleet())


@pytest.mark.slow
def test_small_run_prints_the_issues_json_with_positive_figures(
        monkeypatch: pytest.MonkeyPatch, bench_tmpdir: Path) -> None:
    for name in ("SMARTCITY_DATABASE_URL", "SMARTCITY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(main, ["bench", "query", "--readings", "20000",
                                       "--backfill-readings", "2000", "--runs", "3", "--json"])

    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert set(out) == {"readings", "load_s", "refresh_s", "queries", "catchup_after_1m_backfill_s"}
    # Whole minutes of the fleet: at least the readings asked for, less than a minute more.
    assert 20_000 <= out["readings"] < 20_000 + PER_MINUTE
    assert out["load_s"] > 0 and out["refresh_s"] > 0 and out["catchup_after_1m_backfill_s"] > 0
    assert set(out["queries"]) == QUERIES
    for figures in out["queries"].values():
        assert set(figures) == {"p50_ms", "p95_ms", "raw_p95_ms", "speedup"}
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
        assert figures["raw_p95_ms"] > 0
        assert figures["speedup"] == pytest.approx(figures["raw_p95_ms"] / figures["p95_ms"], abs=0.1)
    assert "without HTTP" in result.stderr
    assert leftover_bench_stacks(bench_tmpdir) == []  # the temporary stack is removed


def _result(p95_ms: float, raw_p95_ms: float, catchup_s: float) -> QueryBenchResult:
    timing = QueryTiming(p50_ms=p95_ms / 2, p95_ms=p95_ms, raw_p95_ms=raw_p95_ms)
    return QueryBenchResult(readings=10_000_000, load_s=60.0, refresh_s=9.0,
                            queries=dict.fromkeys(sorted(QUERIES), timing),
                            catchup_after_1m_backfill_s=catchup_s, backfill_readings=1_000_000)


def test_the_report_judges_each_target() -> None:
    good = _result(p95_ms=4.0, raw_p95_ms=2000.0, catchup_s=1.5)
    assert not any("MISSES" in line for line in good.verdicts())
    assert good.to_dict()["queries"]["site_90d_1d"] == {
        "p50_ms": 2.0, "p95_ms": 4.0, "raw_p95_ms": 2000.0, "speedup": 500.0}

    bad = _result(p95_ms=12.0, raw_p95_ms=600.0, catchup_s=6.0)
    missed = [line for line in bad.verdicts() if "MISSES" in line]
    assert len(missed) == 5  # three p95s, the speedup (50×), the catch-up
    text = bad.to_text()
    assert "without HTTP" in text and "verdict: catch-up 6.00 s MISSES" in text


def test_the_catchup_backfill_goes_into_the_past_only_within_raw_retention() -> None:
    specs = demo_fleet()
    config = QueryBenchConfig(readings=10_000_000, backfill_readings=1_000_000)
    loaded_from = time.time() - math.ceil(10_000_000 / PER_MINUTE) * 60
    assert _catchup_fleet(specs, config, PER_MINUTE, loaded_from) == (specs, True)

    too_old = time.time() - 88 * 86400  # 4 more days of backfill would end 92 days ago
    late, into_past = _catchup_fleet(specs, config, PER_MINUTE, too_old)
    assert not into_past
    assert [s.device_id for s in late] == [f"{s.device_id}-late" for s in specs]
    assert [s.kind for s in late] == [s.kind for s in specs]


def test_cli_refuses_an_empty_run_before_starting_anything() -> None:
    result = CliRunner().invoke(main, ["bench", "query", "--readings", "0"])
    assert result.exit_code == 2 and "--readings" in result.output


def test_a_database_with_demo_readings_is_refused_and_left_as_it_was(
        db: psycopg.Connection, database_url: str, mosquitto: EmbeddedMosquitto) -> None:
    spec = demo_fleet()[0]
    register_device(db, spec.device_id, spec.kind, spec.site_id)
    (key,) = db.execute("SELECT id FROM devices WHERE device_id = %s", (spec.device_id,)).fetchone()
    writer = Writer(database_url)
    try:
        writer.write_rows(Rows(readings=[(time.time(), key, METRICS["pm25"].id, 12.0)]))
    finally:
        writer.close()
    settings = Settings(_env_file=None, database_url=database_url,  # type: ignore[call-arg]
                        mqtt_url=mosquitto.url)

    with pytest.raises(QueryBenchError, match="already holds readings of the demo fleet"):
        run_query_bench(QueryBenchConfig(readings=1000, backfill_readings=100, runs=1), settings,
                        progress=False)
    assert db.execute("SELECT count(*) FROM readings").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (1,)  # the fleet not registered
