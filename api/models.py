"""Response bodies of the HTTP API, named by role; times serialise as RFC 3339 with offset."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

__all__ = [
    "AggregateOut",
    "AggregatePoint",
    "AggregateSeries",
    "DeviceLatest",
    "DeviceOut",
    "DeviceRegistered",
    "HealthReport",
    "IspuOut",
    "LatestValue",
    "PayloadOut",
    "PollutantIndex",
    "Problem",
    "ProblemItem",
    "QuarantineItemOut",
    "QuarantinePage",
    "QuarantinePart",
    "ReadingOut",
    "ReadingPage",
    "SiteOut",
    "UsAqiOut",
]

ServiceState = Literal["ok", "error"]


class HealthReport(BaseModel):
    """Whether the API and the services it needs are up."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ok", "database": "ok", "broker": "ok"},
        {"status": "degraded", "database": "error", "broker": "ok"},
    ]})

    status: Literal["ok", "degraded"] = Field(description="ok when the database and the broker both are")
    database: ServiceState = Field(description="Whether a pooled connection answered within 2 s")
    broker: ServiceState = Field(description="Whether the API's MQTT client is connected")


class SiteOut(BaseModel):
    """A district (kecamatan) of Kabupaten Paser."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"site_id": "tanah-grogot", "name": "Tanah Grogot", "latitude": -1.911, "longitude": 116.197,
         "timezone": "Asia/Makassar"},
    ]})

    site_id: str = Field(description="The site's id, kebab case")
    name: str = Field(description="The district's name")
    latitude: float = Field(description="Approximate centre, decimal degrees (WGS 84)")
    longitude: float = Field(description="Approximate centre, decimal degrees (WGS 84)")
    timezone: str = Field(description="IANA time zone of the site's local time")


class DeviceOut(BaseModel):
    """A registered device and its last known connection state."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"device_id": "aq-tanah-grogot-01", "kind": "air_quality_station", "site_id": "tanah-grogot",
         "latitude": -1.9105, "longitude": 116.1982, "status": "online",
         "last_seen": "2026-11-30T10:00:05Z", "created_at": "2026-11-01T08:00:00Z", "revoked_at": None},
    ]})

    device_id: str = Field(description="The device's public id (also its MQTT client id)")
    kind: str = Field(description="A device kind of the catalogue; it fixes the metrics the device reports")
    site_id: str = Field(description="The site the device stands in")
    latitude: float | None = Field(description="Decimal degrees (WGS 84); null when not registered")
    longitude: float | None = Field(description="Decimal degrees (WGS 84); null when not registered")
    status: Literal["unknown", "online", "offline"] = Field(
        description="From the device's retained status message (its Last Will says offline); unknown"
                    " before the first")
    last_seen: datetime | None = Field(description="When a message of the device last arrived; null before"
                                       " the first")
    created_at: datetime = Field(description="When the device was registered")
    revoked_at: datetime | None = Field(
        None, description="When the device was revoked (`smartcity devices revoke`): the broker refuses"
                          " its login from then on and its readings stay; null while it may connect")


class LatestValue(BaseModel):
    """The newest reading of one metric, in the catalogue unit."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"value": 12.3, "time": "2026-11-30T10:00:00Z", "unit": "µg/m³"}]})

    value: float = Field(description="The reading, in `unit`")
    time: datetime = Field(description="The reading's own time (the device's timestamp)")
    unit: str = Field(description="The metric's catalogue unit")


class DeviceLatest(BaseModel):
    """The newest reading of every metric a device has reported, by metric name."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"device_id": "aq-tanah-grogot-01", "metrics": {
            "pm25": {"value": 12.3, "time": "2026-11-30T10:00:00Z", "unit": "µg/m³"},
            "pm10": {"value": 20.1, "time": "2026-11-30T10:00:00Z", "unit": "µg/m³"}}},
        {"device_id": "wm-kuaro-07", "metrics": {}},
    ]})

    device_id: str = Field(description="The device's public id")
    metrics: dict[str, LatestValue] = Field(
        description="Metric name → its newest reading; empty before the device's first reading")


_POINT_EXAMPLE: JsonDict = {"time": "2026-11-30T01:00:00+00:00", "value": 14.72, "count": 360}


class AggregatePoint(BaseModel):
    """One bucket: its start, the aggregate, and how many readings it was made of."""

    model_config = ConfigDict(json_schema_extra={"examples": [_POINT_EXAMPLE]})

    time: datetime = Field(description="The bucket's start (UTC); day, week and month buckets start at"
                           " midnight in `tz`")
    value: float | None = Field(description="The aggregate, in the metric's unit (a count for agg=count);"
                                " null for an increase without an earlier reading to rise from")
    count: int = Field(description="The readings the bucket was made of")


class AggregateSeries(BaseModel):
    """The buckets of one device, one site or (key ``all``) the whole selection, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"key": "aq-tanah-grogot-01", "points": [_POINT_EXAMPLE]}]})

    key: str = Field(description="A device id (group_by=device), a site id (site), or all (none)")
    points: list[AggregatePoint] = Field(description="The non-empty buckets, oldest first")


class AggregateOut(BaseModel):
    """An aggregate of one metric over time; empty buckets are left out."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"metric": "pm25", "unit": "µg/m³", "bucket": "1h", "agg": "avg",
         "series": [{"key": "aq-tanah-grogot-01", "points": [_POINT_EXAMPLE]}]}]})

    metric: str = Field(description="The metric asked for")
    unit: str = Field(description="The metric's catalogue unit (of every value but agg=count's)")
    bucket: str = Field(description="The bucket size asked for")
    agg: str = Field(description="The aggregate asked for")
    series: list[AggregateSeries] = Field(description="One series per key, by key; none without readings")


class PollutantIndex(BaseModel):
    """One pollutant's mean over its averaging window and, with enough data, its ISPU sub-index."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"concentration": 115.1, "unit": "µg/m³", "averaging_hours": 24, "coverage": 1.0, "readings": 8640,
         "sub_index": 162.84, "band": "tidak_sehat", "beyond_scale": False}]})

    concentration: float | None = Field(description="Mean over the window, in `unit`; null without readings")
    unit: str = Field(description="The unit of the regulation's table (the catalogue's is converted to it)")
    averaging_hours: int = Field(description="The window: the hours before `time` the mean is taken over")
    coverage: float = Field(description="Share (0–1) of the window's hours that held readings")
    readings: int = Field(description="The readings the mean was taken over")
    sub_index: float | None = Field(description="ISPU sub-index, capped at 500; null when coverage is "
                                    "below the minimum")
    band: str | None = Field(description="Category id of the table band the concentration falls in")
    beyond_scale: bool = Field(description="Above the table's last column: sub_index is capped at 500")


class UsAqiOut(BaseModel):
    """The US EPA AQI (2024) of the PM2.5 24-hour mean."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"aqi": 193, "category": "Unhealthy", "concentration": 115.1, "beyond_scale": False}]})

    aqi: int = Field(description="The index, 0–500")
    category: str = Field(description="The EPA's category name (Good … Hazardous)")
    concentration: float = Field(description="The mean truncated to one decimal, µg/m³, as looked up")
    beyond_scale: bool = Field(description="Above the table's last breakpoint: aqi is capped at 500")


_ISPU_EXAMPLE: JsonDict = {
    "site_id": "tanah-grogot", "time": "2026-09-15T04:00:00Z", "ispu": 163, "category": "Tidak Sehat",
    "category_id": "tidak_sehat", "color": "yellow", "dominant": "pm25", "beyond_scale": False,
    "min_coverage": 0.75, "excluded": ["hc"], "reason": None,
    "sub_indices": {
        "pm25": {"concentration": 115.1, "unit": "µg/m³", "averaging_hours": 24, "coverage": 1.0,
                 "readings": 8640, "sub_index": 162.84, "band": "tidak_sehat", "beyond_scale": False},
        "hc": {"concentration": 20.0, "unit": "µg/m³", "averaging_hours": 3, "coverage": 0.333,
               "readings": 12, "sub_index": None, "band": None, "beyond_scale": False},
    },
    "us_aqi": {"aqi": 193, "category": "Unhealthy", "concentration": 115.1, "beyond_scale": False},
}
_ISPU_NO_DATA_EXAMPLE: JsonDict = {
    "site_id": "kuaro", "time": "2026-09-15T04:00:00Z", "ispu": None, "category": None,
    "category_id": None, "color": None, "dominant": None, "beyond_scale": False, "min_coverage": 0.75,
    "excluded": ["pm25"], "us_aqi": None,
    "reason": "too little data for every pollutant (at least 75 % of a window's hours need readings):"
              " pm25 had 6 of 24 h (25 %)",
    "sub_indices": {"pm25": {"concentration": 40.2, "unit": "µg/m³", "averaging_hours": 24,
                             "coverage": 0.25, "readings": 72, "sub_index": None, "band": None,
                             "beyond_scale": False}},
}


class IspuOut(BaseModel):
    """A site's ISPU (Permen LHK P.14/2020) at a time: the highest sub-index and its pollutant.

    `ispu` is null, with a `reason`, when neither PM10 nor PM2.5 has enough data in its window.
    """

    model_config = ConfigDict(json_schema_extra={"examples": [_ISPU_EXAMPLE, _ISPU_NO_DATA_EXAMPLE]})

    site_id: str = Field(description="The site asked for")
    time: datetime = Field(description="The end of every averaging window (exclusive)")
    ispu: int | None = Field(description="The highest sub-index rounded up (0–50 Baik, 51–100 Sedang, "
                             "101–200 Tidak Sehat, 201–300 Sangat Tidak Sehat, 301–500 Berbahaya)")
    category: str | None = Field(description="Indonesian name of the category")
    category_id: str | None = Field(description="The category's id (baik, sedang, tidak_sehat,"
                                    " sangat_tidak_sehat, berbahaya)")
    color: str | None = Field(description="The category's colour in the regulation (green, blue, yellow,"
                              " red, black)")
    dominant: str | None = Field(description="The pollutant of the highest sub-index; ties go to the "
                                 "first in the table's order pm10, pm25, so2, co, o3, no2, hc")
    beyond_scale: bool = Field(description="The dominant sub-index is above the table: ispu is capped at 500")
    min_coverage: float = Field(description="The share of a window's hours that must hold readings")
    excluded: list[str] = Field(description="Pollutants whose coverage was below the minimum")
    reason: str | None = Field(description="Why `ispu` is null")
    sub_indices: dict[str, PollutantIndex] = Field(description="Pollutant → its window's mean and sub-index,"
                                                   " for every pollutant the site's stations report")
    us_aqi: UsAqiOut | None = Field(description="From the PM2.5 24-hour mean, when it has enough data")


class ProblemItem(BaseModel):
    """One thing wrong with a request: where, which parameter, and what."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"in": "query", "name": "kind",
         "message": "unknown device kind 'lamp'; known: air_quality_station, …"}]})

    in_: str = Field(alias="in", description="Where the parameter is: query, path, header or body")
    name: str = Field(description="The parameter's name")
    message: str = Field(description="What is wrong with it")


class Problem(BaseModel):
    """An RFC 9457 problem document; more extension members may follow (a limit's bound, …)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"type": "urn:smartcity:problem:not-found", "title": "Resource not found", "status": 404,
         "detail": "device 'aq-kuaro-09' is not registered", "instance": "/api/v1/devices/aq-kuaro-09"},
        {"type": "urn:smartcity:problem:invalid-parameter", "title": "Invalid request parameter",
         "status": 422, "detail": "query parameter 'site': unknown site 'grogot'; known: tanah-grogot, …",
         "instance": "/api/v1/devices",
         "errors": [{"in": "query", "name": "site",
                     "message": "unknown site 'grogot'; known: tanah-grogot, …"}]},
    ]})

    type: str = Field(description="A URN naming the kind of problem",
                      examples=["urn:smartcity:problem:not-found"])
    title: str = Field(description="The kind of problem, for people")
    status: int = Field(description="The HTTP status code")
    detail: str = Field(description="What went wrong with this request, and what to change")
    instance: str | None = Field(None, description="The request's path")
    hint: str | None = Field(None, description="How to ask instead, when there is a way")
    errors: list[ProblemItem] | None = Field(None, description="Every invalid parameter (422, and 400 on"
                                             " /aggregates)")


class DeviceRegistered(DeviceOut):
    """A device just registered, with its MQTT login: the password is shown this once only."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "device_id": "river-kandilo-02", "kind": "river_level_sensor", "site_id": "tanah-grogot",
        "latitude": -1.905, "longitude": 116.196, "status": "unknown", "last_seen": None,
        "created_at": "2026-11-30T04:00:00Z", "revoked_at": None, "mqtt_username": "river-kandilo-02",
        "mqtt_password": "q9f1S0y2oK4lW7c3b8n6VxZr0aTgHh5e",
    }]})

    mqtt_username: str = Field(description="The device's MQTT username (its id)")
    mqtt_password: str = Field(description="The device's MQTT password; only a hash is kept, so "
                               "it cannot be read again")


_QUARANTINE_ITEM_EXAMPLE: JsonDict = {
    "id": 7, "received_at": "2026-11-30T03:12:09.101000Z",
    "topic": "smartcity/v1/devices/aq-kuaro-02/telemetry", "device_id": "aq-kuaro-02",
    "reason": "unknown_device", "reasons": {"unknown_device": 1},
    "detail": "device aq-kuaro-02 is not registered", "parts_total": 1,
    "parts": [{"reason": "unknown_device", "detail": "device aq-kuaro-02 is not registered"}],
    "content_type": None,
    "payload": {"encoding": "utf-8", "data": "{\"metrics\": {\"pm25\": 12.5}}", "size": 29,
                "stored": 29, "shown": 29, "capped": False},
    "replayed_at": None, "replay_of": None,
}


class QuarantinePart(BaseModel):
    """One rejected part of a message: its reason code and what was wrong."""

    model_config = ConfigDict(json_schema_extra={"examples": _QUARANTINE_ITEM_EXAMPLE["parts"]})

    reason: str = Field(description="A reason code of the contract", examples=["out_of_range"])
    detail: str = Field(description="What was wrong with the part",
                        examples=["pm25 = 1500 is outside 0..1000"])


class PayloadOut(BaseModel):
    """A quarantined payload, as much as was asked for: UTF-8 text, or base64 when it is not text."""

    model_config = ConfigDict(json_schema_extra={"examples": [_QUARANTINE_ITEM_EXAMPLE["payload"]]})

    encoding: Literal["utf-8", "base64"] = Field(
        description="utf-8: `data` is the bytes as text; base64: they are not valid UTF-8")
    data: str = Field(description="The first `shown` bytes of the payload")
    size: int = Field(description="Bytes as received")
    stored: int = Field(description="Bytes the quarantine kept (payloads are cut to 64 KiB)")
    shown: int = Field(description="Bytes in `data` (fewer than asked when a UTF-8 character "
                       "would be cut)")
    capped: bool = Field(description="True when `data` is not the whole payload as received")


class QuarantineItemOut(BaseModel):
    """One quarantined message: where and when it came, why each part was rejected, its payload."""

    model_config = ConfigDict(json_schema_extra={"examples": [_QUARANTINE_ITEM_EXAMPLE]})

    id: int = Field(description="The item's id (grows with every quarantined message)")
    received_at: datetime = Field(description="When ingest received the message")
    topic: str = Field(description="The MQTT topic it was published on")
    device_id: str | None = Field(description="The device the topic names, null for an invalid topic")
    reason: str = Field(description="The first rejected part's reason code")
    reasons: dict[str, int] = Field(description="Rejected parts per reason code")
    detail: str = Field(description="The first rejected part's detail, and how many more parts "
                        "were rejected")
    parts_total: int = Field(description="Rejected parts in the message")
    parts: list[QuarantinePart] = Field(description="The first rejected parts (at most 20), in order")
    content_type: str | None = Field(description="The MQTT v5 content type, when the message had one")
    payload: PayloadOut = Field(description="The raw payload, as much as `payload_bytes` asked for")
    replayed_at: datetime | None = Field(description="When `smartcity quarantine replay` stored it")
    replay_of: int | None = Field(description="The item whose replay rejected these parts again "
                                  "(the payload is that item's)")


class QuarantinePage(BaseModel):
    """A page of quarantined messages, newest first, and where the next page starts."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [_QUARANTINE_ITEM_EXAMPLE],
        "next_cursor": "WzcsIjljMWYzYTJiMDRkMWU3YWEiXQ",
        "next": "http://127.0.0.1:8000/api/v1/quarantine?limit=1&cursor=WzcsIjljMWYzYTJiMDRkMWU3YWEiXQ",
    }]})

    items: list[QuarantineItemOut] = Field(description="At most `limit` items, newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="The next page's URL (also in the `Link` header); null on "
                             "the last")
class ReadingOut(BaseModel):
    """One stored reading, in the catalogue unit."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "device_id": "aq-tanah-grogot-01", "metric": "pm25", "time": "2026-11-30T04:00:00+00:00",
        "value": 23.4, "unit": "µg/m³"}]})

    device_id: str = Field(description="The device that reported it")
    metric: str = Field(description="A metric of the catalogue")
    time: datetime = Field(description="When it was measured (the device's timestamp)")
    value: float = Field(description="The value, in `unit`")
    unit: str = Field(description="The catalogue unit of the metric")


_READING_PAGE_EXAMPLE: JsonDict = {
    "items": [
        {"device_id": "aq-tanah-grogot-01", "metric": "pm10", "time": "2026-11-30T04:00:00+00:00",
         "value": 41.7, "unit": "µg/m³"},
        {"device_id": "aq-tanah-grogot-01", "metric": "pm25", "time": "2026-11-30T04:00:00+00:00",
         "value": 23.4, "unit": "µg/m³"},
    ],
    "next_cursor": "WzEsMTc2NDQ3NTIwMDAwMDAwMCwiYXEtdGFuYWgtZ3JvZ290LTAxIiwicG0yNSIsLi4uXQ",
    "next": "http://127.0.0.1:8000/api/v1/readings?device=aq-tanah-grogot-01&start=…&end=…&cursor=…",
}


class ReadingPage(BaseModel):
    """A page of raw readings ordered by time, device id and metric; `next` is null on the last."""

    model_config = ConfigDict(json_schema_extra={"examples": [_READING_PAGE_EXAMPLE]})

    items: list[ReadingOut] = Field(description="At most `limit` readings, oldest first")
    next_cursor: str | None = Field(description="Pass as `cursor` (with the same filters) for the next page")
    next: str | None = Field(
        description="The next page's URL, also sent as a `Link: <…>; rel=\"next\"` header")
