"""Rate limits: a token bucket per API key, per client address, and per address for failed key checks.

``build_router``'s one guard calls ``check_rate`` on every route behind a key (read, write, admin):

- a request whose key checks out takes a token from its key's bucket (``api.rate_limit_key_*``);
- a request without a key (a public read, ``api.public_read``) takes one from its client address's
  bucket (``api.rate_limit_address_*``);
- a failed key check (401) takes one from its address's bucket of failures (same rate and burst, a
  table of its own, so public reads never lock out keys). While that bucket is empty, a request from
  the address that carries a key gets a 429 before its key is looked at: a loop of guesses cannot
  tell a right key from a wrong one faster than the rate.

A refused request is a 429 problem with ``Retry-After`` in whole seconds and the
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers (draft-ietf-httpapi-
ratelimit-headers' first form). The client address is the socket peer, or the client a trusted
proxy names (uvicorn's proxy headers, ``api.forwarded_allow_ips``; see ``api.server``).

The buckets live in the API process: with N processes a client gets up to N times the rate. A
bucket that would be full again is the same as no bucket, so idle ones are dropped (at most once a
``sweep_s``); past ``max_entries`` clients the longest-known are dropped too, so memory stays bounded
whatever the number of addresses. One lock per limiter: a take is a few dictionary operations with
no ``await`` inside, safe from the event loop and from threads alike.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from api.errors import TooManyRequests
from smartcity.settings import ApiSettings

__all__ = ["RateLimiter", "RateLimits", "check_failures_before", "check_rate", "client_address",
           "count_failure"]

_MAX_ENTRIES = 100_000
_SWEEP_S = 60.0


class RateLimiter:
    """Token buckets of ``burst`` tokens refilled at ``rate`` per second, one per client name.

    ``rate == 0`` is off: every take succeeds and nothing is stored.
    """

    def __init__(self, rate: float, burst: int, *, max_entries: int = _MAX_ENTRIES,
                 sweep_s: float = _SWEEP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.max_entries = max_entries
        self.sweep_s = sweep_s
        self._clock = clock
        # name → [tokens, time of that count]; a list, updated in place, costs one lookup per take.
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._swept_at = clock()

    @property
    def enabled(self) -> bool:
        """Tell whether the limiter refuses anything."""
        return self.rate > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, bucket: list[float] | None, now: float) -> float:
        if bucket is None:
            return float(self.burst)
        return min(float(self.burst), bucket[0] + (now - bucket[1]) * self.rate)

    def take(self, name: str) -> float:
        """Take a token from ``name``'s bucket; return 0.0, or the seconds until one is there (refused)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            if now - self._swept_at >= self.sweep_s or len(self._buckets) >= self.max_entries:
                self._sweep(now)
            bucket = self._buckets.get(name)
            tokens = self._tokens(bucket, now)
            if tokens < 1.0:
                return (1.0 - tokens) / self.rate
            if bucket is None:
                self._buckets[name] = [tokens - 1.0, now]
            else:
                bucket[0], bucket[1] = tokens - 1.0, now
            return 0.0

    def wait_s(self, name: str) -> float:
        """Return the seconds until ``name`` has a token (0.0: it has one now), taking nothing."""
        if not self.enabled:
            return 0.0
        with self._lock:
            tokens = self._tokens(self._buckets.get(name), self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def remaining(self, name: str) -> int:
        """Return the whole tokens left in ``name``'s bucket now."""
        with self._lock:
            return int(self._tokens(self._buckets.get(name), self._clock()))

    def _sweep(self, now: float) -> None:
        # Called with the lock held. A full bucket is indistinguishable from a missing one.
        full_after = self.burst / self.rate
        self._buckets = {name: bucket for name, bucket in self._buckets.items()
                         if now - bucket[1] < full_after}
        if len(self._buckets) >= self.max_entries:
            # Still too many live clients (a flood of addresses): keep the newer half. Those
            # dropped start again with a full bucket, which bounds memory at a burst's cost.
            names = list(self._buckets)
            self._buckets = {name: self._buckets[name] for name in names[len(names) // 2:]}
        self._swept_at = now


@dataclass(frozen=True)
class RateLimits:
    """The API process's three limiters (module docstring)."""

    per_key: RateLimiter
    per_address: RateLimiter
    failed_keys: RateLimiter

    @classmethod
    def from_settings(cls, api: ApiSettings) -> RateLimits:
        """Build the limiters ``api``'s rates and bursts describe."""
        return cls(RateLimiter(api.rate_limit_key_per_s, api.rate_limit_key_burst),
                   RateLimiter(api.rate_limit_address_per_s, api.rate_limit_address_burst),
                   RateLimiter(api.rate_limit_address_per_s, api.rate_limit_address_burst))


def client_address(request: Request) -> str:
    """Return the client's address: the socket peer, or what a trusted proxy said it is (uvicorn)."""
    client = request.client
    return client.host if client is not None else "unknown"


def _refusal(limiter: RateLimiter, name: str, wait_s: float, whose: str) -> TooManyRequests:
    retry_after = max(1, math.ceil(wait_s))
    return TooManyRequests(
        f"too many requests from {whose}: the limit is {limiter.rate:g} per second with bursts of"
        f" {limiter.burst}; retry after {retry_after} s", retry_after=retry_after,
        limit=limiter.burst, remaining=limiter.remaining(name))


def check_rate(request: Request, limits: RateLimits, key_id: str | None) -> None:
    """Take the request's token: from its key's bucket, or from its address's when it has no key.

    Raises:
        TooManyRequests: the bucket is empty.
    """
    if key_id is not None:
        limiter, name, whose = limits.per_key, key_id, f"the API key {key_id}"
    else:
        limiter, name = limits.per_address, client_address(request)
        whose = f"the address {name}"
    wait_s = limiter.take(name)
    if wait_s:
        raise _refusal(limiter, name, wait_s, whose)


def check_failures_before(request: Request, limits: RateLimits) -> None:
    """Refuse a keyed request from an address whose failed key checks used up its bucket.

    Raises:
        TooManyRequests: the address's bucket of failures is empty.
    """
    address = client_address(request)
    wait_s = limits.failed_keys.wait_s(address)
    if wait_s:
        raise _refusal(limits.failed_keys, address, wait_s,
                       f"the address {address}, after failed API key checks")


def count_failure(request: Request, limits: RateLimits) -> None:
    """Take a token from the address's bucket of failed key checks (the check has failed already)."""
    limits.failed_keys.take(client_address(request))
