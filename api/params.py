"""Request parameters checked against the metric catalogue (sites, device kinds) and the contract's
device-id pattern; the query of /aggregates.

A bad value fails FastAPI's request validation, which ``api.errors`` reports as a 422
problem naming the parameter (400 on /aggregates); the OpenAPI document lists the allowed values
and the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from api.limits import QueryTime
from smartcity.catalog import DEVICE_ID_PATTERN, DEVICE_KINDS, METRICS, SITES

__all__ = ["AGGS", "AggregateParams", "DeviceIdPath", "KindName", "SiteId"]


def _member_of(known: Iterable[str], what: str) -> Callable[[str], str]:
    names = tuple(known)

    def check(value: str) -> str:
        if value not in names:
            raise PydanticCustomError(
                "unknown_name", "unknown {what} '{value}'; known: {known}",
                {"what": what, "value": value, "known": ", ".join(names)},
            )
        return value

    return check


SiteId = Annotated[
    str,
    AfterValidator(_member_of(SITES, "site")),
    WithJsonSchema({"type": "string", "enum": list(SITES)}),
]
KindName = Annotated[
    str,
    AfterValidator(_member_of(DEVICE_KINDS, "device kind")),
    WithJsonSchema({"type": "string", "enum": list(DEVICE_KINDS)}),
]

# Checked before any query runs: an id that cannot exist (a NUL, a slash, 300 characters) is the
# client's mistake (422), not something for the database to choke on.
DeviceIdPath = Annotated[str, Path(
    description="The device's public id", pattern=DEVICE_ID_PATTERN.pattern,
    examples=["aq-tanah-grogot-01"],
)]

# What the planner (smartcity_aggregate) answers; it checks them itself and says what is wrong.
AGGS = ("avg", "min", "max", "sum", "count", "first", "last", "increase")


class AggregateParams(BaseModel):
    """The query of ``GET /aggregates``; names and values are the planner's, which checks them."""

    # A misspelt parameter (``devices=``, ``metrc=``) would otherwise be ignored and answer
    # another question than the one asked.
    model_config = ConfigDict(extra="forbid")

    metric: Annotated[str, WithJsonSchema({"type": "string", "enum": list(METRICS), "examples": ["pm25"]})
                      ] = Field(description="A metric of the catalogue")
    bucket: str = Field("1h", description="Bucket size: a count and a unit s, m, h, d, w or mo "
                        "(1m, 5m, 15m, 1h, 1d, 1w, 1mo); days, weeks (from Monday) and months follow tz",
                        examples=["1h"])
    agg: Annotated[str, WithJsonSchema({"type": "string", "enum": list(AGGS), "examples": ["avg"]})] = Field(
        "avg", description="The aggregate of each bucket; increase: a counter's rise per bucket, for"
        " cumulative metrics only")
    start: QueryTime | None = Field(
        None, description="RFC 3339 with an offset, inclusive (default: end − 24 h)",
        examples=["2026-11-29T00:00:00+08:00"])
    end: QueryTime | None = Field(None, description="RFC 3339 with an offset, exclusive (default: now)",
                                  examples=["2026-11-30T00:00:00+08:00"])
    device: list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)]] = Field(
        [], description="Only these devices (repeat); default: every device whose kind reports the metric",
        examples=[["aq-tanah-grogot-01"]])
    site: list[SiteId] = Field([], description="Only devices of these sites (repeat)",
                               examples=[["tanah-grogot"]])
    group_by: Literal["device", "site", "none"] = Field(
        "device", description="One series per device, per site, or one for all (key 'all')",
        examples=["site"])
    tz: str | None = Field(None, description="IANA time zone of day, week and month buckets "
                           "(default: the rollup zone, Asia/Makassar)", examples=["Asia/Makassar"])
