"""Which devices exist: a cache of the ``devices`` table for the writer's lookups."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from ingest.validate import DeviceRef

__all__ = ["DeviceDirectory"]


class DeviceDirectory:
    """Resolve device ids to ``DeviceRef``s, remembering hits and, briefly, misses.

    A miss is remembered for ``miss_ttl_s`` so a flood from an unregistered device costs one query
    per interval, while a device registered a moment ago is found within that interval.
    """

    def __init__(self, miss_ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._known: dict[str, DeviceRef] = {}
        self._misses: dict[str, float] = {}
        self._miss_ttl_s = miss_ttl_s
        self._clock = clock

    def lookup(self, conn: psycopg.Connection, device_id: str) -> DeviceRef | None:
        """Return the device called ``device_id``, querying the database on a cache miss."""
        found = self._known.get(device_id)
        if found is not None:
            return found
        now = self._clock()
        missed_at = self._misses.get(device_id)
        if missed_at is not None and now - missed_at < self._miss_ttl_s:
            return None
        row = conn.execute(
            "SELECT id, kind FROM devices WHERE device_id = %s", (device_id,)
        ).fetchone()
        if row is None:
            if len(self._misses) > 100_000:  # bound memory under a flood of random ids
                self._misses.clear()
            self._misses[device_id] = now
            return None
        self._misses.pop(device_id, None)
        ref = DeviceRef(row[0], device_id, row[1])
        self._known[device_id] = ref
        return ref

    def forget(self) -> None:
        """Drop everything cached (after devices were removed or the database was reset)."""
        self._known.clear()
        self._misses.clear()
