"""The figures of an API benchmark run, judged against issue 9's target, as text or a JSON-ready dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TARGET_LATEST_P99_MS", "TARGET_LATEST_RPS", "ApiBenchResult", "EndpointLoad"]

TARGET_LATEST_RPS = 3000.0  # GET /devices/{id}/latest at 50 concurrent clients
TARGET_LATEST_P99_MS = 50.0


@dataclass(frozen=True, slots=True)
class EndpointLoad:
    """One endpoint under load: throughput, latency percentiles, errors, and who used the CPU."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_cores: dict[str, float] = field(default_factory=dict)  # process → CPU seconds per second
    error_samples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"requests_per_s", "p50_ms", "p99_ms", "errors"}``."""
        return {"requests_per_s": round(self.requests_per_s, 1), "p50_ms": round(self.p50_ms, 2),
                "p99_ms": round(self.p99_ms, 2), "errors": self.errors}


@dataclass(frozen=True)
class ApiBenchResult:
    """What one run measured; ``to_dict`` gives the issue's JSON, ``to_text`` a table and a verdict."""

    latest: EndpointLoad
    aggregates_24h: EndpointLoad
    concurrency: int
    api_workers: int
    seconds: float
    devices: int = 0
    history_readings: int = 0

    @property
    def meets_target(self) -> bool:
        """Return whether ``latest`` reaches the target throughput and p99 without errors."""
        return (self.latest.requests_per_s >= TARGET_LATEST_RPS
                and self.latest.p99_ms <= TARGET_LATEST_P99_MS and self.latest.errors == 0)

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"latest", "aggregates_24h", "concurrency", "api_workers", "cpu"}``."""
        return {
            "latest": self.latest.to_dict(),
            "aggregates_24h": self.aggregates_24h.to_dict(),
            "concurrency": self.concurrency,
            "api_workers": self.api_workers,
            # CPU seconds per wall second of each process tree during each load: 1.0 is one core.
            "cpu": {"latest": _rounded(self.latest.cpu_cores),
                    "aggregates_24h": _rounded(self.aggregates_24h.cpu_cores)},
        }

    def to_text(self) -> str:
        """Return a readable table of both loads, the CPU split and the verdict against the target."""
        lines = [f"API under load: {self.concurrency} concurrent keep-alive clients, {self.seconds:g} s"
                 f" per endpoint, {self.api_workers} API worker(s), demo fleet of {self.devices}"
                 f" devices publishing live, {self.history_readings} readings of history",
                 "",
                 f"{'endpoint':<16}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"]
        loads = {"latest": self.latest, "aggregates_24h": self.aggregates_24h}
        for name, load in loads.items():
            lines.append(f"{name:<16}{load.requests_per_s:>10.0f}{load.p50_ms:>10.2f}"
                         f"{load.p99_ms:>10.2f}{load.errors:>8}")
        lines.append("")
        lines.append("CPU (cores busy) during each load:")
        for name, load in loads.items():
            split = ", ".join(f"{proc} {cores:.2f}" for proc, cores in load.cpu_cores.items())
            lines.append(f"  {name:<16}{split}")
        for name, load in loads.items():
            for sample in load.error_samples:
                lines.append(f"  error in {name}: {sample}")
        verdict = "meets" if self.meets_target else "misses"
        lines.append("")
        lines.append(f"verdict: latest {verdict} the target of ≥ {TARGET_LATEST_RPS:,.0f} req/s with"
                     f" p99 ≤ {TARGET_LATEST_P99_MS:.0f} ms and no errors"
                     f" ({self.latest.requests_per_s:,.0f} req/s, p99 {self.latest.p99_ms:.1f} ms,"
                     f" {self.latest.errors} errors)")
        return "\n".join(lines)


def _rounded(cores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 3) for name, value in cores.items()}
