"""Content negotiation (RFC 9110 §12.5.1) between JSON and CSV for /readings and /aggregates.

The ``Accept`` header's media ranges are weighed by their ``q``; the most specific range that
matches a type sets that type's weight, and the heaviest type wins, JSON on a tie. No header,
``*/*`` or ``application/json`` answers JSON; ``text/csv`` answers CSV; a header that accepts
neither is a 406 problem listing what is offered.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Final, Literal

from fastapi import Depends, Header

from api.errors import ApiError

__all__ = ["CSV", "JSON", "AcceptDep", "NotAcceptable", "Representation", "choose_representation"]

Representation = Literal["application/json", "text/csv"]
JSON: Final = "application/json"
CSV: Final = "text/csv"
_OFFERED: tuple[Representation, ...] = (JSON, CSV)  # in order of preference on a tie


class NotAcceptable(ApiError):
    """The client accepts none of the representations offered."""

    status = HTTPStatus.NOT_ACCEPTABLE
    problem_type = "urn:smartcity:problem:not-acceptable"
    title = "Not acceptable"


def _media_ranges(accept: str) -> list[tuple[str, str, float]]:
    """Return each (type, subtype, q) of an Accept header; a malformed q counts as 0."""
    ranges = []
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if "/" not in media:
            continue
        main, sub = (name.strip().lower() for name in media.split("/", 1))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                q = q if 0.0 <= q <= 1.0 else 0.0
        ranges.append((main, sub, q))
    return ranges


def _weight(offered: str, ranges: list[tuple[str, str, float]]) -> float:
    main, sub = offered.split("/")
    best_specificity, weight = -1, 0.0
    for range_main, range_sub, q in ranges:
        if range_main == main and range_sub == sub:
            specificity = 2
        elif range_main == main and range_sub == "*":
            specificity = 1
        elif range_main == "*" and range_sub == "*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, weight = specificity, q
    return weight


def choose_representation(accept: str | None) -> Representation:
    """Return the representation to answer ``accept`` with.

    Raises:
        NotAcceptable: the header accepts neither JSON nor CSV.
    """
    if accept is None or not accept.strip():
        return JSON
    ranges = _media_ranges(accept)
    weights = {offered: _weight(offered, ranges) for offered in _OFFERED}
    best = max(_OFFERED, key=lambda offered: weights[offered])  # max keeps the first on a tie
    if weights[best] <= 0.0:
        raise NotAcceptable(
            f"this resource is available as {' or '.join(_OFFERED)}; the Accept header"
            f" ({accept[:200]!r}) accepts neither", supported=list(_OFFERED))
    return best


# Left out of the OpenAPI parameters: OpenAPI ignores a header parameter named Accept; the routes
# list text/csv among their 200 response's content types instead.
async def _representation(accept: Annotated[str | None, Header(include_in_schema=False)] = None
                          ) -> Representation:
    return choose_representation(accept)


AcceptDep = Annotated[Representation, Depends(_representation)]
