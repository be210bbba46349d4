"""Bodies of the commands routes: what a client sends (`CommandIn`), what it gets back (`CommandOut`).

`CommandIn` is the contract's `Command` without the two fields the API fills (``command_id`` and
``issued_at``), checked by the contract's own rules so the API refuses exactly what a device would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from smartcity.contract import Command, ScheduleEntry

__all__ = ["CommandIn", "CommandOut", "CommandPage", "Outcome", "ScheduleItem"]

Outcome = Literal["pending", "acknowledged", "timed_out", "not_sent"]


class ScheduleItem(ScheduleEntry):
    """One switching time of a schedule (the contract's `ScheduleEntry`, described)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [
        {"at": "23:30", "action": "dim", "level": 30}]})

    at: str = Field(description="Local time of the site, HH:MM (00:00 to 23:59)", examples=["23:30"])
    action: Literal["on", "off", "dim"] = Field(description="What to do then", examples=["dim"])
    level: int | None = Field(None, ge=0, le=100, description="Lamp level in %, for dim only",
                              examples=[30])


class CommandIn(BaseModel):
    """A command to send to a device (`POST /devices/{id}/commands`)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"action": "dim", "level": 40},
        {"action": "schedule", "schedule": [{"at": "18:00", "action": "on"},
                                            {"at": "23:30", "action": "dim", "level": 30},
                                            {"at": "05:45", "action": "off"}]},
    ]})

    action: Literal["on", "off", "dim", "schedule"] = Field(
        description="on, off, dim (with level) or schedule (with schedule)", examples=["dim"])
    level: int | None = Field(None, ge=0, le=100, description="Lamp level in %, for dim only",
                              examples=[40])
    schedule: tuple[ScheduleItem, ...] | None = Field(
        None, min_length=1, max_length=48,
        description="For schedule only: daily switching times (HH:MM, the site's local time)")

    @model_validator(mode="after")
    def _check_as_the_contract(self) -> Self:
        # The contract's rules, not a copy of them: a placeholder id and time fill the rest.
        Command(command_id="placeholder", action=self.action, level=self.level,
                schedule=self.schedule, issued_at=datetime.now(UTC))
        return self


_COMMAND_EXAMPLE: JsonDict = {
    "command_id": "cmd-3f2a9c01d4e5b6a7", "device_id": "light-tanah-grogot-01", "action": "dim",
    "level": 40, "schedule": None, "issued_at": "2026-11-30T12:00:00+00:00",
    "issued_by": "k3y1d0000001", "deadline": "2026-11-30T12:01:00+00:00",
    "outcome": "acknowledged", "outcome_at": "2026-11-30T12:00:00.412000+00:00",
    "detail": "the device reported the commanded state at 2026-11-30T12:00:00.412Z",
    "published_at": "2026-11-30T12:00:00.020000+00:00",
}


class CommandOut(BaseModel):
    """A command as stored, with its outcome."""

    model_config = ConfigDict(json_schema_extra={"examples": [_COMMAND_EXAMPLE]})

    command_id: str = Field(description="The command's id, also in the MQTT payload")
    device_id: str = Field(description="The device it was sent to")
    action: str = Field(description="on, off, dim or schedule")
    level: int | None = Field(description="The level of a dim, in %")
    schedule: list[ScheduleItem] | None = Field(description="The entries of a schedule")
    issued_at: datetime = Field(description="When the platform issued it")
    issued_by: str = Field(description="The API key id that sent it (cli:<login> for the CLI)")
    deadline: datetime = Field(description="When it times out without an acknowledging reading")
    outcome: Outcome = Field(description="pending; acknowledged (a reading showed the commanded "
                             "state); timed_out (none did by the deadline); not_sent (the broker "
                             "could not take it)")
    outcome_at: datetime | None = Field(description="The acknowledging reading's time, the deadline,"
                                        " or when sending failed")
    detail: str | None = Field(description="What settled it, in words")
    published_at: datetime | None = Field(description="When the broker acknowledged it (QoS 1)")


class CommandPage(BaseModel):
    """A page of a device's commands, newest first; `next` is null on the last."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "items": [_COMMAND_EXAMPLE], "next_cursor": "WzcsImxpZ2h0LXRhbmFoLWdyb2dvdC0wMSJd",
        "next": "http://127.0.0.1:8000/api/v1/devices/light-tanah-grogot-01/commands?limit=1&cursor=…",
    }]})

    items: list[CommandOut] = Field(description="At most `limit` commands, newest first")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    next: str | None = Field(description="The next page's URL (also in the `Link` header)")
