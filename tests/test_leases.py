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


def test_the_address_idle_longest_is_leased_next(redis):
    pool = [10, 11, 12]
    # Three visits take the three addresses; their leases end at different times.
    assert lease(redis, 1, "v1", pool, now_ms=0, ttl_ms=3000).pool_address_id == 10
    assert lease(redis, 1, "v2", pool, now_ms=0, ttl_ms=1000).pool_address_id == 11
    assert lease(redis, 1, "v3", pool, now_ms=0, ttl_ms=2000).pool_address_id == 12
    # At 5000 all are free: 11 ended first (1000), then 12 (2000), then 10 (3000).
    order = [lease(redis, 1, f"w{n}", pool, now_ms=5000, ttl_ms=1000).pool_address_id
             for n in range(3)]
    assert order == [11, 12, 10]


def test_never_leased_addresses_come_first_in_pool_order(redis):
    assert lease(redis, 1, "v1", [10], now_ms=0, ttl_ms=1000).pool_address_id == 10
    # 10 is free again but was used; 11 and 12 never were.
    got = [lease(redis, 1, f"w{n}", [10, 12, 11], now_ms=2000, ttl_ms=1000).pool_address_id
           for n in range(3)]
    assert got == [12, 11, 10]


def test_a_visit_gets_back_its_own_ended_lease_when_nobody_took_it(redis):
    assert lease(redis, 1, "v1", [10, 11], now_ms=0, ttl_ms=1000).pool_address_id == 10
    assert lease(redis, 1, "v2", [10, 11], now_ms=0, ttl_ms=500).pool_address_id == 11
    # Both ended; 11 has been idle longer, but v1 comes back to its own address.
    back = lease(redis, 1, "v1", [10, 11], now_ms=2000, ttl_ms=1000)
    assert (back.pool_address_id, back.new) == (10, True)
    assert lease(redis, 1, "v3", [10, 11], now_ms=2000, ttl_ms=1000).pool_address_id == 11


def test_a_renewed_lease_is_released_when_it_really_ends(redis):
    pool = [10, 11]
    lease(redis, 1, "v1", pool, now_ms=0, ttl_ms=1000)            # 10 until 1000
    lease(redis, 1, "v2", pool, now_ms=0, ttl_ms=1000)            # 11 until 1000
    lease(redis, 1, "v1", pool, now_ms=900, ttl_ms=1000)          # 10 renewed until 1900
    # At 3000 both are free: 11 (ended 1000) has been idle longer than 10 (ended 1900).
    assert lease(redis, 1, "w", pool, now_ms=3000, ttl_ms=1000).pool_address_id == 11
    assert usage(redis, 1, now_ms=3000) == {"live": 1, "peak": 2, "exhausted": 0}


def test_idle_longest_through_the_page_view_script(redis):
    """The page-view scripts of tracker.visitstate use the same function, in one round trip."""
    from tracker import visitstate

    item = {"r": 5, "k": "pool", "p": [[10, "p10@x"], [11, "p11@x"]], "l": 1000, "f": None}
    for n, ttl in ((1, 1000), (2, 500)):
        addresses, _ = visitstate.give(redis, 1, f"visit-{n}", 0, [dict(item, l=ttl)],
                                       row={"n": n}, facts={})
    assert [a for a in addresses.values()] == ["p11@x"]
    addresses, _ = visitstate.give(redis, 1, "visit-3", 5000, [item], row={"n": 3}, facts={})
    assert addresses == {5: "p11@x"}  # ended at 500, before p10 (1000)
