"""Request parameters checked against the metric catalogue (sites, device kinds) and the contract's
device-id pattern; the query of /aggregates.

A bad value fails FastAPI's request validation, which ``api.errors`` reports as a 422
problem naming the parameter (400 on /aggregates); the OpenAPI document lists the allowed values
and the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Path, Request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api.errors import InvalidParameter
from api.limits import QueryTime
from smartcity.catalog import DEVICE_ID_PATTERN, DEVICE_KINDS, METRICS, SITES
from smartcity.contract import Reason

__all__ = [
    "AGGS",
    "QUARANTINE_MAX_PAGE",
    "QUARANTINE_PAYLOAD_MAX",
    "AggregateParams",
    "DeviceIdPath",
    "DeviceIn",
    "KindName",
    "MetricName",
    "QuarantineParams",
    "ReadingParams",
    "SiteId",
    "refuse_unknown_query_parameters",
]


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

MetricName = Annotated[
    str,
    AfterValidator(_member_of(METRICS, "metric")),
    WithJsonSchema({"type": "string", "enum": list(METRICS)}),
]

# Checked before any query runs: an id that cannot exist (a NUL, a slash, 300 characters) is the
# client's mistake (422), not something for the database to choke on.
DeviceIdPath = Annotated[str, Path(
    description="The device's public id", pattern=DEVICE_ID_PATTERN.pattern,
    examples=["aq-tanah-grogot-01"],
)]

def _check_time_zone(value: str | None) -> str | None:
    # The planner reads tz only for day, week and month buckets: without this check, a zone that
    # does not exist passed unnoticed with any other bucket (the SQL-injection walk found it).
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "unknown_time_zone", "unknown time zone '{value}'; give an IANA name such as"
                " Asia/Makassar, Asia/Jakarta or UTC", {"value": value[:80]}) from None
    return value


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
    tz: Annotated[str | None, AfterValidator(_check_time_zone)] = Field(
        None, description="IANA time zone of day, week and month buckets "
        "(default: the rollup zone, Asia/Makassar)", examples=["Asia/Makassar"])


# Normalised on arrival: times compare and print alike whatever offset they came with (QueryTime has
# checked that a UTC time exists).
UtcDatetime = Annotated[QueryTime, AfterValidator(lambda value: value.astimezone(UTC))]

# The contract's reason codes, inline with an example (an enum's component cannot carry one).
ReasonCode = Annotated[
    str,
    AfterValidator(_member_of((reason.value for reason in Reason), "reason code")),
    WithJsonSchema({"type": "string", "enum": [reason.value for reason in Reason],
                    "examples": ["unknown_device"], "description": "A reason code of the contract"}),
]

# A page of the quarantine may carry up to this many items, each with up to this many payload
# bytes (a stored payload is at most 64 KiB, so the largest value shows any of them whole).
QUARANTINE_MAX_PAGE = 500
QUARANTINE_PAYLOAD_MAX = 65536


class QuarantineParams(BaseModel):
    """The query of ``GET /quarantine``: filters, the page, and how much of each payload to show."""

    model_config = ConfigDict(extra="forbid")

    reason: list[ReasonCode] = Field(
        [], description="Only messages with a part rejected for one of these codes (repeat)",
        examples=[["unknown_device"]])
    device: str | None = Field(None, pattern=DEVICE_ID_PATTERN.pattern,
                               description="Only messages of this device id",
                               examples=["aq-tanah-grogot-01"])
    since: UtcDatetime | None = Field(None, description="Received at or after (RFC 3339, inclusive)",
                                        examples=["2026-11-30T00:00:00+08:00"])
    until: UtcDatetime | None = Field(None, description="Received before (RFC 3339, exclusive)",
                                        examples=["2026-12-01T00:00:00+08:00"])
    state: Literal["pending", "replayed", "all"] = Field(
        "pending", description="pending: not replayed yet (as `smartcity quarantine list`); "
        "replayed; or all (`--all`)", examples=["all"])
    limit: int = Field(50, ge=1, le=QUARANTINE_MAX_PAGE, description="Items per page, newest first",
                       examples=[100])
    cursor: str | None = Field(None, max_length=200,
                               description="`next_cursor` of the previous page, as given",
                               examples=["WzcsIjljMWYzYTJiMDRkMWU3YWEiXQ"])
    payload_bytes: int = Field(
        1024, ge=0, le=QUARANTINE_PAYLOAD_MAX, examples=[65536],
        description="Show at most this many bytes of each payload (the size as received is always given)")


class DeviceIn(BaseModel):
    """A device to register (``POST /devices``), as ``smartcity devices add`` takes it."""

    # A misspelt field (``site_id``, ``latitude``) would otherwise be dropped silently and the
    # device registered without what the operator meant to give.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"examples": [
        {"id": "river-kandilo-02", "kind": "river_level_sensor", "site": "tanah-grogot",
         "lat": -1.905, "lon": 116.196},
    ]})

    id: str = Field(pattern=DEVICE_ID_PATTERN.pattern, description="The device's public id, also "
                    "its MQTT username and topic level", examples=["river-kandilo-02"])
    kind: KindName = Field(description="A device kind of the catalogue", examples=["river_level_sensor"])
    site: SiteId = Field(description="The site (kecamatan) id", examples=["tanah-grogot"])
    lat: float | None = Field(None, ge=-90, le=90, description="Latitude in degrees (with lon)",
                              examples=[-1.905])
    lon: float | None = Field(None, ge=-180, le=180, description="Longitude in degrees (with lat)",
                              examples=[116.196])

    @model_validator(mode="after")
    def _both_coordinates_or_neither(self) -> DeviceIn:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        return self
class ReadingParams(BaseModel):
    """The query of ``GET /readings``: which series, which window, and where the page starts."""

    model_config = ConfigDict(extra="forbid")  # a misspelt filter would widen the answer

    device: list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN.pattern)]] = Field(
        [], description="Readings of these devices (repeat); `device` or `site` is required",
        examples=[["aq-tanah-grogot-01"]])
    site: list[SiteId] = Field([], description="Readings of the devices of these sites (repeat); with "
                               "`device`, only those devices that stand in these sites",
                               examples=[["tanah-grogot"]])
    metric: list[MetricName] = Field([], description="Only these metrics (repeat); default: every "
                                     "metric the devices report", examples=[["pm25"]])
    start: QueryTime | None = Field(None, description="RFC 3339 with an offset, inclusive (default: "
                                    "end − 24 h)", examples=["2026-11-30T06:00:00+08:00"])
    end: QueryTime | None = Field(None, description="RFC 3339 with an offset, exclusive (default: now)",
                                  examples=["2026-11-30T12:00:00+08:00"])
    limit: int | None = Field(None, ge=1, description="Readings per page (default 1,000; at most "
                              "SMARTCITY_API__READINGS_MAX_PAGE). CSV: rows in the answer (default "
                              "and most: SMARTCITY_API__READINGS_CSV_MAX_ROWS)", examples=[1000])
    cursor: str | None = Field(None, max_length=1000, description="`next_cursor` of the previous page; "
                               "the other parameters must be those of that page's request",
                               examples=["WzEsMTc2NDQ3NTIwMDAwMDAwMCwiYXEtdGFuYWgtZ3JvZ290LTAxIiwicG0yNSJd"])


# id(route) → (route, its names); the route is kept so that its id cannot be reused. Routes are
# not hashable, and their parameters do not change once the app is built.
_DECLARED: dict[int, tuple[Any, frozenset[str] | None]] = {}


def _declared_query_names(route: Any) -> frozenset[str] | None:
    """The query parameters ``route`` declares; None when a model takes them (it refuses extras)."""
    known = _DECLARED.get(id(route))
    if known is not None and known[0] is route:
        return known[1]
    names = _collect_query_names(route)
    _DECLARED[id(route)] = (route, names)
    return names


def _collect_query_names(route: Any) -> frozenset[str] | None:
    names: set[str] = set()
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        for param in dependant.query_params:
            annotation = param.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                return None
            names.add(param.alias)
        pending.extend(dependant.dependencies)
    return frozenset(names)


def refuse_unknown_query_parameters(request: Request) -> None:
    """Refuse a query parameter the route does not take (a misspelt ``sit=`` would widen the answer).

    Raises:
        InvalidParameter: the first unknown parameter, with the ones the route takes.
    """
    route = request.scope.get("route")
    declared = None if route is None else _declared_query_names(route)
    if declared is None:
        return
    for name in request.query_params:
        if name not in declared:
            takes = ", ".join(sorted(declared)) or "none"
            raise InvalidParameter(name, f"is not a parameter of this route, which takes: {takes}")
