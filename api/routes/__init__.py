"""The routers of the HTTP API, one per resource, joined under ``/api/v1`` in one place."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import aggregates, devices, health, ispu, readings, sites

__all__ = ["API_PREFIX", "build_router"]

API_PREFIX = "/api/v1"


def build_router() -> APIRouter:
    """Return every resource's routes under the API prefix."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (health, sites, devices, readings, aggregates, ispu):
        router.include_router(module.router)
    return router
