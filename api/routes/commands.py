"""POST /devices/{id}/commands (write); GET /devices/{id}/commands and /commands/{command_id} (read).

Sending is `smartcity.commands.issue_command`, the CLI's path too: checked against the device and
its kind, stored, then published at QoS 1 through the API's broker client. It speaks psycopg's
sync API, so it runs in a worker thread on a connection of its own (as POST /devices does). Reads
settle the outcomes they show first (`api.queries.commands`); `api.outcomes` settles the rest in
the background.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from api.broker import Broker, BrokerUnavailable
from api.command_models import CommandIn, CommandOut, CommandPage
from api.deps import BrokerDep, ConnDep, SettingsDep
from api.errors import (
    Conflict,
    InvalidParameter,
    NotFound,
    ServiceUnavailable,
    problem_responses,
)
from api.keyset import decode_keyset, encode_keyset
from api.queries import commands as queries
from smartcity.catalog import DEVICE_ID_PATTERN
from smartcity.commands import (
    CommandNotSent,
    CommandRefused,
    RevokedDevice,
    UnknownDevice,
    issue_command,
)
from smartcity.db.connect import connect, service_database_url

__all__ = ["router", "write_router"]

# How long a POST waits for the broker's PUBACK before answering without published_at.
_PUBACK_WAIT_S = 2.0
_RESTART = "leave the cursor out to start from the newest command"

router = APIRouter(tags=["commands"], responses=problem_responses(422, 503))
write_router = APIRouter(tags=["commands"], responses=problem_responses(409, 422, 503))

# As api.params.DeviceIdPath, with an actuator for the example.
DeviceIdPath = Annotated[str, Path(description="The device's public id",
                                  pattern=DEVICE_ID_PATTERN.pattern, examples=["light-tanah-grogot-01"])]
CommandIdPath = Annotated[str, Path(description="A command's id", pattern=r"^[A-Za-z0-9_-]{8,64}$",
                                    examples=["cmd-3f2a9c01d4e5b6a7"])]
_ONE_DEVICE = problem_responses(404, descriptions={404: "No device with this id is registered"})


def _out(row: dict[str, Any]) -> CommandOut:
    return CommandOut.model_validate({key: value for key, value in row.items() if key != "id"})


def _send(url: str, broker: Broker, device_id: str, body: CommandIn, issued_by: str,
          timeout_s: float) -> dict[str, Any]:
    def publish(topic: str, payload: bytes) -> bool:
        try:
            return broker.publish_confirmed(topic, payload, timeout_s=_PUBACK_WAIT_S)
        except BrokerUnavailable as err:
            raise ConnectionError(str(err)) from err

    with connect(url, purpose="api", autocommit=True) as conn:
        return issue_command(conn, device_id, body.action, level=body.level, schedule=body.schedule,
                             issued_by=issued_by, timeout_s=timeout_s, publish=publish)


@write_router.post(
    "/devices/{device_id}/commands", status_code=202, response_model=CommandOut,
    summary="Send a command to a device (street lights: on, off, dim, schedule)",
    responses=problem_responses(404, 409, 422, 503, descriptions={
        404: "No device with this id is registered", 409: "The device was revoked",
        422: "A malformed command, or one the device's kind does not take (the problem names what"
             " each kind accepts)",
        503: "The broker cannot take the command: it is stored as not_sent (`command_id`)"}))
async def send_command(request: Request, response: Response, settings: SettingsDep,
                       broker: BrokerDep, device_id: DeviceIdPath, body: CommandIn) -> CommandOut:
    """Store a command and publish it on the device's commands topic (MQTT QoS 1, not retained).

    Answers 202 with the command (outcome `pending`) and its `Location`. It is `acknowledged` once
    a reading of the device shows the commanded state, `timed_out` when none did by its deadline
    (`SMARTCITY_API__COMMAND_TIMEOUT_S` after it was issued). When the broker cannot take it the
    answer is 503 and the stored command says `not_sent`.
    """
    issued_by = request.state.principal.key_id or "public"
    try:
        row = await asyncio.to_thread(_send, service_database_url(settings, "api"), broker,
                                      device_id, body, issued_by, settings.api.command_timeout_s)
    except UnknownDevice as err:
        raise NotFound(str(err)) from None
    except RevokedDevice as err:
        raise Conflict(str(err), device_id=device_id) from None
    except CommandRefused as err:
        raise InvalidParameter("body.action", str(err), "body") from None
    except CommandNotSent as err:
        raise ServiceUnavailable(str(err), command_id=err.record["command_id"]) from None
    location = request.app.url_path_for("read_command", command_id=row["command_id"])
    response.headers["Location"] = location
    return _out(row)


@router.get("/devices/{device_id}/commands", response_model=CommandPage,
            summary="List a device's commands with their outcomes",
            responses={**_ONE_DEVICE, **problem_responses(400)})
async def list_device_commands(
    request: Request, response: Response, conn: ConnDep, device_id: DeviceIdPath,
    limit: Annotated[int, Query(ge=1, le=500, description="Commands per page, newest first",
                                examples=[50])] = 50,
    cursor: Annotated[str | None, Query(
        max_length=200, description="`next_cursor` of the previous page, as given",
        examples=["WzcsImxpZ2h0LXRhbmFoLWdyb2dvdC0wMSJd"])] = None,
) -> CommandPage:
    """List the commands sent to a device, newest first, with their outcomes."""
    before = None if cursor is None else decode_keyset(
        cursor, device_id, size=1, restart=_RESTART,
        other_listing="another device's listing")[0]
    if not await queries.device_exists(conn, device_id):
        raise NotFound(f"device {device_id!r} is not registered")
    rows = await queries.list_commands(conn, device_id, limit=limit + 1, before=before)
    page = rows[:limit]
    next_cursor = encode_keyset([page[-1]["id"]], device_id) if len(rows) > limit else None
    next_url = None
    if next_cursor is not None:
        next_url = str(request.url.include_query_params(cursor=next_cursor))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return CommandPage(items=[_out(row) for row in page], next_cursor=next_cursor, next=next_url)


@router.get("/commands/{command_id}", response_model=CommandOut, summary="Read one command",
            responses=problem_responses(404, descriptions={404: "No command has this id"}))
async def read_command(conn: ConnDep, command_id: CommandIdPath) -> CommandOut:
    """Return one command with its outcome."""
    row = await queries.get_command(conn, command_id)
    if row is None:
        raise NotFound(f"no command has the id {command_id!r}")
    return _out(row)
