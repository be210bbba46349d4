"""Generate the dashboards' JSON (``dashboards/json/<name>.json``) and tell when it is stale.

The JSON is Grafana's classic (v1) dashboard model, keys sorted, two-space indented, so a
rebuild of unchanged code gives the same bytes and a diff shows what a change did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard

from dashboards.environment import build_environment
from dashboards.living import build_living
from dashboards.platform import build_platform
from dashboards.query import register

__all__ = ["BUILDERS", "JSON_DIR", "BuildResult", "build_dashboards", "render", "write_dashboards"]

JSON_DIR = Path(__file__).resolve().parent / "json"

# File name (without .json) → the function that builds it.
BUILDERS: Mapping[str, Callable[[], dashboard.Dashboard]] = MappingProxyType({
    "environment": build_environment,
    "living": build_living,
    "platform": build_platform,
})


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What a build wrote, or found stale when only checking."""

    directory: Path
    written: tuple[str, ...]  # files rewritten (or, when checking, that would be)
    unchanged: tuple[str, ...]
    unexpected: tuple[str, ...]  # JSON files no builder makes


def render(model: dashboard.Dashboard) -> str:
    """Return a dashboard model as its stable JSON text."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(model) + "\n"


def build_dashboards() -> dict[str, str]:
    """Build every dashboard: file name → JSON text."""
    register()
    return {f"{name}.json": render(build()) for name, build in BUILDERS.items()}


def write_dashboards(directory: Path = JSON_DIR, *, check: bool = False) -> BuildResult:
    """Write the dashboards' JSON into ``directory``; with ``check``, write nothing, only compare."""
    built = build_dashboards()
    written, unchanged = [], []
    for name, text in built.items():
        path = directory / name
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            unchanged.append(name)
            continue
        written.append(name)
        if not check:
            directory.mkdir(parents=True, exist_ok=True)
            # Through a temporary file: a reader never sees half a dashboard.
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
    present = {p.name for p in directory.glob("*.json")} if directory.is_dir() else set()
    unexpected = sorted(present - set(built))
    return BuildResult(directory, tuple(written), tuple(unchanged), tuple(unexpected))
