"""SQL of the health check."""

from __future__ import annotations

from typing import Final

__all__ = ["PING"]

# () → (1,): the cheapest statement that proves the server answers on this connection.
PING: Final = "SELECT 1"
