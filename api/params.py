"""Request parameters checked against the metric catalogue (sites, device kinds) and the contract's
device-id pattern.

A bad value fails FastAPI's request validation, which ``api.errors`` reports as a 422
problem naming the parameter; the OpenAPI document lists the allowed values and the pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from smartcity.catalog import DEVICE_ID_PATTERN, DEVICE_KINDS, SITES

__all__ = ["DeviceIdPath", "KindName", "SiteId"]


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
