"""The HTTP API (``/api/v1``): FastAPI routes over the readings database and the broker."""

from api.app import create_app
from api.server import ApiStartError, run_api

__all__ = ["ApiStartError", "create_app", "run_api"]
