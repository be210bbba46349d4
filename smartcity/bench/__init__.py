"""Benchmarks of the platform (`smartcity bench …`): they measure and print figures, they do not assert."""

from smartcity.bench.auth_compare import AuthComparison, run_auth_comparison
from smartcity.bench.ingest import BenchError, IngestBenchConfig, run_ingest_bench
from smartcity.bench.report import IngestBenchResult

__all__ = ["AuthComparison", "BenchError", "IngestBenchConfig", "IngestBenchResult", "run_auth_comparison",
           "run_ingest_bench"]
