"""SQL of answers streamed from a server-side cursor (the API's CSV): the transaction they live in."""

from __future__ import annotations

from typing import Final

__all__ = ["BEGIN_SNAPSHOT"]

# A server-side cursor lives in a transaction. One snapshot for all its statements: a CSV page's
# probe for its last key and its rows see the same readings, whatever is inserted meanwhile.
BEGIN_SNAPSHOT: Final = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
