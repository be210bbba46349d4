"""Who may call what: API keys in ``Authorization: Bearer``, scopes read < write < admin.

``build_router`` calls ``authenticate`` with the scope of each router (read, write or admin), so a
route's scope is decided where routes are joined, not in each route; the principal is left in
``request.state.principal``. A read route is open to anyone when ``api.public_read`` is on; a key
that is sent is still checked, so a mistyped key is a 401 rather than a silent downgrade to public.

Keys are looked up by their public id and checked against the stored digest in constant time. A
key's row is cached for ``api.key_cache_s`` seconds, so a busy client costs one lookup per period,
not one per request; a revocation therefore takes effect within that period, and ``last_used_at``
is written once per period per API process. The key text never reaches a log: refusals name the
key's id only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request

from api.errors import Forbidden, Unauthorized
from smartcity.apikeys import Scope, matches, parse_key
from smartcity.db.queries import apikeys as key_sql

__all__ = ["SECURITY_SCHEME", "SECURITY_SCHEME_NAME", "KeyCache", "Principal", "authenticate",
           "presented_key"]

# Garbage ids are cached as "no such key" too, so they cost the database one lookup per period;
# past this many entries the cache starts afresh rather than grow without bound.
_CACHE_MAX_ENTRIES = 10_000

# The scheme as the OpenAPI document declares it (api.openapi), on every operation that can answer 401.
SECURITY_SCHEME_NAME = "ApiKey"
SECURITY_SCHEME: dict[str, str] = {
    "type": "http", "scheme": "bearer", "bearerFormat": "sck_<id>_<secret>",
    "description": "An API key from `smartcity apikeys create --scope read|write|admin`.",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (its id and scope), or the public (no key, public reads on)."""

    key_id: str | None
    scope: Scope | None


@dataclass(frozen=True)
class _CachedKey:
    digest: bytes | None  # None: no key has this id
    scope: Scope
    revoked: bool
    fetched_at: float


class KeyCache:
    """The rows of recently presented keys, each for ``ttl`` seconds (0: always look up)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, _CachedKey] = {}

    async def get(self, request: Request, key_id: str) -> _CachedKey:
        """Return the key's row, from the cache while fresh, else from the database."""
        now = time.monotonic()
        entry = self._entries.get(key_id)
        if entry is not None and now - entry.fetched_at < self.ttl:
            return entry
        async with request.state.pool.connection() as conn:
            row = await (await conn.execute(key_sql.SELECT_KEY_FOR_CHECK, (key_id,))).fetchone()
            if row is None:
                entry = _CachedKey(None, Scope.READ, True, now)
            else:
                entry = _CachedKey(bytes(row[0]), Scope.from_label(row[1]), row[2], now)
                if not entry.revoked:
                    # Written whether or not the secret matches below; only an id is needed to
                    # get here, so "last used" means "last presented" to within one period.
                    await conn.execute(key_sql.TOUCH_KEY, (key_id,))
        if len(self._entries) >= _CACHE_MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_id] = entry
        return entry


def presented_key(request: Request) -> str | None:
    """The key in ``Authorization: Bearer <key>``; None without one (another scheme is no key)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


async def authenticate(request: Request, needed: Scope) -> Principal:
    """Return who is calling, if they may call a route that needs ``needed``.

    A plain function, not a FastAPI dependency of its own: ``build_router`` calls it from the one
    dependency each route has, since every dependency FastAPI solves costs a ``latest`` request
    more than the key check itself (bench api).

    Raises:
        Unauthorized: no key where one is needed, or a malformed, unknown or revoked one.
        Forbidden: the key's scope is below ``needed``.
    """
    key = presented_key(request)
    if key is None:
        if needed is Scope.READ and request.app.state.settings.api.public_read:
            return Principal(None, None)
        raise Unauthorized("this route needs an API key: send 'Authorization: Bearer <key>'")
    key_id = parse_key(key)
    if key_id is None:
        raise Unauthorized("the API key is malformed: keys read sck_<id>_<secret>",
                           error="invalid_token")
    cache: KeyCache = request.app.state.key_cache
    entry = await cache.get(request, key_id)
    if entry.digest is None or not matches(key, entry.digest):
        raise Unauthorized(f"the API key {key_id} is not valid", error="invalid_token")
    if entry.revoked:
        raise Unauthorized(f"the API key {key_id} has been revoked", error="invalid_token")
    if entry.scope < needed:
        raise Forbidden(f"this route needs the {needed.label} scope; the key {key_id} has"
                        f" {entry.scope.label}", required_scope=needed.label)
    return Principal(key_id, entry.scope)
