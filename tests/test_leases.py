"""Pool leases in real Redis: atomic under concurrency, renewed by activity, freed by time."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from redis import Redis

from tracker.leases import lease, usage


@pytest.fixture
def redis(redis_server):
    client = Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


def test_200_concurrent_requests_against_a_pool_of_50(redis_server, redis):
    pool = list(range(1, 51))

    def request(visit):
        client = Redis.from_url(redis_server.url)
        try:
            return visit, lease(client, 7, visit, pool, now_ms=1_000, ttl_ms=60_000)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=32) as executor:
        results = list(executor.map(request, range(200)))
    held = [r.pool_address_id for _, r in results if r.pool_address_id]
    assert len(held) == 50 and sorted(held) == pool  # every address once: no double lease
    assert sum(1 for _, r in results if r.pool_address_id is None) == 150
    assert usage(redis, 7, now_ms=1_000) == {"live": 50, "peak": 50, "exhausted": 150}


def test_a_visit_keeps_its_address_and_renews_it(redis):
    first = lease(redis, 1, "v1", [10, 11], now_ms=0, ttl_ms=1000)
    assert (first.pool_address_id, first.new) == (10, True)
    again = lease(redis, 1, "v1", [10, 11], now_ms=900, ttl_ms=1000)
    assert (again.pool_address_id, again.new) == (10, False)
    # Renewed at 900 until 1900: at 1500 another visit cannot take it.
    other = lease(redis, 1, "v2", [10], now_ms=1500, ttl_ms=1000)
    assert other.pool_address_id is None


def test_an_expired_lease_is_free_again(redis):
    lease(redis, 1, "v1", [10], now_ms=0, ttl_ms=1000)
    later = lease(redis, 1, "v2", [10], now_ms=1001, ttl_ms=1000)
    assert (later.pool_address_id, later.new) == (10, True)
    # The first visit comes back: its address is gone, it gets nothing from a pool of one.
    assert lease(redis, 1, "v1", [10], now_ms=1002, ttl_ms=1000).pool_address_id is None


def test_rules_are_independent(redis):
    assert lease(redis, 1, "v1", [10], now_ms=0, ttl_ms=1000).pool_address_id == 10
    assert lease(redis, 2, "v2", [10], now_ms=0, ttl_ms=1000).pool_address_id == 10
