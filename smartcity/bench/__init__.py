"""Benchmarks of the platform (`smartcity bench …`): they measure and print figures, they do not assert."""

from smartcity.bench.ingest import BenchError, IngestBenchConfig, run_ingest_bench
from smartcity.bench.report import IngestBenchResult

__all__ = ["BenchError", "IngestBenchConfig", "IngestBenchResult", "run_ingest_bench"]
