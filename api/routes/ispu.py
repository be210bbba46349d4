"""GET /ispu: a site's air-quality index (ISPU, Permen LHK P.14/2020) and US AQI at a time.

Each pollutant's mean over its averaging window (``index.averaging_hours``) ending at ``at`` comes
from the planner; a mean is used only when enough of its window's hours held readings
(``index.min_coverage``), and the index needs a particulate among them (``PARTICULATES``), so too
little data gives ``"ispu": null`` and a reason, never a number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ConnDep, SettingsDep
from api.errors import NotFound, problem_responses
from api.indices import (
    PARTICULATES,
    TABLE_UNIT,
    SubIndex,
    compute_site_index,
    compute_sub_index,
    compute_us_aqi_pm25,
    to_table_unit,
)
from api.limits import QueryTime
from api.models import IspuOut, PollutantIndex, UsAqiOut
from api.queries.indices import PollutantWindow, read_pollutant_windows
from smartcity.catalog import METRICS, SITES

__all__ = ["router"]

router = APIRouter(tags=["air quality"], responses=problem_responses(
    404, 422, 503, descriptions={404: "No site with this id"}))

# The US AQI of PM2.5 is defined on 24-hour means only.
_US_AQI_HOURS = 24


def _describe(window: PollutantWindow) -> str:
    return (f"{window.metric} had {window.hours_with_data} of {window.hours} h"
            f" ({window.coverage:.0%})")


@router.get("/ispu", response_model=IspuOut, summary="Compute a site's air-quality index")
async def read_ispu(
    conn: ConnDep,
    settings: SettingsDep,
    site: Annotated[str, Query(description="A site id (see /sites)", examples=["tanah-grogot"],
                               pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")],
    at: Annotated[QueryTime | None, Query(
        description="RFC 3339 with offset: the end (exclusive) of every averaging window; default now",
        examples=["2026-09-15T12:30:00+08:00"],
    )] = None,
) -> IspuOut:
    """Compute a site's ISPU from each pollutant's mean over its averaging window before `at`.

    Pollutants whose window held readings in fewer than the minimum share of its hours are left
    out (`excluded`). When that leaves neither PM10 nor PM2.5, `ispu` is null and `reason` says what
    each had: the gases alone would read "Baik" through a haze.
    """
    if site not in SITES:  # the catalogue seeds the sites table: no round trip needed
        raise NotFound(f"no site {site!r}; GET /api/v1/sites lists them")
    at = at or datetime.now(UTC)
    index_settings = settings.index
    windows = await read_pollutant_windows(conn, site, at, index_settings.averaging_hours)

    sub_indices: dict[str, PollutantIndex] = {}
    usable: dict[str, SubIndex] = {}
    excluded: list[PollutantWindow] = []
    for window in windows:
        concentration = (None if window.mean is None
                         else to_table_unit(window.metric, window.mean, METRICS[window.metric].unit))
        sub = None
        if concentration is not None and window.coverage >= index_settings.min_coverage:
            sub = usable[window.metric] = compute_sub_index(window.metric, concentration)
        else:
            excluded.append(window)
        sub_indices[window.metric] = PollutantIndex(
            concentration=concentration, unit=TABLE_UNIT, averaging_hours=window.hours,
            coverage=round(window.coverage, 3), readings=window.readings,
            sub_index=None if sub is None else round(sub.value, 2),
            band=None if sub is None else sub.category.id,
            beyond_scale=sub is not None and sub.beyond_scale)

    us_aqi = None
    pm25 = usable.get("pm25")
    if pm25 is not None and index_settings.averaging_hours["pm25"] == _US_AQI_HOURS:
        aqi = compute_us_aqi_pm25(pm25.concentration)
        us_aqi = UsAqiOut(aqi=aqi.aqi, category=aqi.category, concentration=aqi.concentration,
                          beyond_scale=aqi.beyond_scale)

    site_index = compute_site_index(usable)
    reason = None
    need = f"at least {index_settings.min_coverage:.0%} of a window's hours need readings"
    if site_index is None and usable:
        particulates = [w for w in excluded if w.metric in PARTICULATES]
        reason = (f"too little data for a particulate ({need}): {', '.join(map(_describe, particulates))};"
                  f" an index of {', '.join(usable)} alone would understate a haze")
    elif site_index is None:
        reason = f"too little data for every pollutant ({need}): {', '.join(map(_describe, excluded))}"
    return IspuOut(
        site_id=site, time=at,
        ispu=None if site_index is None else site_index.ispu,
        category=None if site_index is None else site_index.category.name,
        category_id=None if site_index is None else site_index.category.id,
        color=None if site_index is None else site_index.category.color,
        dominant=None if site_index is None else site_index.dominant,
        beyond_scale=site_index is not None and site_index.beyond_scale,
        min_coverage=index_settings.min_coverage, excluded=[w.metric for w in excluded],
        reason=reason, sub_indices=sub_indices, us_aqi=us_aqi)
