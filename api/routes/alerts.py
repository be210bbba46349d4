"""GET /alerts/rules, /alerts and /alerts/{alert_id} (read); POST /alerts/{alert_id}/ack (write).

The evaluator (``smartcity alerts run``) writes the alerts; the API lists them and records who
acknowledged one, when, and why. The rules are the rule file as the API loaded it at start
(``load_alert_rules``): a bad file stops the API with every problem in its log, so the listing
never shows rules the evaluator would refuse.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Path, Query, Request, Response

from api.alert_models import (
    AckIn,
    AlertDetail,
    AlertOut,
    AlertPage,
    AlertParams,
    AlertRulesOut,
    AlertTransitionOut,
)
from api.deps import ConnDep
from api.errors import BadRequest, Conflict, NotFound, problem_responses
from api.keyset import decode_keyset, encode_keyset
from api.queries import alerts as queries
from smartcity.alerts.rulefile import RuleFileError, load_rules
from smartcity.alerts.rules import RuleFile
from smartcity.settings import Settings

__all__ = ["load_alert_rules", "router", "write_router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=problem_responses(422, 503))
write_router = APIRouter(prefix="/alerts", tags=["alerts"], responses=problem_responses(422, 503))

_ONE_ALERT = problem_responses(404, descriptions={404: "No alert has this id"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID = 2**63 - 1  # alerts.id is a bigint: a larger one would fail in the database, not here
AlertId = Annotated[int, Path(ge=1, le=_MAX_ID, description="The alert's id", examples=[7])]


def load_alert_rules(settings: Settings) -> RuleFile:
    """Load the rule file the settings name (or the shipped one), logging every problem of a bad one.

    Raises:
        RuleFileError: the file cannot be used; the API does not start.
    """
    try:
        return load_rules(settings.alerts.rules_file)
    except RuleFileError as err:
        for line in err.lines():
            log.error("alert rules: %s", line)
        raise


def _rules(request: Request) -> RuleFile:
    rules: RuleFile = request.app.state.alert_rules
    return rules


def _titles(request: Request) -> dict[str, str]:
    return {rule.id: rule.title for rule in _rules(request).rules}


def _alert(titles: dict[str, str], row: dict[str, Any]) -> AlertOut:
    return AlertOut(**row, title=titles.get(row["rule_id"]))


def _fingerprint(params: AlertParams) -> str:
    """Return a digest of the filters a cursor is valid for (not the page size)."""
    since = None if params.since is None else params.since.isoformat()
    key = [params.active, params.site, params.rule, since]
    return hashlib.sha256(orjson.dumps(key)).hexdigest()[:16]


def _encode_cursor(fired_at: datetime, alert_id: int, fingerprint: str) -> str:
    micros = (fired_at - _EPOCH) // timedelta(microseconds=1)  # timestamptz's own resolution
    return encode_keyset([micros, alert_id], fingerprint)


def _decode_cursor(cursor: str, fingerprint: str) -> tuple[datetime, int]:
    """Return the keyset (fired_at, id) the next page starts after.

    Raises:
        BadRequest: the cursor was not made by this API, or for other filters.
    """
    micros, alert_id = decode_keyset(
        cursor, fingerprint, size=2, restart="leave the cursor out to start from the newest alert",
        other_listing="a listing with other filters; repeat that page's active, site, rule and since")
    try:
        return _EPOCH + timedelta(microseconds=micros), alert_id
    except OverflowError:
        raise BadRequest("the cursor is malformed; pass next_cursor of the previous page as it was given",
                         hint="leave the cursor out to start from the newest alert") from None


@router.get("/rules", summary="List the alert rules")
async def list_alert_rules(request: Request) -> AlertRulesOut:
    """Return the alert rules as the API loaded them at start, in the rule file's order.

    Durations are written as in the file (`10m`, `24h`); `levels` are per-device or per-site levels.
    """
    rules = _rules(request)
    return AlertRulesOut(version=rules.version, rules=list(rules.rules))


@router.get("", response_model=AlertPage, summary="List alerts")
async def list_alerts(request: Request, response: Response, conn: ConnDep,
                      params: Annotated[AlertParams, Query()]) -> AlertPage:
    """List alerts, newest fired first, optionally only active ones, of a site or rule, or since a time.

    Follow `next` (or the `Link` header) for the next page; the cursor works only with the filters
    it was made with.
    """
    fingerprint = _fingerprint(params)
    after = None if params.cursor is None else _decode_cursor(params.cursor, fingerprint)
    rows = await queries.list_alerts(conn, limit=params.limit + 1, active=params.active, site=params.site,
                                     rule=params.rule, since=params.since, after=after)
    # One row more than the page tells whether a next page exists, so the last page says so.
    page = rows[:params.limit]
    next_cursor = next_url = None
    if len(rows) > params.limit:
        next_cursor = _encode_cursor(page[-1]["fired_at"], page[-1]["id"], fingerprint)
        next_url = str(request.url.include_query_params(cursor=next_cursor))
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    titles = _titles(request)
    return AlertPage(items=[_alert(titles, row) for row in page], next_cursor=next_cursor, next=next_url)


@router.get("/{alert_id}", summary="Read an alert and its transitions", responses=_ONE_ALERT)
async def read_alert(request: Request, conn: ConnDep, alert_id: AlertId) -> AlertDetail:
    """Return one alert with its transitions (fired, resolved), oldest first."""
    found = await queries.get_alert(conn, alert_id)
    if found is None:
        raise NotFound(f"no alert has id {alert_id}", alert_id=alert_id)
    row, transitions = found
    return AlertDetail(**_alert(_titles(request), row).model_dump(),
                       transitions=[AlertTransitionOut.model_validate(t) for t in transitions])


@write_router.post("/{alert_id}/ack", summary="Acknowledge an alert",
                   responses=problem_responses(404, 409, descriptions={
                       404: "No alert has this id", 409: "The alert was acknowledged already"}))
async def acknowledge_alert(request: Request, conn: ConnDep, alert_id: AlertId,
                            ack: Annotated[AckIn, Body()]) -> AlertOut:
    """Record that the calling key acknowledged the alert, now, with an optional note.

    An alert is acknowledged once: a second acknowledgement is a 409 naming by whom and when.
    Acknowledging changes nothing in the alert's lifecycle; it tells others someone is on it.
    """
    key_id = request.state.principal.key_id
    try:
        row = await queries.acknowledge(conn, alert_id, by=key_id, note=ack.note or None)
    except queries.AckRefused as refused:
        if refused.acked_at is None:
            raise NotFound(f"no alert has id {alert_id}", alert_id=alert_id) from None
        raise Conflict(f"alert {alert_id} was acknowledged already, by key {refused.acked_by} at"
                       f" {refused.acked_at.astimezone(UTC).isoformat()}", alert_id=alert_id,
                       acked_by=refused.acked_by, acked_at=refused.acked_at.isoformat()) from None
    return _alert(_titles(request), row)
