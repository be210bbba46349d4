"""Bodies and query of the alerts routes: an alert, its transitions, a page, an acknowledgement."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.params import SiteId, UtcDatetime
from smartcity.alerts.rules import RULE_ID_PATTERN, Rule

__all__ = ["ALERTS_MAX_PAGE", "AckIn", "AlertDetail", "AlertOut", "AlertPage", "AlertParams",
           "AlertRulesOut", "AlertTransitionOut"]

ALERTS_MAX_PAGE = 500
ACK_NOTE_MAX = 2000  # migration 014's CHECK on alerts.ack_note

Severity = Literal["info", "warning", "critical"]


class AlertParams(BaseModel):
    """The query of ``GET /alerts``: filters and the page."""

    model_config = ConfigDict(extra="forbid")  # a misspelt filter would widen the answer

    active: bool | None = Field(None, description="true: firing only; false: resolved only; "
                                "default: both", examples=[True])
    site: SiteId | None = Field(None, description="Only alerts of this site (see /sites)",
                                examples=["tanah-grogot"])
    rule: str | None = Field(None, pattern=RULE_ID_PATTERN, description="Only alerts of this rule id "
                             "(see /alerts/rules)", examples=["river-waspada"])
    since: UtcDatetime | None = Field(None, description="Only alerts active at or after this time "
                                      "(RFC 3339): still firing, or resolved at or after it",
                                      examples=["2026-11-30T00:00:00+08:00"])
    limit: int = Field(100, ge=1, le=ALERTS_MAX_PAGE, description="Alerts per page, newest first",
                       examples=[100])
    cursor: str | None = Field(None, max_length=200, description="`next_cursor` of the previous page,"
                               " as given; the filters must be that page's", examples=["WzE3NjQ0NzUy"])


class AlertOut(BaseModel):
    """One episode of a rule's condition at a device or site: firing, then resolved."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 7, "rule_id": "river-waspada", "title": "River above the Waspada level",
        "subject": "river-tanah-grogot-01", "site_id": "tanah-grogot",
        "device_id": "river-tanah-grogot-01", "severity": "info", "state": "firing",
        "fired_at": "2026-11-30T02:10:00Z", "resolved_at": None, "value": 3.04, "last_value": 3.12,
        "summary": "river-tanah-grogot-01 (tanah-grogot): water_level 3.04 m above 3 m",
        "acked_at": None, "acked_by": None, "ack_note": None}]})

    id: int = Field(description="The alert's id")
    rule_id: str = Field(description="The rule that fired (see /alerts/rules)")
    title: str | None = Field(description="The rule's title; null when the rule is no longer in the"
                              " rule file the API loaded")
    subject: str = Field(description="What the rule judged: a device id, or a site id for site rules")
    site_id: str = Field(description="The site where it happened")
    device_id: str | None = Field(description="The device, for device rules; null for site rules")
    severity: Severity = Field(description="The rule's severity when it fired")
    state: Literal["firing", "resolved"] = Field(description="firing until the condition cleared")
    fired_at: datetime = Field(description="When the condition had held long enough (evaluation time)")
    resolved_at: datetime | None = Field(description="When it resolved; null while firing")
    value: float | None = Field(description="The value judged when it fired, in the metric's unit")
    last_value: float | None = Field(description="The latest value judged while it was active")
    summary: str = Field(description="One line for people")
    acked_at: datetime | None = Field(description="When it was acknowledged; null: not yet")
    acked_by: str | None = Field(description="The id of the API key that acknowledged it")
    ack_note: str | None = Field(description="The note given with the acknowledgement")


class AlertTransitionOut(BaseModel):
    """A change of an alert: it fired, or it resolved."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"id": 12, "transition": "firing", "at": "2026-11-30T02:10:00Z", "value": 3.04,
         "recorded_at": "2026-11-30T02:11:00.2Z", "published_at": "2026-11-30T02:11:00.3Z"}]})

    id: int = Field(description="The transition's id")
    transition: Literal["firing", "resolved"] = Field(description="What happened")
    at: datetime = Field(description="When, in evaluation time (the minute judged)")
    value: float | None = Field(description="The value judged then")
    recorded_at: datetime = Field(description="When the evaluator stored it")
    published_at: datetime | None = Field(description="When the broker took the MQTT message; null:"
                                          " not yet")


class AlertDetail(AlertOut):
    """An alert with its transitions, oldest first."""

    transitions: list[AlertTransitionOut] = Field(description="Its transitions, oldest first")


class AlertPage(BaseModel):
    """A page of alerts, newest first, and where the next one starts."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [AlertOut.model_config["json_schema_extra"]["examples"][0]],  # type: ignore[index]
         "next_cursor": "WzE3NjQ0Njg2MDAwMDAwMDAsNywiOWMxZiJd",
         "next": "http://127.0.0.1:8000/api/v1/alerts?limit=1&cursor=WzE3NjQ0Njg2MDAwMDAwMDAsNywiOWMxZiJd"}]})

    items: list[AlertOut] = Field(description="The alerts of this page, newest fired first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")
    next: str | None = Field(description="The next page's URL (also in the Link header); null on the last")


class AckIn(BaseModel):
    """An acknowledgement: who and when come from the request, the note from the body."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "BPBD duty officer informed; crew sent to the Kandilo bridge"}]})

    note: str = Field("", max_length=ACK_NOTE_MAX, description="Why, or what was done (at most 2,000"
                      " characters)", examples=["BPBD duty officer informed"])

    @field_validator("note")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        # PostgreSQL's text cannot hold a NUL: refused here as the client's mistake, not a 500 there.
        if "\x00" in value:
            raise ValueError("may not contain NUL characters")
        return value


class AlertRulesOut(BaseModel):
    """The alert rules the API loaded at start, as the rule file holds them (README "Alert rules")."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"version": 1, "rules": [{"id": "silent-river-level-sensor", "kind": "silence",
                                  "title": "River gauge silent", "description": "", "severity": "warning",
                                  "select": {"kinds": ["river_level_sensor"], "sites": [], "devices": []},
                                  "for": "0s", "clear_for": "0s", "webhook": None, "enabled": True,
                                  "after": "15m"}]}]})

    version: Literal[1] = Field(description="The rule file's format version")
    rules: list[Rule] = Field(description="The rules, in the file's order; durations as written (10m)")
