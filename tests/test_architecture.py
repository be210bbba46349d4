"""The layers hold: the import contracts catch a forbidden import, and SQL text lives in smartcity/db.

`make layers` runs the contracts on the tree as it is; these tests prove the contracts are not
vacuous, by breaking a copy of the tree on purpose and watching `lint-imports` fail.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("smartcity", "ingest", "api", "simulators", "dashboards")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(target: Path) -> None:
    """Copy the packages and the contracts (not the virtualenv) to ``target``."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", target / ".importlinter")


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, capture_output=True, text=True,
        env={"PYTHONPATH": str(tree), "PATH": str(LINT_IMPORTS.parent)}, timeout=60, check=False,
    )


def test_the_contracts_hold_for_the_tree_as_it_is(tmp_path: Path) -> None:
    _copy_tree(tmp_path)
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # ground floor → middle, directly
    ("smartcity/catalog.py", "import ingest.batch", "imports none of the middle"),
    # ground floor → roof (and through it, the middle)
    ("smartcity/devices.py", "import smartcity.cli", "imported by nothing below it"),
    # middle → roof
    ("api/models.py", "import smartcity.launcher", "imported by nothing below it"),
    # middle → middle
    ("api/models.py", "import ingest.batch", "the middle's packages independent"),
    ("ingest/batch.py", "import simulators.encode", "the middle's packages independent"),
    # the backfill's exception does not extend to the rest of the simulators
    ("simulators/encode.py", "import ingest.write", "the middle's packages independent"),
    # a ground-floor module the layers contract does not list yet is still held
    ("smartcity/alerts.py", "import api.params", "imports none of the middle"),
])
def test_a_forbidden_import_breaks_the_build(tmp_path: Path, module: str, line: str,
                                             contract: str) -> None:
    _copy_tree(tmp_path)
    path = tmp_path / module
    source = path.read_text() if path.exists() else '"""A module added later."""\n'
    path.write_text(f"{source}\n{line}  # noqa: E402\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
    imported = line.split()[1]
    assert re.search(rf"{module[:-3].replace('/', '.')} -> {re.escape(imported)}", broken), broken


# SQL statements start with one of these words, in capitals as the project writes them.
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|CREATE|ALTER|DROP|TRUNCATE|COPY)\s")
# Where SQL text may live: the query modules, migrations and their runner. services/postgres.py
# creates the embedded cluster's database, before any schema (or query module) can exist. ingest/
# is not checked yet: its SQL moves to smartcity/db/queries/readings.py and quarantine.py.
_SQL_HOMES = ("smartcity/db/", "smartcity/services/postgres.py")
_CHECKED = ("smartcity", "ingest", "api", "simulators", "dashboards")


def _sql_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.match(node.value):
            found.append((node.lineno, node.value.strip().split("\n")[0][:60]))
    return found


def test_the_sql_pattern_recognises_statements_and_not_prose() -> None:
    assert _SQL.match("SELECT 1") and _SQL.match(" INSERT INTO devices")
    assert not _SQL.match("Select a site") and not _SQL.match("   (SELECT count(*) FROM readings)")


def test_sql_text_lives_only_in_smartcity_db() -> None:
    strays = {
        f"{path.relative_to(ROOT)}:{line}": text
        for package in _CHECKED
        for path in sorted((ROOT / package).rglob("*.py"))
        if not str(path.relative_to(ROOT)).startswith(_SQL_HOMES)
        for line, text in _sql_literals(path)
    }
    assert strays == {}
    # …and the query modules do hold SQL, so the check above is looking at the right thing.
    assert _sql_literals(ROOT / "smartcity/db/queries/devices.py")
