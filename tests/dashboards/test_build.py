"""`smartcity dashboards build [--check]`: the committed JSON is what the code builds."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from click.testing import CliRunner

from dashboards.build import BUILDERS, JSON_DIR, build_dashboards, write_dashboards
from smartcity.cli import main


def _build(*args: str):  # noqa: ANN202 - click's Result
    return CliRunner().invoke(main, ["dashboards", "build", *args], catch_exceptions=False)


def test_committed_json_is_not_stale() -> None:
    result = write_dashboards(JSON_DIR, check=True)
    assert result.written == (), f"stale: {result.written}; run `smartcity dashboards build`"
    assert result.unexpected == ()
    assert sorted(result.unchanged) == sorted(f"{name}.json" for name in BUILDERS)


def test_a_build_is_byte_for_byte_repeatable() -> None:
    first, second = build_dashboards(), build_dashboards()
    assert first == second
    for text in first.values():
        # Keys sorted at every level: re-encoding sorted gives the same text.
        assert json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n" == text


def test_build_writes_every_dashboard_then_finds_them_up_to_date(tmp_path: Path) -> None:
    out = tmp_path / "json"
    result = _build("--dir", str(out), "--json")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert sorted(report["written"]) == sorted(f"{name}.json" for name in BUILDERS)
    for name, text in build_dashboards().items():
        assert (out / name).read_text(encoding="utf-8") == text
    again = _build("--dir", str(out), "--check")
    assert again.exit_code == 0, again.output
    assert "3 dashboard(s) up to date" in again.output


def test_check_exits_1_on_stale_json_and_changes_nothing(tmp_path: Path) -> None:
    assert _build("--dir", str(tmp_path)).exit_code == 0
    stale = tmp_path / "living.json"
    edited = stale.read_text(encoding="utf-8").replace("Smart Living", "Smart Livin")
    stale.write_text(edited, encoding="utf-8")
    (tmp_path / "old.json").write_text("{}", encoding="utf-8")

    result = _build("--dir", str(tmp_path), "--check")
    assert result.exit_code == 1
    assert f"out of date: {stale}" in result.output
    assert f"not built by any dashboard: {tmp_path / 'old.json'}" in result.output
    assert "run `smartcity dashboards build`" in result.output
    # --check writes nothing: the edited file and the stranger are as they were.
    assert stale.read_text(encoding="utf-8") == edited
    assert (tmp_path / "old.json").read_text(encoding="utf-8") == "{}"


def test_check_of_a_missing_directory_is_stale_not_a_crash(tmp_path: Path) -> None:
    result = _build("--dir", str(tmp_path / "absent"), "--check")
    assert result.exit_code == 1
    assert "out of date" in result.output
    assert not (tmp_path / "absent").exists()


def test_build_rewrites_a_stale_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    assert _build("--dir", str(tmp_path)).exit_code == 0
    (tmp_path / "platform.json").write_text("{}", encoding="utf-8")
    result = _build("--dir", str(tmp_path))
    assert result.exit_code == 0
    assert result.output.strip() == f"written: {tmp_path / 'platform.json'}"
    assert (tmp_path / "platform.json").read_text(encoding="utf-8") == build_dashboards()["platform.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.json" for n in BUILDERS)
