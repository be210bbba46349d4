"""A lean HTTP/1.1 load generator: N keep-alive clients on raw asyncio streams, for `bench api`.

Each client sends one GET, reads the whole response (``Content-Length`` or chunked body), records
its latency and sends the next, until the time is up. No HTTP library: parsing a status line and a
few headers costs the generator far less CPU than a general client would, which matters when the
generator shares two cores with the server it measures (its own CPU time is part of the result).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LoadResult", "run_load"]

_TIMEOUT_S = 30.0  # one response slower than this counts as an error, and the client reconnects


@dataclass
class LoadResult:
    """What one load run measured."""

    seconds: float  # wall time from the first request to the last response
    latencies_ms: list[float] = field(default_factory=list)  # of successful (2xx) requests
    errors: int = 0  # non-2xx answers, broken connections and timeouts
    error_samples: list[str] = field(default_factory=list)  # the first few, to say what went wrong
    generator_cpu_s: float = 0.0  # CPU time of this process while it ran the load

    @property
    def requests_per_s(self) -> float:
        """Return successful requests per second of wall time."""
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """Return the ``q``-th percentile latency of successful requests (0.0 if there were none)."""
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


class _BadResponse(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise _BadResponse(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    length, chunked, keep_alive = None, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            keep_alive = "close" not in value.lower()
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:  # no length: the body runs to the end of the connection
        await reader.read()
        keep_alive = False
    return status, keep_alive


async def _client(host: str, port: int, requests: Sequence[bytes], start: int, deadline: float,
                  result: LoadResult) -> None:
    """Send the requests, rotating from ``start``, one after another until ``deadline``."""
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    for request in itertools.islice(itertools.cycle(requests), start, None):
        if time.monotonic() >= deadline:
            break
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter()
            writer.write(request)
            status, keep_alive = await asyncio.wait_for(_read_response(reader), _TIMEOUT_S)
            elapsed_ms = (time.perf_counter() - sent) * 1000.0
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, ValueError, _BadResponse) as err:
            _note_error(result, f"{type(err).__name__}: {err}")
            if writer is not None:
                writer.close()
            writer = reader = None
            await asyncio.sleep(0.01)  # a refused connection must not become a busy loop
            continue
        if 200 <= status < 300:
            result.latencies_ms.append(elapsed_ms)
        else:
            _note_error(result, f"HTTP {status}")
        if not keep_alive:
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()


def _note_error(result: LoadResult, what: str) -> None:
    result.errors += 1
    if len(result.error_samples) < 5:
        result.error_samples.append(what)


async def _run(host: str, port: int, requests: Sequence[bytes], concurrency: int,
               seconds: float) -> LoadResult:
    result = LoadResult(seconds=0.0)
    cpu_before, started = time.process_time(), time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_client(host, port, requests, i, deadline, result)
                           for i in range(concurrency)))
    result.seconds = time.monotonic() - started
    result.generator_cpu_s = time.process_time() - cpu_before
    return result


def run_load(host: str, port: int, paths: Sequence[str], *, concurrency: int,
             seconds: float, headers: Mapping[str, str] | None = None) -> LoadResult:
    """GET ``paths`` (rotating; client i starts at path i) with ``concurrency`` clients for ``seconds``,
    each request carrying ``headers``."""
    if not paths or concurrency < 1 or seconds <= 0:
        raise ValueError("need at least one path, one client and a positive duration")
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    requests = [f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n{extra}\r\n"
                .encode("ascii") for path in paths]
    return asyncio.run(_run(host, port, requests, concurrency, seconds))
