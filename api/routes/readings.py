"""GET /readings: raw readings of the devices or sites named, in pages or as one streamed CSV.

Pages follow the readings' order (time, device id, metric) with a keyset cursor, so a reading
stored behind the cursor while a client pages never shifts a page, and every page is a range
scan of the readings key however deep it lies. The window (start, end) is fixed by the first
page and carried by the cursor. ``Accept: text/csv`` streams the window's readings, up to
``api.readings_csv_max_rows`` of them, with a ``Link`` to the rest.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.csv import csv_chunks, start_csv_response
from api.deps import PoolDep, SettingsDep
from api.errors import BadRequest, problem_responses
from api.models import ReadingPage
from api.negotiation import CSV, AcceptDep
from api.pagination import Cursor, Filters, ReadingKey, decode_cursor, encode_cursor
from api.params import ReadingParams
from api.queries.readings import Row, Series, Window, open_reading_stream, read_page, select_series
from smartcity.settings import ApiSettings

__all__ = ["CSV_BATCH_ROWS", "CSV_COLUMNS", "DEFAULT_LIMIT", "DEFAULT_SPAN", "router"]

DEFAULT_SPAN = timedelta(hours=24)
DEFAULT_LIMIT = 1000
CSV_COLUMNS = ("device_id", "metric", "time", "value", "unit")
CSV_BATCH_ROWS = 2000  # rows per fetch from the server-side cursor, and per chunk sent

router = APIRouter(tags=["readings"], responses=problem_responses(400, 406, 422, 503))


class _JsonResponse(Response):
    media_type = "application/json"


def _window(params: ReadingParams, cursor: Cursor | None, settings: ApiSettings) -> Window:
    """Return the window the request asks for: the cursor's, or from start and end."""
    if cursor is not None:
        for name, given, carried in (("start", params.start, cursor.start), ("end", params.end, cursor.end)):
            if given is not None and given != carried:
                raise BadRequest(
                    f"{name} differs from the window of the request that returned the cursor"
                    f" ({carried.isoformat()})", hint="leave start and end out, or repeat those of"
                    " the first page (the `next` link carries them)")
        start, end = cursor.start, cursor.end
    else:
        end = params.end or datetime.now(UTC)
        start = params.start or end - DEFAULT_SPAN
    # Checked for a cursor's window too: its checksum is no signature, so it may have been forged.
    if start >= end:
        raise BadRequest(f"start ({start.isoformat()}) must be before end ({end.isoformat()})")
    longest = timedelta(days=settings.readings_max_range_days)
    if end - start > longest:
        raise BadRequest(
            f"the range from start to end is {end - start}, longer than the most one request may"
            f" span, {settings.readings_max_range_days} days", hint="page through shorter ranges")
    return Window(start.astimezone(UTC), end.astimezone(UTC), cursor.after if cursor else None)


def _limit(params: ReadingParams, csv: bool, settings: ApiSettings) -> int:
    most, setting = ((settings.readings_csv_max_rows, "READINGS_CSV_MAX_ROWS") if csv
                     else (settings.readings_max_page, "READINGS_MAX_PAGE"))
    limit = params.limit or (most if csv else min(DEFAULT_LIMIT, most))
    if limit > most:
        raise BadRequest(f"limit {limit:,} is above the most {'a CSV answer' if csv else 'a page'}"
                         f" may hold, {most:,} (SMARTCITY_API__{setting})")
    return limit


def _check_series(series: list[Series], unknown: list[str], settings: ApiSettings) -> None:
    if unknown:
        raise BadRequest(f"unknown device(s): {', '.join(unknown)}", unknown=unknown)
    if len(series) > settings.readings_max_series:
        raise BadRequest(
            f"the request names {len(series)} series (device × metric), more than the most one"
            f" request may merge, {settings.readings_max_series}",
            hint="name fewer devices or sites, or the metrics wanted")


def _next_link(request: Request, window: Window, token: str) -> str:
    return str(request.url.include_query_params(
        start=window.start.isoformat(), end=window.end.isoformat(), cursor=token))


def _items(rows: Iterable[Row], series: Sequence[Series]) -> list[dict[str, Any]]:
    return [{"device_id": series[s].device_id, "metric": series[s].metric, "time": time, "value": value,
             "unit": series[s].unit} for time, s, value in rows]


async def _csv_rows(batches: AsyncGenerator[list[Row], None],
                    series: Sequence[Series]) -> AsyncIterator[list[tuple[Any, ...]]]:
    try:
        async for rows in batches:
            yield [(series[s].device_id, series[s].metric, time, value, series[s].unit)
                   for time, s, value in rows]
    finally:
        await batches.aclose()


@router.get("/readings", response_model=ReadingPage, summary="List raw readings, a page at a time",
            responses={
    200: {"content": {"text/csv": {"schema": {"type": "string"}, "example":
          "device_id,metric,time,value,unit\r\naq-tanah-grogot-01,pm25,2026-11-30T04:00:00+00:00,23.4,µg/m³\r\n"}},
          "description": "A page of readings (JSON), or the window's readings as CSV"}})
async def read_readings(request: Request, pool: PoolDep, settings: SettingsDep, accept: AcceptDep,
                        params: Annotated[ReadingParams, Query()]) -> Response:
    """List raw readings ordered by time, device id and metric, a page at a time.

    Name `device` and/or `site` (each may repeat), optionally `metric`. Follow `next` (or pass
    `next_cursor` as `cursor`) for the next page. `Accept: text/csv` streams the whole window as
    CSV, up to a row limit, with a `Link: <…>; rel="next"` header when rows remain.
    """
    if not params.device and not params.site:
        raise BadRequest("name at least one device or site (each may repeat)",
                         hint="e.g. ?device=aq-tanah-grogot-01 or ?site=tanah-grogot")
    api = settings.api
    filters = Filters.of(params.device, params.site, params.metric)
    cursor = decode_cursor(params.cursor, filters) if params.cursor is not None else None
    window = _window(params, cursor, api)
    csv = accept == CSV
    limit = _limit(params, csv, api)
    # A connection of its own for these checks, given back before a CSV stream takes one.
    async with pool.connection() as conn:
        selection = await select_series(conn, params.device, params.site, params.metric)
        _check_series(selection.series, selection.unknown_devices, api)
        series = selection.series
        rows = [] if csv else await read_page(conn, series, window, limit + 1)

    def link_after(key: ReadingKey) -> tuple[str, str]:
        token = encode_cursor(Cursor(key, window.start, window.end), filters)
        return token, _next_link(request, window, token)

    if csv:
        stream = await open_reading_stream(pool, series, window, limit=limit, batch_rows=CSV_BATCH_ROWS)
        # From here the stream holds a connection, until the response (or this) closes it.
        try:
            headers = {}
            if stream.page_end is not None:
                headers["Link"] = f'<{link_after(stream.page_end)[1]}>; rel="next"'
        except BaseException:
            await stream.batches.aclose()
            raise
        return await start_csv_response(csv_chunks(CSV_COLUMNS, _csv_rows(stream.batches, series)),
                                        headers=headers)

    token = url = None
    headers = {}
    if len(rows) > limit:
        time, s, _ = rows[limit - 1]
        token, url = link_after(ReadingKey(time, series[s].device_id, series[s].metric))
        headers["Link"] = f'<{url}>; rel="next"'
    body = {"items": _items(rows[:limit], series), "next_cursor": token, "next": url}
    return _JsonResponse(orjson.dumps(body), headers=headers)
