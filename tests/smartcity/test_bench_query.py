"""`smartcity bench query`: a small run on its own embedded stack gives the issue's JSON, every figure
positive, and every dashboard panel timed with the slowest named; the report judges the targets; the
catch-up backfill stays within raw retention; the panel history fills exactly the range the dense
data leaves; a panel runs with Grafana's rights and a broken one is named."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from click.testing import CliRunner

from ingest.rows import Rows
from ingest.write import Writer
from simulators.fleet import demo_fleet
from smartcity.bench.panels import PanelBenchError, PanelQuery, load_dashboards, panel_queries, time_panels
from smartcity.bench.query import (
    PANEL_HISTORY_INTERVAL_S,
    QueryBenchConfig,
    QueryBenchError,
    _catchup_fleet,
    _load_panel_history,
    run_query_bench,
)
from smartcity.bench.query_report import PanelTiming, QueryBenchResult, QueryTiming
from smartcity.catalog import DEVICE_KINDS, METRICS
from smartcity.cli import main
from smartcity.devices import register_device
from smartcity.services import EmbeddedMosquitto
from smartcity.settings import Settings
from tests.services import leftover_bench_stacks

QUERIES = {"device_24h_1m", "fleet_24h_1h", "site_90d_1d"}
PER_MINUTE = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in demo_fleet())
DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "json"


def _panel_titles() -> set[str]:
    """Every panel of the committed dashboards as "<file stem>/<title>", read here from the JSON."""
    names = set()
    for path in DASHBOARDS.glob("*.json"):
        board = orjson.loads(path.read_bytes())
        for node in board["panels"]:
            for panel in node.get("panels", []) if node["type"] == "row" else [node]:
                names.add(f"{path.stem}/{panel['title']}")
    return names


@pytest.mark.slow
def test_small_run_prints_the_issues_json_with_positive_figures(
        monkeypatch: pytest.MonkeyPatch, bench_tmpdir: Path) -> None:
    for name in ("SMARTCITY_DATABASE_URL", "SMARTCITY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)

    result = CliRunner().invoke(main, ["bench", "query", "--readings", "20000",
                                       "--backfill-readings", "2000", "--runs", "3",
                                       "--panel-days", "2", "--panel-runs", "2", "--json"])

    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    # Issue 8's keys as they were, and the panel phase's added.
    assert set(out) == {"readings", "load_s", "refresh_s", "queries", "catchup_after_1m_backfill_s",
                        "panels", "slowest_panel", "panel_days", "panel_history_readings",
                        "panel_devices"}
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

    titles = _panel_titles()
    assert len(titles) > 20 and set(out["panels"]) == titles  # every panel of every dashboard
    for figures in out["panels"].values():
        assert set(figures) == {"p50_ms", "p95_ms", "rows"}
        assert 0 < figures["p50_ms"] <= figures["p95_ms"]
        assert figures["rows"] >= 0
    slowest = out["slowest_panel"]
    assert slowest["p95_ms"] == max(f["p95_ms"] for f in out["panels"].values())
    assert out["panels"][slowest["name"]] == {k: slowest[k] for k in ("p50_ms", "p95_ms", "rows")}
    # The demo fleet's PM2.5 in every district over the range reaches the panel (first device: one
    # air-quality station's site), and the fleet list shows all 36 devices.
    assert out["panels"]["environment/PM2.5 per district"]["rows"] > 0
    assert out["panels"]["platform/Devices, longest silent first"]["rows"] == len(demo_fleet())
    # 2 days less the ~2.3 h of 1-minute data, at 15 minutes, for each of the fleet's readings a minute.
    expected = (2 * 86400 - math.ceil(20_000 / PER_MINUTE) * 60 - math.ceil(2_000 / PER_MINUTE) * 60) \
        / PANEL_HISTORY_INTERVAL_S * PER_MINUTE
    assert abs(out["panel_history_readings"] - expected) <= PER_MINUTE
    assert out["panel_days"] == 2 and out["panel_devices"] == "first"
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


@pytest.mark.parametrize(("option", "value"), [("--panel-days", "91"), ("--panel-days", "0"),
                                               ("--panel-runs", "0"), ("--panel-devices", "some")])
def test_cli_refuses_a_bad_panel_option_before_starting_anything(option: str, value: str) -> None:
    result = CliRunner().invoke(main, ["bench", "query", option, value])
    assert result.exit_code == 2 and option in result.output


def test_config_refuses_panel_days_beyond_raw_retention() -> None:
    with pytest.raises(ValueError, match="panel days must be 1 to 90"):
        QueryBenchConfig(panel_days=120)
    with pytest.raises(ValueError, match="panel runs"):
        QueryBenchConfig(panel_runs=0)


def test_the_report_names_the_slowest_panel_and_keeps_issue_8s_keys() -> None:
    panels = {"environment/A": PanelTiming(3.0, 9.0, 10), "platform/B": PanelTiming(5.0, 12.5, 2),
              "living/C": PanelTiming(4.0, 12.5, 0)}
    result = QueryBenchResult(readings=1, load_s=1.0, refresh_s=1.0, queries={},
                              catchup_after_1m_backfill_s=1.0, panels=panels, panel_days=90,
                              panel_runs=10, panel_history_readings=700_000)
    out = result.to_dict()
    # Equal p95s: the higher p50 is the slower panel.
    assert out["slowest_panel"] == {"name": "platform/B", "p50_ms": 5.0, "p95_ms": 12.5, "rows": 2}
    assert out["panels"]["living/C"] == {"p50_ms": 4.0, "p95_ms": 12.5, "rows": 0}
    text = result.to_text()
    assert "slowest panel: platform/B · p50 5.00 ms · p95 12.50 ms · 2 rows" in text
    assert "over 90 days" in text and "700,000 readings of 15-minute history" in text

    bare = QueryBenchResult(readings=1, load_s=1.0, refresh_s=1.0, queries={},
                            catchup_after_1m_backfill_s=1.0)
    assert bare.to_dict()["slowest_panel"] is None and "slowest panel" not in bare.to_text()


def test_panel_history_fills_the_range_before_the_dense_data_and_nothing_else(
        db: psycopg.Connection, database_url: str) -> None:
    specs = demo_fleet()[:2]
    for spec in specs:
        register_device(db, spec.device_id, spec.kind, spec.site_id)
    end = math.floor(time.time() / 60) * 60
    earliest = end - 6 * 3600  # as if 6 hours of 1-minute data were loaded
    per_step = sum(len(DEVICE_KINDS[spec.kind].metrics) for spec in specs)

    stored = _load_panel_history(database_url, specs, QueryBenchConfig(panel_days=1), end, earliest,
                                 progress=False)

    first, last, count = db.execute(
        "SELECT extract(epoch FROM min(time)), extract(epoch FROM max(time)), count(*)"
        " FROM readings").fetchone()
    assert count == stored == 72 * per_step  # 18 hours at 15 minutes
    assert end - 86400 <= first < end - 86400 + PANEL_HISTORY_INTERVAL_S
    assert earliest - PANEL_HISTORY_INTERVAL_S <= last < earliest
    # Dense data spanning the whole range already: nothing more is loaded.
    assert _load_panel_history(database_url, specs, QueryBenchConfig(panel_days=1), end,
                               end - 86400, progress=False) == 0


def test_panels_run_with_grafanas_rights_and_a_broken_one_is_named(
        db: psycopg.Connection, database_url: str, tmp_path: Path) -> None:
    for spec in demo_fleet():  # every dashboard's device variable needs devices of its domain
        register_device(db, spec.device_id, spec.kind, spec.site_id)
    to = datetime.now(UTC)
    queries = panel_queries(db, load_dashboards(), to - timedelta(days=90), to)
    assert {q.name for q in queries} == _panel_titles()
    assert all("$" not in sql for q in queries for sql in q.sql)  # every macro and variable expanded
    timings = time_panels(db, queries, runs=2, warmup=1)
    assert timings["platform/Devices, longest silent first"].rows == len(demo_fleet())

    whoami = PanelQuery("test/who", ("SELECT 1 WHERE current_user = 'smartcity_grafana'",))
    assert time_panels(db, [whoami], runs=1, warmup=0)["test/who"].rows == 1
    write = PanelQuery("test/a write", ("DELETE FROM devices",))
    with pytest.raises(PanelBenchError, match="test/a write: the database refused its SQL:.*permission"):
        time_panels(db, [write], runs=1, warmup=1)
    assert db.execute("SELECT count(*) FROM devices").fetchone() == (len(demo_fleet()),)  # none lost
    assert db.execute("SELECT current_user").fetchone() != ("smartcity_grafana",)  # role given back

    (tmp_path / "broken.json").write_text('{"panels": [{"type": "table", "title": "No points",'
                                          ' "targets": [{"rawSql": "SELECT 1"}]}]}')
    with pytest.raises(PanelBenchError, match="broken/No points: no positive maxDataPoints"):
        panel_queries(db, load_dashboards(tmp_path), to - timedelta(days=1), to)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PanelBenchError, match="broken.json: not JSON"):
        load_dashboards(tmp_path)


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
