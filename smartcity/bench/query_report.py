"""The figures of a query benchmark run, judged against issue 8's targets, as text or a JSON-ready dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RAW_NOTE",
    "TARGET_CATCHUP_S",
    "TARGET_P95_MS",
    "TARGET_READINGS",
    "TARGET_SITE_SPEEDUP",
    "PanelTiming",
    "QueryBenchResult",
    "QueryTiming",
]

TARGET_P95_MS = 10.0  # each query through the API
TARGET_SITE_SPEEDUP = 100.0  # site_90d_1d against raw time_bucket
TARGET_CATCHUP_S = 5.0  # the refresher after a 1-million-reading backfill
TARGET_READINGS = 10_000_000  # what the targets are set for
RAW_NOTE = ("raw = plain time_bucket SQL over the raw rows through psycopg, without HTTP, so the"
            " speedup is conservative")


@dataclass(frozen=True, slots=True)
class QueryTiming:
    """One question's times in milliseconds: through the API, and as raw SQL over readings."""

    p50_ms: float
    p95_ms: float
    raw_p95_ms: float

    @property
    def speedup(self) -> float:
        """Return how many times faster the API's p95 is than the raw SQL's."""
        return self.raw_p95_ms / self.p95_ms if self.p95_ms > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class PanelTiming:
    """One dashboard panel's times in milliseconds (its targets run one after the other), rows returned."""

    p50_ms: float
    p95_ms: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"p50_ms", "p95_ms", "rows"}``, times rounded to microseconds."""
        return {"p50_ms": round(self.p50_ms, 3), "p95_ms": round(self.p95_ms, 3), "rows": self.rows}


@dataclass(frozen=True)
class QueryBenchResult:
    """What one run measured; ``to_dict`` gives exactly the issue's JSON, the rest shows in text."""

    readings: int
    load_s: float
    refresh_s: float
    queries: dict[str, QueryTiming]
    catchup_after_1m_backfill_s: float
    backfill_readings: int = 0
    backfill_into_past: bool = True  # else into new devices: the past would leave raw retention
    metric: str = ""
    device: str = ""
    site: str = ""
    fleet_devices: int = 0
    span_days: float = 0.0
    runs: int = 0
    # The panel phase: every dashboard panel over the last panel_days, by "<dashboard>/<panel title>".
    panels: dict[str, PanelTiming] = field(default_factory=dict)
    panel_days: float = 0.0
    panel_runs: int = 0
    panel_history_readings: int = 0  # coarse readings loaded so the data spans panel_days
    panel_devices: str = "first"  # the device variables' selection: "first" device, or "all"

    @property
    def slowest_panel(self) -> tuple[str, PanelTiming] | None:
        """Return the panel with the highest p95 (ties: higher p50, then name order), or None."""
        if not self.panels:
            return None
        name = min(self.panels, key=lambda n: (-self.panels[n].p95_ms, -self.panels[n].p50_ms, n))
        return name, self.panels[name]

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as ``{"readings", "load_s", "refresh_s", "queries", "catchup_…"}`` (issue 8),
        then the panel phase's ``"panels"``, ``"slowest_panel"``, ``"panel_days"``,
        ``"panel_history_readings"`` and ``"panel_devices"`` (issue 10)."""
        return {
            "readings": self.readings,
            "load_s": round(self.load_s, 3),
            "refresh_s": round(self.refresh_s, 3),
            "queries": {
                name: {"p50_ms": round(t.p50_ms, 3), "p95_ms": round(t.p95_ms, 3),
                       "raw_p95_ms": round(t.raw_p95_ms, 3), "speedup": round(t.speedup, 1)}
                for name, t in self.queries.items()
            },
            "catchup_after_1m_backfill_s": round(self.catchup_after_1m_backfill_s, 3),
            "panels": {name: t.to_dict() for name, t in self.panels.items()},
            "slowest_panel": None if (slowest := self.slowest_panel) is None else {
                "name": slowest[0], **slowest[1].to_dict()},
            "panel_days": round(self.panel_days, 3),
            "panel_history_readings": self.panel_history_readings,
            "panel_devices": self.panel_devices,
        }

    def verdicts(self) -> list[str]:
        """Return one line per target: met or missed, with the figure."""
        lines = []
        for name, t in self.queries.items():
            word = "meets" if t.p95_ms <= TARGET_P95_MS else "MISSES"
            lines.append(f"{name} p95 {t.p95_ms:.2f} ms {word} the ≤ {TARGET_P95_MS:.0f} ms target")
        if (site := self.queries.get("site_90d_1d")) is not None:
            word = "meets" if site.speedup >= TARGET_SITE_SPEEDUP else "MISSES"
            lines.append(f"site_90d_1d {site.speedup:,.0f}× faster than raw {word} the"
                         f" ≥ {TARGET_SITE_SPEEDUP:.0f}× target")
        word = "meets" if self.catchup_after_1m_backfill_s <= TARGET_CATCHUP_S else "MISSES"
        judged = "" if self.backfill_readings >= 1_000_000 else (
            f" (after {self.backfill_readings:,} readings, not 1,000,000: not comparable)")
        lines.append(f"catch-up {self.catchup_after_1m_backfill_s:.2f} s {word} the"
                     f" ≤ {TARGET_CATCHUP_S:.0f} s target{judged}")
        if self.readings < TARGET_READINGS:
            lines.append(f"the targets are set for {TARGET_READINGS:,} readings; this run loaded"
                         f" {self.readings:,}")
        return lines

    def to_text(self) -> str:
        """Return the figures as aligned lines for a terminal."""
        where = "into the past of the loaded devices" if self.backfill_into_past else (
            "into new devices (the past would leave the 90-day raw retention)")
        lines = [
            f"query benchmark: {self.readings:,} readings of 1-minute data · demo fleet of"
            f" {self.fleet_devices} devices · {self.span_days:.1f} days ending now",
            f"questions: metric {self.metric} · device {self.device} · site {self.site}"
            f" · {self.runs} timed runs each after warm-up",
            f"load (bulk path)      {self.load_s:>10.2f} s",
            f"rollup refresh        {self.refresh_s:>10.2f} s",
            f"{'query':20} {'API p50':>10} {'API p95':>10} {'raw p95':>10} {'speedup':>10}",
        ]
        for name, t in self.queries.items():
            lines.append(f"{name:20} {t.p50_ms:>7.2f} ms {t.p95_ms:>7.2f} ms {t.raw_p95_ms:>7.1f} ms"
                         f" {t.speedup:>9.1f}×")
        lines += [
            f"  ({RAW_NOTE})",
            f"catch-up              {self.catchup_after_1m_backfill_s:>10.2f} s  (refresher after"
            f" backfilling {self.backfill_readings:,} readings {where})",
            *("verdict: " + line for line in self.verdicts()),
            *self._panel_lines(),
        ]
        return "\n".join(lines)

    def _panel_lines(self) -> list[str]:
        """The panel phase as a table, slowest panel last; nothing when no panel was timed."""
        if (slowest := self.slowest_panel) is None:
            return []
        history = (f"{self.panel_history_readings:,} readings of 15-minute history loaded before the"
                   " 1-minute data" if self.panel_history_readings else "no extra history needed")
        width = max(len(name) for name in self.panels)
        lines = [
            f"dashboard panels over {self.panel_days:g} days ending now, as Grafana sends them"
            f" (smartcity_grafana) · all districts, {self.panel_devices} device(s)"
            f" · {self.panel_runs} timed runs each after warm-up · {history}",
            f"{'panel':{width}} {'p50':>10} {'p95':>10} {'rows':>7}",
        ]
        for name, t in self.panels.items():
            lines.append(f"{name:{width}} {t.p50_ms:>7.2f} ms {t.p95_ms:>7.2f} ms {t.rows:>7,}")
        name, t = slowest
        lines.append(f"slowest panel: {name} · p50 {t.p50_ms:.2f} ms · p95 {t.p95_ms:.2f} ms"
                     f" · {t.rows:,} rows")
        return lines
