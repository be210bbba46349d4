"""CSV answers (RFC 4180, UTF-8, CRLF) streamed to the client as the database hands over rows.

Values are written as the JSON answers carry them: times RFC 3339 in UTC, numbers as Python's
``repr`` of the float (the shortest text that reads back to the same double), an empty field for
null. The response is started only once the stream has produced its first chunk, so whatever
goes wrong before (a refused request, a failed statement) is still a problem document; and the
stream is closed however the response ends, which gives its pooled connection back.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["CSV_MEDIA_TYPE", "CsvResponse", "csv_chunks", "format_field", "start_csv_response"]

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


def format_field(value: Any) -> str:
    """Return one CSV field's text: RFC 3339 times, lossless floats, empty for None."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _encode(rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([format_field(value) for value in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


async def csv_chunks(header: Sequence[str],
                     batches: AsyncIterator[Iterable[Sequence[Any]]]) -> AsyncIterator[bytes]:
    """Yield the header line with the first batch, then one chunk of CSV per batch of rows."""
    try:
        first = await anext(batches, None)
        yield _encode([header]) + (_encode(first) if first is not None else b"")
        async for batch in batches:
            yield _encode(batch)
    finally:
        await _close(batches)


async def _close(stream: AsyncIterable[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


class CsvResponse(StreamingResponse):
    """A streamed CSV answer whose chunks are closed however the response ends."""

    media_type = CSV_MEDIA_TYPE

    def __init__(self, first: bytes, rest: AsyncIterator[bytes], *,
                 headers: Mapping[str, str] | None = None, background: BackgroundTask | None = None) -> None:
        super().__init__(_then(first, rest), headers=headers, background=background)
        self._rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Starlette stops iterating when the client goes away (or sending fails) but leaves
            # the iterators open; closing them ends the database stream and frees its connection,
            # the source too in case the body was never started.
            await _close(self.body_iterator)
            await _close(self._rest)


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


async def start_csv_response(chunks: AsyncIterator[bytes], *, headers: Mapping[str, str] | None = None,
                             background: BackgroundTask | None = None) -> CsvResponse:
    """Run ``chunks`` to its first chunk, then return the response that streams it all.

    Raises:
        Exception: whatever the stream raised before its first chunk (the request's problem).
    """
    try:
        first = await anext(chunks)
    except BaseException:
        await _close(chunks)
        raise
    return CsvResponse(first, chunks, headers=headers, background=background)
