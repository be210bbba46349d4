"""`smartcity bench alerts`: a tiny run on its own embedded stack prints every figure, judged with
all twenty rules, and leaves no stack behind; the twenty rules are valid and of every kind."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from smartcity.bench.alerts import bench_rules
from smartcity.cli import main
from tests.services import leftover_bench_stacks


def test_the_bench_rules_cover_every_kind() -> None:
    rules = bench_rules().rules
    assert len(rules) == 20 and len({r.id for r in rules}) == 20
    assert {r.kind for r in rules} == {"threshold", "rate_of_rise", "silence", "ispu_category"}


def test_small_run_prints_its_figures(monkeypatch: pytest.MonkeyPatch, bench_tmpdir: Path) -> None:
    for name in ("SMARTCITY_DATABASE_URL", "SMARTCITY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["bench", "alerts", "--devices", "40", "--hours", "1.5",
                                       "--catch-up-hours", "1", "--cycles", "3", "--json"])
    assert result.exit_code == 0, result.output
    out = orjson.loads(result.stdout)
    assert out["devices"] == 40 and out["rules"] == 20 and out["cycles"] == 3
    assert out["readings"] > 40 * 90  # 1.5 h of minutes, at least one metric each
    assert out["catch_up_hours"] >= 1 and out["catch_up_s"] > 0
    assert out["catch_up_s_per_hour"] == pytest.approx(out["catch_up_s"] / out["catch_up_hours"], rel=1e-3)
    assert 0 < out["cycle_median_s"] <= out["cycle_p95_s"]
    assert leftover_bench_stacks(bench_tmpdir) == []


def test_bad_sizes_are_refused_clearly() -> None:
    result = CliRunner().invoke(main, ["bench", "alerts", "--hours", "1", "--catch-up-hours", "2"])
    assert result.exit_code == 2 and "catch-up hours" in result.output
