"""Response bodies of the HTTP API, named by role; times serialise as RFC 3339 with offset."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeviceLatest", "DeviceOut", "HealthReport", "LatestValue", "Problem", "SiteOut"]

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


class Problem(BaseModel):
    """An RFC 9457 problem document (extension members may follow)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:smartcity:problem:not-found"])
    title: str
    status: int
    detail: str
    instance: str | None = None
