"""Rate limits (api.ratelimit): token buckets per key, per address, and per address for failed key
checks; 429 problems with Retry-After; bounded memory; safe from threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from api import create_app
from api.ratelimit import RateLimiter
from smartcity.apikeys import Scope, create_key
from smartcity.settings import ApiSettings, Settings
from tests.api.client import TestClient

PROBLEM = "application/problem+json"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the bucket ------------------------------------------------------------------------------

def test_a_bucket_gives_its_burst_then_one_token_per_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, 5, clock=clock)
    assert [limiter.take("k") for _ in range(5)] == [0.0] * 5
    assert limiter.take("k") == pytest.approx(0.5)  # one token every 1/2 s
    clock.now += 0.25
    assert limiter.take("k") == pytest.approx(0.25)  # refused takes take nothing
    clock.now += 0.25
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == pytest.approx(0.5)
    clock.now += 100  # never more than the burst, however long the client was idle
    assert [limiter.take("k") for _ in range(6)].count(0.0) == 5


def test_buckets_are_per_name() -> None:
    limiter = RateLimiter(1.0, 2, clock=FakeClock())
    assert limiter.take("a") == limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_a_rate_of_zero_is_off_and_stores_nothing() -> None:
    limiter = RateLimiter(0.0, 0)
    assert all(limiter.take(f"c{i}") == 0.0 for i in range(1000))
    assert len(limiter) == 0 and not limiter.enabled


def test_idle_buckets_expire() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, 20, sweep_s=60, clock=clock)
    for i in range(500):
        limiter.take(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter) == 500
    clock.now += 30  # each bucket is full again after 2 s: the next sweep (60 s) drops them
    limiter.take("busy")
    assert len(limiter) == 501
    clock.now += 31
    limiter.take("busy")
    assert len(limiter) == 1


def test_memory_stays_bounded_under_a_flood_of_addresses() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1.0, 100, max_entries=1000, clock=clock)
    for i in range(50_000):  # every one still far from full: nothing is idle
        limiter.take(f"2001:db8::{i:x}")
        assert len(limiter) <= 1000
    # The newest clients keep their buckets: the one that just emptied its own is still refused.
    for _ in range(100):
        limiter.take("2001:db8::ffff:1")
    assert limiter.take("2001:db8::ffff:1") > 0


def test_takes_from_many_threads_grant_exactly_the_burst() -> None:
    limiter = RateLimiter(0.001, 1000)  # refills one token in 1,000 s: none during the test
    granted = []
    lock = threading.Lock()

    def client() -> None:
        mine = sum(1 for _ in range(500) if limiter.take("shared") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 1000


def test_a_rate_without_a_burst_is_refused_naming_both_settings() -> None:
    with pytest.raises(ValueError, match="RATE_LIMIT_KEY_PER_S=5 and SMARTCITY_API__RATE_LIMIT_KEY_BURST=0"):
        ApiSettings(rate_limit_key_per_s=5, rate_limit_key_burst=0)
    with pytest.raises(ValueError, match="RATE_LIMIT_ADDRESS_PER_S=0"):
        ApiSettings(rate_limit_address_per_s=0, rate_limit_address_burst=10)


# --- through the app ------------------------------------------------------------------------

def _limited(settings: Settings, **api: object) -> Settings:
    return settings.model_copy(update={"api": settings.api.model_copy(update=api)})


@pytest.fixture
def read_key(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return create_key(conn, Scope.READ, "rate test").key


@pytest.fixture
def limited_client(settings: Settings) -> Iterator[TestClient]:
    """An app with small buckets: 3 per key, 2 per address, public reads on."""
    tight = _limited(settings, public_read=True, rate_limit_key_per_s=0.01, rate_limit_key_burst=3,
                     rate_limit_address_per_s=0.01, rate_limit_address_burst=2)
    with TestClient(create_app(tight)) as client:
        yield client


def _assert_429(response: object, whose: str) -> None:
    assert response.status_code == 429, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == PROBLEM  # type: ignore[attr-defined]
    retry_after = response.headers["retry-after"]  # type: ignore[attr-defined]
    assert retry_after.isdigit() and int(retry_after) >= 1  # whole seconds
    assert 0.01 * int(retry_after) >= 0.99  # at 0.01 tokens/s, ~100 s until the next one
    assert response.headers["ratelimit-remaining"] == "0"  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["status"] == 429 and body["retry_after"] == int(retry_after)
    assert whose in body["detail"] and "per second" in body["detail"]


def test_a_key_gets_its_burst_then_429s_while_another_key_is_served(
        limited_client: TestClient, read_key: str, admin_key: str) -> None:
    mine = {"Authorization": f"Bearer {read_key}"}
    assert [limited_client.get("/api/v1/sites", headers=mine).status_code for _ in range(3)] == [200] * 3
    refused = limited_client.get("/api/v1/devices", headers=mine)
    _assert_429(refused, read_key.split("_")[1])
    assert limited_client.get("/api/v1/sites", headers={"Authorization": f"Bearer {admin_key}"}
                              ).status_code == 200
    # The limits hold for the key, not for the address: public reads from here are still served.
    assert limited_client.get("/api/v1/sites").status_code == 200


def test_public_reads_are_limited_per_address(limited_client: TestClient, read_key: str) -> None:
    assert [limited_client.get("/api/v1/sites").status_code for _ in range(2)] == [200, 200]
    _assert_429(limited_client.get("/api/v1/sites"), "the address testclient")
    # A key from the same address has a bucket of its own.
    assert limited_client.get("/api/v1/sites", headers={"Authorization": f"Bearer {read_key}"}
                              ).status_code == 200


def test_failed_key_checks_lock_out_keyed_requests_from_the_address(
        limited_client: TestClient, read_key: str) -> None:
    wrong = {"Authorization": f"Bearer {read_key[:-4]}AAAA"}
    assert [limited_client.get("/api/v1/sites", headers=wrong).status_code for _ in range(2)] == [401] * 2
    _assert_429(limited_client.get("/api/v1/sites", headers=wrong), "after failed API key checks")
    # A right key from that address gets the same 429 now: a guess cannot tell right from wrong.
    right = limited_client.get("/api/v1/sites", headers={"Authorization": f"Bearer {read_key}"})
    _assert_429(right, "after failed API key checks")
    # Malformed keys count too, and public reads (no key) have their own bucket.
    assert limited_client.get("/api/v1/sites").status_code == 200


def test_a_failed_check_on_an_admin_route_counts_too(settings: Settings) -> None:
    tight = _limited(settings, rate_limit_address_per_s=0.01, rate_limit_address_burst=1)
    with TestClient(create_app(tight)) as client:
        bad = {"Authorization": "Bearer sck_nosuchkey000_xxxxxxxxxxxxxxxx"}
        assert client.get("/api/v1/quarantine", headers=bad).status_code == 401
        _assert_429(client.post("/api/v1/devices", headers=bad, json={}), "after failed API key checks")


def test_limits_off_refuse_nothing(settings: Settings, admin_headers: dict[str, str]) -> None:
    off = _limited(settings, rate_limit_key_per_s=0, rate_limit_key_burst=0,
                   rate_limit_address_per_s=0, rate_limit_address_burst=0)
    with TestClient(create_app(off), headers=admin_headers) as client:
        assert {client.get("/api/v1/sites").status_code for _ in range(300)} == {200}
        assert len(client.app.state.rate_limits.per_key) == 0  # type: ignore[attr-defined]


def test_the_defaults_let_a_dashboard_through(client: TestClient) -> None:
    # A page of the demo fleet at once: 36 devices' latest values and the sites, well within a burst.
    statuses = {client.get("/api/v1/devices/aq-kuaro-01/latest").status_code for _ in range(40)}
    assert statuses == {404}  # not registered here: what matters is that none was a 429


def test_health_openapi_and_metrics_are_not_limited(limited_client: TestClient) -> None:
    for path in ("/api/v1/health", "/openapi.json", "/metrics"):
        assert {limited_client.get(path).status_code for _ in range(5)} <= {200, 503}
