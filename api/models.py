"""Response bodies of the HTTP API, named by role; times serialise as RFC 3339 with offset."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AggregateOut",
    "AggregatePoint",
    "AggregateSeries",
    "DeviceLatest",
    "DeviceOut",
    "HealthReport",
    "LatestValue",
    "Problem",
    "SiteOut",
]

ServiceState = Literal["ok", "error"]


class HealthReport(BaseModel):
    """Whether the API and the services it needs are up."""

    status: Literal["ok", "degraded"]
    database: ServiceState
    broker: ServiceState


class SiteOut(BaseModel):
    """A district (kecamatan) of Kabupaten Paser."""

    site_id: str
    name: str
    latitude: float
    longitude: float
    timezone: str


class DeviceOut(BaseModel):
    """A registered device and its last known connection state."""

    device_id: str
    kind: str
    site_id: str
    latitude: float | None
    longitude: float | None
    status: Literal["unknown", "online", "offline"]
    last_seen: datetime | None
    created_at: datetime


class LatestValue(BaseModel):
    """The newest reading of one metric, in the catalogue unit."""

    value: float
    time: datetime
    unit: str


class DeviceLatest(BaseModel):
    """The newest reading of every metric a device has reported, by metric name."""

    device_id: str
    metrics: dict[str, LatestValue]


class AggregatePoint(BaseModel):
    """One bucket: its start, the aggregate, and how many readings it was made of."""

    time: datetime
    value: float | None
    count: int


class AggregateSeries(BaseModel):
    """The buckets of one device, one site or (key ``all``) the whole selection, oldest first."""

    key: str
    points: list[AggregatePoint]


class AggregateOut(BaseModel):
    """An aggregate of one metric over time; empty buckets are left out."""

    metric: str
    unit: str
    bucket: str
    agg: str
    series: list[AggregateSeries]


class Problem(BaseModel):
    """An RFC 9457 problem document (extension members may follow)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:smartcity:problem:not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
