"""`smartcity bench ingest --auth both`: the same run with the broker's logins off and on, compared.

Runs alternate off, on, off, on … (each on a fresh stack) so that a drift of the machine's load
over the session weighs on both sides alike; the figures compared are the medians per side.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, replace
from typing import Any

from smartcity.bench.ingest import BenchError, IngestBenchConfig, run_ingest_bench
from smartcity.bench.report import IngestBenchResult
from smartcity.settings import Settings

__all__ = ["AuthComparison", "run_auth_comparison"]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _broker_cpu_per_message(result: IngestBenchResult) -> float | None:
    """Return the broker's CPU seconds per message published, or None when not measured."""
    seconds = result.cpu_seconds.get("mosquitto")
    if seconds is None or not result.messages_published:
        return None
    return seconds / result.messages_published


@dataclass(frozen=True)
class AuthComparison:
    """The runs of each side, in the order they ran, and the machine's load around them."""

    off: list[IngestBenchResult]
    on: list[IngestBenchResult]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def lost(self) -> bool:
        """Tell whether any run lost readings."""
        return any(r.lost for r in (*self.off, *self.on))

    def median_rate(self, side: str) -> float:
        """Return the median sustained readings/s of ``side`` (``off`` or ``on``)."""
        return _median([r.readings_per_second for r in getattr(self, side)])

    def median_broker_us(self, side: str) -> float | None:
        """Return the median broker CPU per message of ``side`` in µs, or None when not measured."""
        values = [v for r in getattr(self, side) if (v := _broker_cpu_per_message(r)) is not None]
        return _median(values) * 1e6 if values else None

    def median_p99_ms(self, side: str) -> float | None:
        """Return the median publish → commit p99 of ``side`` in ms, or None when none was measured."""
        values = [r.latency_p99 for r in getattr(self, side) if r.latency_p99 is not None]
        return _median(values) * 1000 if values else None

    @property
    def ratio(self) -> float:
        """Return on / off of the median sustained rates (1.0: logins cost nothing measurable)."""
        return self.median_rate("on") / self.median_rate("off")

    def to_dict(self) -> dict[str, Any]:
        """Return every run's figures and the comparison as a JSON-ready dict."""
        return {
            "off": [r.to_dict() for r in self.off],
            "on": [r.to_dict() for r in self.on],
            "median_readings_per_second": {side: round(self.median_rate(side), 1) for side in ("off", "on")},
            "median_broker_cpu_us_per_message": {
                side: None if (v := self.median_broker_us(side)) is None else round(v, 2)
                for side in ("off", "on")},
            "median_p99_ms": {side: None if (v := self.median_p99_ms(side)) is None else round(v, 1)
                              for side in ("off", "on")},
            "ratio_on_off": round(self.ratio, 4),
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "lost": self.lost,
        }

    def to_text(self) -> str:
        """Return each run's text, then the comparison."""
        lines: list[str] = []
        # In the order they ran: off, on, off, on …
        for n, pair in enumerate(zip(self.off, self.on, strict=True), 1):
            for side, result in zip(("off", "on"), pair, strict=True):
                lines += [f"── broker logins {side}, run {n} of {len(self.off)} ──", result.to_text(), ""]

        def rates(side: str) -> str:
            return ", ".join(f"{r.readings_per_second:,.0f}" for r in getattr(self, side))

        def broker(side: str) -> str:
            value = self.median_broker_us(side)
            return "n/a" if value is None else f"{value:.1f} µs"

        def p99(side: str) -> str:
            value = self.median_p99_ms(side)
            return "n/a" if value is None else f"{value:.0f} ms"

        lines += [
            f"logins off   median {self.median_rate('off'):>10,.0f} readings/s   ({rates('off')});"
            f" p99 {p99('off')}; broker CPU {broker('off')} per message",
            f"logins on    median {self.median_rate('on'):>10,.0f} readings/s   ({rates('on')});"
            f" p99 {p99('on')}; broker CPU {broker('on')} per message",
            f"on / off     {self.ratio:.3f}",
            "load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(
                *self.load_before, *self.load_after),
        ]
        return "\n".join(lines)


def run_auth_comparison(config: IngestBenchConfig, settings: Settings, runs: int = 1, *,
                        progress: bool = True) -> AuthComparison:
    """Run the benchmark ``runs`` times with logins off and on, alternating; return both sides.

    Raises:
        BenchError: a run could not be set up or run (see ``run_ingest_bench``).
        ValueError: ``runs`` is below 1.
    """
    if runs < 1:
        raise ValueError(f"runs must be ≥ 1, not {runs}")
    if not settings.uses_embedded_broker:
        # Found out before the first run, not after it.
        raise BenchError("--auth both needs the bench's own broker: with SMARTCITY_MQTT_URL set, only"
                         " --auth off can run (everything logs in with that URL's login)")
    load_before = os.getloadavg()
    off: list[IngestBenchResult] = []
    on: list[IngestBenchResult] = []
    for _ in range(runs):
        off.append(run_ingest_bench(replace(config, auth=False), settings, progress=progress))
        on.append(run_ingest_bench(replace(config, auth=True), settings, progress=progress))
    return AuthComparison(off, on, load_before, os.getloadavg())
