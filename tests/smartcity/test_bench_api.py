"""`smartcity bench api`: a short run on its own stack gives the issue's JSON with positive figures and no
errors; the load generator counts what it should (keep-alive, chunked bodies, errors, a dead server);
the report judges the target; bad options are refused."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from smartcity.bench.api_report import ApiBenchResult, EndpointLoad
from smartcity.bench.http_load import run_load
from smartcity.cli import main
from smartcity.services import free_port
from tests.services import leftover_bench_stacks

FIGURES = {"requests_per_s", "p50_ms", "p99_ms", "errors"}


@pytest.mark.slow
def test_short_run_prints_the_issues_json_with_positive_figures(
        monkeypatch: pytest.MonkeyPatch, bench_tmpdir: Path) -> None:
    for name in ("SMARTCITY_DATABASE_URL", "SMARTCITY_MQTT_URL"):
        monkeypatch.delenv(name, raising=False)

    # A real process, not CliRunner: the children write to the file descriptors, and stdout must
    # hold nothing but the JSON.
    result = subprocess.run([sys.executable, "-m", "smartcity", "bench", "api", "--seconds", "2",
                             "--concurrency", "5", "--json"], capture_output=True, timeout=300,
                            check=False)

    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = orjson.loads(result.stdout)
    assert set(out) == {"latest", "aggregates_24h", "concurrency", "api_workers", "cpu"}
    assert out["concurrency"] == 5 and out["api_workers"] >= 1
    for endpoint in ("latest", "aggregates_24h"):
        figures = out[endpoint]
        assert set(figures) == FIGURES
        assert figures["errors"] == 0
        assert figures["requests_per_s"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        cpu = out["cpu"][endpoint]
        # The API served the load and the generator's own cost is reported beside it.
        assert cpu["api"] > 0 and cpu["load_generator"] > 0
        assert {"ingest", "simulator", "rollup"} <= set(cpu)
        assert cpu["machine"] > 0  # every core's busy time, whoever used it
    assert b"PublisherStats" in result.stderr  # the simulator's totals, kept out of the JSON
    assert leftover_bench_stacks(bench_tmpdir) == []  # the temporary stack is removed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn serves

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"a":', b"1}"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b'{"ok": true}'
        self.send_response(200 if self.path == "/ok" else 500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test's output stays readable


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_generator_reads_length_and_chunked_bodies_over_keep_alive(server: int) -> None:
    result = run_load("127.0.0.1", server, ["/ok", "/chunked"], concurrency=3, seconds=0.5)

    assert result.errors == 0, result.error_samples
    assert len(result.latencies_ms) > 10
    assert result.requests_per_s > 0 and 0 < result.percentile_ms(50) <= result.percentile_ms(99)
    assert result.generator_cpu_s > 0


def test_generator_counts_error_statuses_and_says_which(server: int) -> None:
    result = run_load("127.0.0.1", server, ["/ok", "/fail"], concurrency=2, seconds=0.5)

    assert result.errors > 0 and result.latencies_ms  # half the paths fail, half succeed
    assert result.error_samples[0] == "HTTP 500"


def test_generator_against_a_dead_port_reports_errors_not_figures() -> None:
    result = run_load("127.0.0.1", free_port(), ["/ok"], concurrency=2, seconds=0.3)

    assert result.errors > 0 and not result.latencies_ms
    assert "ConnectionRefusedError" in result.error_samples[0]
    assert result.requests_per_s == 0 and result.percentile_ms(99) == 0


@pytest.mark.parametrize("args", [["--seconds", "0"], ["--concurrency", "0"], ["--seconds", "x"]])
def test_bad_options_are_refused_before_anything_starts(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["bench", "api", *args])

    assert result.exit_code == 2
    assert "Invalid value" in result.output


def _load(rps: float, p99: float, errors: int = 0) -> EndpointLoad:
    return EndpointLoad(requests_per_s=rps, p50_ms=p99 / 3, p99_ms=p99, errors=errors,
                        cpu_cores={"api": 0.9, "load_generator": 0.1})


@pytest.mark.parametrize(("latest", "meets"), [
    (_load(3000, 50), True),
    (_load(2999, 20), False),
    (_load(5000, 51), False),
    (_load(5000, 20, errors=1), False),
])
def test_verdict_against_the_target(latest: EndpointLoad, meets: bool) -> None:
    result = ApiBenchResult(latest=latest, aggregates_24h=_load(400, 200), concurrency=50,
                            api_workers=1, seconds=10)

    assert result.meets_target is meets
    assert ("verdict: latest meets" in result.to_text()) is meets
    assert result.to_dict()["cpu"]["latest"] == {"api": 0.9, "load_generator": 0.1}
