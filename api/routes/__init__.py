"""The routers of the HTTP API, one per resource, joined under ``/api/v1`` in one place.

Each route's scope is decided here, by the router it is on: a module's ``router`` holds its read
routes, ``write_router`` and ``admin_router`` (where a module has them) the rest. ``health`` alone
needs no key (the contract), so probes and load balancers can call it.
"""

from __future__ import annotations

from types import ModuleType

from fastapi import APIRouter, Depends

from api.auth import require_admin, require_read, require_write
from api.errors import problem_responses
from api.params import refuse_unknown_query_parameters
from api.routes import aggregates, devices, health, ispu, quarantine, readings, sites

__all__ = ["API_PREFIX", "build_router"]

API_PREFIX = "/api/v1"

_RESOURCES: tuple[ModuleType, ...] = (sites, devices, readings, aggregates, ispu, quarantine)
_known_parameters_only = Depends(refuse_unknown_query_parameters)
_SCOPED_ROUTERS = (("router", require_read), ("write_router", require_write),
                   ("admin_router", require_admin))


def build_router() -> APIRouter:
    """Return every resource's routes under the API prefix, each behind its scope."""
    router = APIRouter(prefix=API_PREFIX)
    router.include_router(health.router)
    for module in _RESOURCES:
        for attribute, scope in _SCOPED_ROUTERS:
            scoped: APIRouter | None = getattr(module, attribute, None)
            if scoped is not None:
                router.include_router(scoped, dependencies=[scope, _known_parameters_only],
                                      responses=problem_responses(401, 403))
    return router
