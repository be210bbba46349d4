"""Which devices exist: a cache of the ``devices`` table for ingest's lookups."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import psycopg

from ingest.validate import DeviceRef
from smartcity.db.queries.readings import SELECT_DEVICE_KEYS

__all__ = ["DeviceDirectory"]

_MAX_MISSES = 100_000  # bound memory under a flood of random ids


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

    def resolve(self, conn: psycopg.Connection, device_ids: Iterable[str]) -> dict[str, DeviceRef]:
        """Return the registered devices among ``device_ids``, with one query for all cache misses."""
        now = self._clock()
        found: dict[str, DeviceRef] = {}
        ask: list[str] = []
        for device_id in device_ids:
            ref = self._known.get(device_id)
            if ref is not None:
                found[device_id] = ref
                continue
            missed_at = self._misses.get(device_id)
            if missed_at is None or now - missed_at >= self._miss_ttl_s:
                ask.append(device_id)
        if not ask:
            return found
        rows = conn.execute(SELECT_DEVICE_KEYS, (ask,)).fetchall()
        for device_id, key, kind in rows:
            ref = DeviceRef(key, device_id, kind)
            self._known[device_id] = ref
            self._misses.pop(device_id, None)
            found[device_id] = ref
        if len(self._misses) > _MAX_MISSES:
            self._misses.clear()
        for device_id in set(ask) - found.keys():
            self._misses[device_id] = now
        return found

    def lookup(self, conn: psycopg.Connection, device_id: str) -> DeviceRef | None:
        """Return the device called ``device_id``, querying the database on a cache miss."""
        return self.resolve(conn, (device_id,)).get(device_id)

    def forget(self) -> None:
        """Drop everything cached (after devices were removed or the database was reset)."""
        self._known.clear()
        self._misses.clear()
