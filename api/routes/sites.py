"""GET /sites: the districts (kecamatan) of Kabupaten Paser."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ConnDep
from api.errors import problem_responses
from api.models import SiteOut
from api.queries import sites as queries

__all__ = ["router"]

router = APIRouter(tags=["sites"], responses=problem_responses(503))


@router.get("/sites", summary="List the sites")
async def list_sites(conn: ConnDep) -> list[SiteOut]:
    """List every site: the ten districts of Kabupaten Paser, with their coordinates and time zone."""
    return [SiteOut.model_validate(row) for row in await queries.list_sites(conn)]
