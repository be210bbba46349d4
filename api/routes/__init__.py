"""The routers of the HTTP API, one per resource, joined under ``/api/v1`` in one place."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import aggregates, devices, health, ispu, quarantine, sites

__all__ = ["API_PREFIX", "build_router"]

API_PREFIX = "/api/v1"


def build_router() -> APIRouter:
    """Return every resource's routes under the API prefix."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (health, sites, devices, aggregates, ispu, quarantine):
        router.include_router(module.router)
    # Admin routes: quarantine listing, device registration.
    for module in (devices, quarantine):
        router.include_router(module.admin_router)
    return router
