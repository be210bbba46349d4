"""Starlette's TestClient, for every API test to import from here (runs on httpx2)."""

from __future__ import annotations

from fastapi.testclient import TestClient

__all__ = ["TestClient"]
