"""Request parameters checked against the metric catalogue (sites, device kinds).

A bad value fails FastAPI's request validation, which ``api.errors`` reports as a 422
problem naming the parameter; the OpenAPI document lists the allowed values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from smartcity.catalog import DEVICE_KINDS, SITES

__all__ = ["KindName", "SiteId"]


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
