"""Scraping ingest workers' Prometheus metrics, and histogram quantiles the way PromQL computes them.

`histogram_quantile` follows Prometheus' ``histogram_quantile`` (``promql/quantile.go``): find the
bucket holding the rank, interpolate linearly inside it, take 0 as the lower bound of the first
bucket, and answer the largest finite bound when the rank falls into the ``+Inf`` bucket.
"""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = [
    "Histogram", "MetricsSnapshot", "histogram_quantile", "merge_snapshots", "parse_exposition", "scrape",
]

Bucket = tuple[float, float]  # (upper bound, cumulative count)


def histogram_quantile(q: float, buckets: Sequence[Bucket]) -> float:
    """Return the ``q``-quantile of cumulative ``buckets``, interpolated linearly within a bucket.

    NaN when there are no observations or no ``+Inf`` bucket, like Prometheus.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = _coalesce(sorted(buckets))
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return math.nan
    observations = ordered[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i, (_, count) in enumerate(ordered[:-1]) if count >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    if index == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start, end, count = 0.0, ordered[index][0], ordered[index][1]
    if index > 0:
        start, below = ordered[index - 1]
        count -= below
        rank -= below
    return start if count == 0 else start + (end - start) * (rank / count)


def _coalesce(buckets: Sequence[Bucket]) -> list[Bucket]:
    """Merge buckets of equal bound and force the counts to be monotonic (scrapes are not atomic)."""
    merged: list[Bucket] = []
    for bound, count in buckets:
        if merged and merged[-1][0] == bound:
            merged[-1] = (bound, merged[-1][1] + count)
        else:
            merged.append((bound, count))
    running = 0.0
    for i, (bound, count) in enumerate(merged):
        running = max(running, count)
        merged[i] = (bound, running)
    return merged


@dataclass(frozen=True, slots=True)
class Histogram:
    """A Prometheus histogram's cumulative buckets, ascending by bound, ending with ``+Inf``."""

    buckets: tuple[Bucket, ...]

    @property
    def count(self) -> float:
        """Return the number of observations."""
        return self.buckets[-1][1] if self.buckets else 0.0

    def quantile(self, q: float) -> float:
        """Return the bucket-interpolated ``q``-quantile (NaN without observations)."""
        return histogram_quantile(q, self.buckets)

    def merge(self, other: Histogram) -> Histogram:
        """Return the histogram of both sets of observations (the buckets must have equal bounds)."""
        if not self.buckets:
            return other
        if not other.buckets:
            return self
        if [b for b, _ in self.buckets] != [b for b, _ in other.buckets]:
            raise ValueError("cannot merge histograms with different bucket bounds")
        return Histogram(tuple((b, c + d) for (b, c), (_, d) in zip(self.buckets, other.buckets,
                                                                    strict=True)))


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The samples of one scrape (or several merged): look values up by sample name."""

    samples: tuple[Sample, ...]

    def value(self, name: str, **labels: str) -> float:
        """Return the sum of the samples called ``name`` that carry ``labels`` (0 when none do)."""
        return sum(s.value for s in self.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def histogram(self, name: str) -> Histogram:
        """Return histogram ``name`` with its ``_bucket`` samples summed over the other labels."""
        counts: dict[float, float] = defaultdict(float)
        for s in self.samples:
            if s.name == f"{name}_bucket":
                counts[float(s.labels["le"])] += s.value
        return Histogram(tuple(sorted(counts.items())))


def merge_snapshots(snapshots: Iterable[MetricsSnapshot]) -> MetricsSnapshot:
    """Return one snapshot holding the samples of all (values and buckets then add up)."""
    return MetricsSnapshot(tuple(s for snapshot in snapshots for s in snapshot.samples))


def scrape(url: str, timeout: float = 2.0) -> MetricsSnapshot:
    """Fetch and parse the Prometheus text exposition at ``url``.

    Raises:
        OSError: the endpoint did not answer (``urllib.error.URLError`` is one).
    """
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
        return parse_exposition(response.read().decode())


def parse_exposition(text: str) -> MetricsSnapshot:
    """Parse Prometheus text exposition format into a snapshot."""
    return MetricsSnapshot(tuple(s for family in text_string_to_metric_families(text)
                                 for s in family.samples))
