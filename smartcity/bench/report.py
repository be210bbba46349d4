"""The figures of an ingest benchmark run, judged against the targets, as text or a JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TARGET_P99_RATE", "TARGET_P99_S", "TARGET_READINGS_PER_S", "IngestBenchResult"]

TARGET_READINGS_PER_S = 60_000
TARGET_P99_S = 0.300
TARGET_P99_RATE = 5000  # the latency target is defined for this publish rate (msg/s)


@dataclass(frozen=True)
class IngestBenchResult:
    """What one run measured. Times in seconds; ``cpu_seconds`` per component over the run."""

    config: dict[str, Any]
    embedded_database: bool
    embedded_broker: bool
    messages_published: int
    readings_published: int
    readings_stored: int  # SELECT count(*) FROM readings, for this run's devices and time
    duplicates_counted: int  # the workers' duplicate counter
    quarantined: int
    wall_seconds: float  # first publish → last commit
    publish_seconds: float  # first publish → last publish
    latency_observations: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    publish_window: int
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def readings_not_stored(self) -> int:
        """Published readings without a row; timestamps are unique, so each one is lost."""
        return max(0, self.readings_published - self.readings_stored)

    @property
    def lost(self) -> bool:
        """Tell whether readings were lost, or not all accounted for before the timeout."""
        return self.readings_not_stored > 0 or self.timed_out

    @property
    def readings_per_second(self) -> float:
        """Return the sustained rate: rows stored over first publish → last commit."""
        return self.readings_stored / self.wall_seconds

    @property
    def publish_rate(self) -> float:
        """Return the publish rate achieved, messages per second."""
        return self.messages_published / self.publish_seconds

    @property
    def throughput_judged(self) -> bool:
        """Tell whether the run could reach the throughput target (not throttled below it)."""
        rate = float(self.config["rate"])
        return rate == 0 or rate * self.readings_per_message >= TARGET_READINGS_PER_S

    @property
    def latency_judged(self) -> bool:
        """Tell whether the run is the one the latency target is defined for."""
        return float(self.config["rate"]) == TARGET_P99_RATE

    @property
    def readings_per_message(self) -> int:
        """Return the readings each message carried (6 for the bench's weather stations)."""
        return self.readings_published // self.messages_published if self.messages_published else 6

    @property
    def throughput_met(self) -> bool | None:
        """Tell whether the throughput target was met (None when the run was throttled below it)."""
        return self.readings_per_second >= TARGET_READINGS_PER_S if self.throughput_judged else None

    @property
    def latency_met(self) -> bool | None:
        """Tell whether the p99 target was met (None when not a ``--rate 5000`` run)."""
        if not self.latency_judged:
            return None
        return self.latency_p99 is not None and self.latency_p99 <= TARGET_P99_S

    def verdict(self) -> str:
        """Return one line judging the run against the targets."""
        parts = []
        rps = f"{self.readings_per_second:,.0f} readings/s"
        if self.throughput_met is None:
            parts.append(f"throughput {rps} not judged (throttled by --rate below the target)")
        else:
            word = "meets" if self.throughput_met else "MISSES"
            parts.append(f"throughput {rps} {word} the ≥ {TARGET_READINGS_PER_S:,} target")
        p99 = _ms(self.latency_p99)
        if self.latency_met is None:
            parts.append(f"p99 {p99} not judged (the ≤ {TARGET_P99_S * 1000:.0f} ms target is for "
                         f"--rate {TARGET_P99_RATE})")
        else:
            word = "meets" if self.latency_met else "MISSES"
            parts.append(f"p99 {p99} {word} the ≤ {TARGET_P99_S * 1000:.0f} ms target")
        if self.readings_not_stored:
            parts.append(f"{self.readings_not_stored:,} READINGS " + (
                "NOT STORED BY THE TIMEOUT" if self.timed_out else "LOST"))
        elif self.timed_out:
            parts.append("TIMED OUT before every reading was accounted for")
        return "verdict: " + " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Return the figures, derived rates and verdict as a JSON-ready dict."""
        data = asdict(self)
        data["cpu_seconds"] = {name: round(seconds, 2) for name, seconds in self.cpu_seconds.items()}
        for key in ("wall_seconds", "publish_seconds", "latency_p50", "latency_p95", "latency_p99"):
            data[key] = None if data[key] is None else round(data[key], 4)
        data.update(
            readings_not_stored=self.readings_not_stored,
            lost=self.lost,
            readings_per_second=round(self.readings_per_second, 1),
            publish_rate=round(self.publish_rate, 1),
            latency_method="bucket-interpolated from smartcity_ingest_reading_delay_seconds",
            targets={"readings_per_second": TARGET_READINGS_PER_S, "p99_seconds": TARGET_P99_S,
                     "p99_at_rate": TARGET_P99_RATE},
            throughput_met=self.throughput_met,
            latency_met=self.latency_met,
            verdict=self.verdict(),
        )
        return data

    def to_text(self) -> str:
        """Return the figures as aligned lines for a terminal."""
        c = self.config
        rate = f"{c['rate']:,.0f} msg/s" if c["rate"] else "as fast as possible"
        services = ("embedded" if self.embedded_database and self.embedded_broker
                    else f"database {'embedded' if self.embedded_database else 'external'}, "
                         f"broker {'embedded' if self.embedded_broker else 'external'}")
        wall = self.wall_seconds
        cpu = " · ".join(f"{name} {seconds / wall:.0%}" for name, seconds in self.cpu_seconds.items())
        lines = [
            f"ingest benchmark: {c['messages']:,} messages · {c['publishers']} publishers · "
            f"{c['workers']} worker(s) · {c['devices']} devices · QoS {c['qos']} · {rate} · "
            f"{c['client']} client · broker logins {'on' if c.get('auth') else 'off'} · services {services}",
            f"messages published    {self.messages_published:>12,}   in {self.publish_seconds:.2f} s"
            f" = {self.publish_rate:,.0f} msg/s (publisher window {self.publish_window})",
            f"readings published    {self.readings_published:>12,}"
            f"   ({self.readings_per_message} per message)",
            f"readings stored       {self.readings_stored:>12,}   (SELECT count(*) FROM readings)",
            f"not stored            {self.readings_not_stored:>12,}   (published − stored rows)",
            f"duplicates (workers)  {self.duplicates_counted:>12,}",
            f"quarantined (workers) {self.quarantined:>12,}",
            f"wall time             {wall:>12.2f} s (first publish → last commit)",
            f"sustained             {self.readings_per_second:>12,.0f} readings/s",
            f"publish → commit      p50 {_ms(self.latency_p50)} · p95 {_ms(self.latency_p95)} · "
            f"p99 {_ms(self.latency_p99)}   (bucket-interpolated from "
            f"smartcity_ingest_reading_delay_seconds, {self.latency_observations:,} messages)",
            f"CPU over the run      {cpu}   (100% = one core)",
        ]
        if self.timed_out:
            lines.append(f"TIMED OUT after {c['timeout']:.0f} s")
        lines.extend(f"error: {error}" for error in self.errors)
        lines.append(self.verdict())
        return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.0f} ms"
