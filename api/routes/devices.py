"""GET /devices, /devices/{device_id} and /devices/{device_id}/latest; POST /devices (admin)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import ConnDep, SettingsDep
from api.errors import Conflict, InvalidParameter, NotFound, problem_responses
from api.models import DeviceLatest, DeviceOut, DeviceRegistered, LatestValue
from api.params import DeviceIdPath, DeviceIn, KindName, SiteId
from api.queries import devices as queries
from smartcity.db.connect import connect, service_database_url
from smartcity.devices import DeviceError, DeviceExists, get_device, register_device

__all__ = ["admin_router", "router"]

router = APIRouter(prefix="/devices", tags=["devices"], responses=problem_responses(422, 503))
# The routes of one device: the id may name none.
_ONE_DEVICE = problem_responses(404, descriptions={404: "No device with this id is registered"})


def _unknown(device_id: str) -> NotFound:
    return NotFound(f"device {device_id!r} is not registered")


@router.get("", summary="List devices")
async def list_devices(
    conn: ConnDep,
    site: Annotated[SiteId | None, Query(description="Only devices of this site (see /sites)",
                                         examples=["tanah-grogot"])] = None,
    kind: Annotated[KindName | None, Query(description="Only devices of this kind",
                                           examples=["air_quality_station"])] = None,
) -> list[DeviceOut]:
    """List registered devices by id, optionally of one site and/or kind, with their status and last_seen."""
    rows = await queries.list_devices(conn, site_id=site, kind=kind)
    return [DeviceOut.model_validate(row) for row in rows]


@router.get("/{device_id}", summary="Read a device", responses=_ONE_DEVICE)
async def read_device(conn: ConnDep, device_id: DeviceIdPath) -> DeviceOut:
    """Return one device with its status and when it was last seen."""
    row = await queries.get_device(conn, device_id)
    if row is None:
        raise _unknown(device_id)
    return DeviceOut.model_validate(row)


@router.get("/{device_id}/latest", summary="Read a device's latest values", responses=_ONE_DEVICE)
async def read_latest(conn: ConnDep, device_id: DeviceIdPath) -> DeviceLatest:
    """Return the newest value of every metric the device has reported, in the catalogue's units.

    A registered device that has reported nothing yet has empty `metrics`.
    """
    rows = await queries.latest_values(conn, device_id)
    if rows is None:
        raise _unknown(device_id)
    return DeviceLatest(
        device_id=device_id,
        metrics={
            row["name"]: LatestValue(value=row["value"], time=row["time"], unit=row["unit"])
            for row in rows
        },
    )


admin_router = APIRouter(prefix="/devices", tags=["devices"],
                         responses=problem_responses(409, 422, 503))


def _register(url: str, device: DeviceIn) -> DeviceRegistered:
    """Register ``device`` through the CLI's path and return it with its credentials."""
    with connect(url, purpose="api", autocommit=True) as conn:
        registration = register_device(conn, device.id, device.kind, device.site, device.lat,
                                       device.lon)
        record = get_device(conn, device.id)
    if record is None:  # deleted between the two statements: not the client's doing (a 500)
        raise RuntimeError(f"device {device.id!r} vanished right after its registration")
    return DeviceRegistered(**dataclasses.asdict(record), mqtt_username=registration.mqtt_username,
                            mqtt_password=registration.mqtt_password)


@admin_router.post("", status_code=201, response_model=DeviceRegistered,
                   summary="Register a device (its MQTT password is shown once)")
async def create_device(request: Request, response: Response, settings: SettingsDep,
                        device: DeviceIn) -> DeviceRegistered:
    """Register a device and return it with its MQTT login; the password is shown only this once.

    Its readings quarantined as `unknown_device` before now are stored by
    `smartcity quarantine replay`.
    """
    # smartcity.devices is the one registration path (the CLI's too) and speaks psycopg's sync
    # API: it runs in a worker thread on a connection of its own, not on the event loop.
    try:
        registered = await asyncio.to_thread(_register, service_database_url(settings, "api"), device)
    except DeviceExists as err:
        raise Conflict(str(err), device_id=device.id) from None
    except DeviceError as err:  # the body model checks the same first; kept as the last word
        raise InvalidParameter("body", str(err), "body") from None
    response.headers["Location"] = request.app.url_path_for("read_device", device_id=device.id)
    # A secret in the body: no cache on the way may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return registered
