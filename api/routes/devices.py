"""GET /devices, /devices/{device_id} and /devices/{device_id}/latest."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ConnDep
from api.errors import NotFound, problem_responses
from api.models import DeviceLatest, DeviceOut, LatestValue
from api.params import DeviceIdPath, KindName, SiteId
from api.queries import devices as queries

__all__ = ["router"]

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
