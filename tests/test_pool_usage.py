"""Pool usage per rule and day (PoolUsage), counted from the stored leases and fallbacks
in the account's time zone; the job, its cron entry, the suggestion and the rule page."""

from datetime import date, datetime, timedelta

import pytest
from babel.dates import format_date
from sqlalchemy import select

from tracker.extensions import db
from tracker.models import PoolUsage, utcnow
from tracker.reports import pools
from tracker.reports.periods import local_day, zone

# 2024-03-10 12:00 UTC is 15:00 in Moscow (UTC+3): local days 9 and 10 March are recounted.
NOW = datetime(2024, 3, 10, 12, 0)
MARCH_9, MARCH_10 = date(2024, 3, 9), date(2024, 3, 10)


@pytest.fixture
def moscow(user):
    user.account.timezone = "Europe/Moscow"
    db.session.commit()
    return user.account


@pytest.fixture
def pool(factory, moscow):
    site = factory.site(moscow, name="Shop", domains=["shop.example"])
    block = factory.block(moscow, sites=[site])
    rule = factory.rule(moscow, name="Pool", blocks=[block], mode="pool",
                        pool=["a@shop.example", "b@shop.example"],
                        fallback_address="main@shop.example")
    rule.site = site
    return rule


def lease(factory, rule, index, start, end, visit=None, **visit_fields):
    """A visit (new unless given) holding pool address `index` over [start, end), in UTC."""
    visit = visit or factory.visit(rule.site, at=start, **visit_fields)
    address = rule.pool_addresses[index]
    factory.assignment(visit, rule, address.address, kind="pool", at=start, expires_at=end,
                       pool_address=address)
    return visit


def fallback(factory, rule, at, visit=None, **visit_fields):
    visit = visit or factory.visit(rule.site, at=at, **visit_fields)
    factory.assignment(visit, rule, rule.fallback_address, kind="fallback", at=at)
    return visit


def stored(rule):
    return {row.day: (row.pool_size, row.peak_leases, row.leased_visits, row.fallback_visits)
            for row in db.session.scalars(select(PoolUsage).where(PoolUsage.rule_id == rule.id))}


@pytest.fixture
def known_day(factory, pool):
    """Leases and fallbacks around midnight 9/10 March in Moscow (21:00 UTC on the 9th)."""
    # Visit 1 holds a from 23:30 to 00:30 local: it crosses midnight, so it counts in
    # both days' peaks, and as a visit leased on the 9th only.
    lease(factory, pool, 0, datetime(2024, 3, 9, 20, 30), datetime(2024, 3, 9, 21, 30))
    # Visit 2 holds b from 00:10 to 00:40 local (10 March): two addresses held at once.
    lease(factory, pool, 1, datetime(2024, 3, 9, 21, 10), datetime(2024, 3, 9, 21, 40))
    # Visit 3 takes a at the very moment visit 1 lets it go: still two at once, not three.
    third = lease(factory, pool, 0, datetime(2024, 3, 9, 21, 30), datetime(2024, 3, 9, 22, 0))
    # ...and holds a again later the same day (a second lease of the same visit).
    lease(factory, pool, 0, datetime(2024, 3, 10, 8, 0), datetime(2024, 3, 10, 8, 30), visit=third)
    # Visit 4, earlier on the 9th (local 10:00-10:30).
    lease(factory, pool, 1, datetime(2024, 3, 9, 7, 0), datetime(2024, 3, 9, 7, 30))
    # Fallbacks on 10 March local: three people (one of them twice) and a bot.
    first = fallback(factory, pool, datetime(2024, 3, 9, 21, 20))  # 00:20 local, the 10th
    fallback(factory, pool, datetime(2024, 3, 9, 21, 25), visit=first)
    fallback(factory, pool, datetime(2024, 3, 10, 6, 0))
    fallback(factory, pool, datetime(2024, 3, 10, 11, 59))
    fallback(factory, pool, datetime(2024, 3, 10, 7, 0), is_bot=True)
    # 20:59 UTC on the 9th is 23:59 local: a fallback on the 9th, not the 10th.
    fallback(factory, pool, datetime(2024, 3, 9, 20, 59))
    # Before the two recounted days: not looked at.
    lease(factory, pool, 0, datetime(2024, 3, 7, 10, 0), datetime(2024, 3, 7, 11, 0))
    return pool


def test_usage_is_counted_per_local_day_from_the_stored_leases(known_day, factory, moscow):
    pool = known_day
    # Another pool rule of the account, and another account's pool, count apart.
    other = factory.rule(moscow, name="Other pool", blocks=pool.blocks, mode="pool",
                         pool=["o@shop.example"], fallback_address="o-main@shop.example")
    other.site = pool.site
    fallback(factory, other, datetime(2024, 3, 10, 9, 0))
    stranger = factory.account()
    their = factory.rule(stranger, mode="pool", pool=["a@shop.example"],
                         fallback_address="x@shop.example")
    their.site = factory.site(stranger)
    lease(factory, their, 0, datetime(2024, 3, 10, 9, 0), datetime(2024, 3, 10, 9, 30))

    assert pools.record_usage(now=NOW, days=2) == 6
    # day: (pool size, peak leases, visits leased, non-bot visits given the fallback)
    assert stored(pool) == {MARCH_9: (2, 1, 2, 1), MARCH_10: (2, 2, 2, 3)}
    assert stored(other) == {MARCH_9: (1, 0, 0, 0), MARCH_10: (1, 0, 0, 1)}
    # Another account in UTC: 9:00 UTC is on the 10th there.
    assert stored(their) == {MARCH_9: (1, 0, 0, 0), MARCH_10: (1, 1, 1, 0)}
    rows = db.session.scalars(select(PoolUsage).where(PoolUsage.rule_id == their.id)).all()
    assert {row.account_id for row in rows} == {stranger.id}


def test_recording_twice_leaves_the_same_rows(known_day, factory):
    pool = known_day
    pools.record_usage(now=NOW, days=2)
    first = stored(pool)
    ids = set(db.session.scalars(select(PoolUsage.id).where(PoolUsage.rule_id == pool.id)))
    later = NOW + timedelta(minutes=10)
    assert pools.record_usage(now=later, days=2) == 2
    assert stored(pool) == first
    rows = db.session.scalars(select(PoolUsage).where(PoolUsage.rule_id == pool.id)).all()
    assert {row.id for row in rows} == ids
    assert {row.updated_at for row in rows} == {later}
    # New history is picked up by the next run; the pool's size is the size now.
    lease(factory, pool, 1, datetime(2024, 3, 10, 8, 10), datetime(2024, 3, 10, 8, 20))
    pool.pool_addresses.pop()
    db.session.commit()
    pools.record_usage(now=later, days=2)
    assert stored(pool)[MARCH_10] == (1, 2, 3, 3)


def test_a_lease_without_an_end_lasts_the_reservation_time(factory, pool):
    pool.reservation_minutes = 30
    db.session.commit()
    lease(factory, pool, 0, datetime(2024, 3, 10, 5, 0), None)
    lease(factory, pool, 1, datetime(2024, 3, 10, 5, 29), datetime(2024, 3, 10, 6, 0))
    lease(factory, pool, 1, datetime(2024, 3, 10, 6, 0), datetime(2024, 3, 10, 6, 10))
    pools.record_usage(now=NOW, days=1)
    assert stored(pool) == {MARCH_10: (2, 2, 3, 0)}


def test_peak_counts_addresses_held_at_once():
    t = datetime(2024, 1, 1)

    def at(minutes):
        return t + timedelta(minutes=minutes)

    assert pools.peak([]) == 0
    assert pools.peak([(1, at(0), at(10)), (2, at(10), at(20))]) == 1  # half-open
    assert pools.peak([(1, at(0), at(10)), (2, at(5), at(20)), (3, at(6), at(7))]) == 3
    # One address held by two rows at once (a renewal written twice) counts once.
    assert pools.peak([(1, at(0), at(10)), (1, at(5), at(15)), (2, at(12), at(13))]) == 2
    assert pools.peak([(1, at(5), at(5))]) == 0


def test_the_job_records_usage_and_is_registered_with_cron(app, factory, pool):
    from rq import cron

    import tracker.jobs.cron  # noqa: F401  (registers on import, as `rq cron` loads it)
    from tracker.jobs.reports import record_pool_usage

    names = {f"{d['func'].__module__}.{d['func'].__name__}": d for d in cron._job_data_registry}
    assert names["tracker.jobs.reports.record_pool_usage"]["interval"] == 600
    now = utcnow()
    lease(factory, pool, 0, now, now + timedelta(minutes=25))
    assert record_pool_usage() == 2
    assert record_pool_usage() == 2
    today = local_day(now, zone("Europe/Moscow"))
    assert stored(pool) == {today - timedelta(days=1): (2, 0, 0, 0), today: (2, 1, 1, 0)}


def row(day, leased, fallback, size=10, peak=None):
    return PoolUsage(day=day, pool_size=size, leased_visits=leased, fallback_visits=fallback,
                     peak_leases=size if peak is None else peak)


def test_suggestion_only_when_visits_got_the_fallback(app):
    with app.test_request_context():
        assert pools.suggestion([], 10) is None
        quiet = [row(MARCH_9, 40, 0, peak=10), row(MARCH_10, 30, 0, peak=6)]
        assert pools.suggestion(quiet, 10) is None
        busy = [row(MARCH_10, 40, 10), row(MARCH_9, 50, 0), row(date(2024, 3, 8), 20, 30),
                row(date(2024, 3, 7), 45, 5)]
        # Worst day: 10 addresses served 20 visits and 30 got the fallback: about 25 needed.
        assert pools.suggestion(busy, 10) == (
            "On 3 of the last 30 days every address was taken. "
            "45 visits got the fallback address. Add about 15 addresses.")
        assert pools.suggestion(busy, 24) == (
            "On 3 of the last 30 days every address was taken. "
            "45 visits got the fallback address. Add about 1 address.")
        # The pool has grown enough since.
        assert pools.suggestion(busy, 25) is None
        # Nothing leased at all that day (an emptied pool): at least double it.
        assert "Add about 2 addresses." in pools.suggestion([row(MARCH_10, 0, 7, size=0)], 0)
        assert "Add about 3 addresses." in pools.suggestion([row(MARCH_10, 0, 7, size=3)], 3)


def test_rule_page_shows_the_days_and_the_suggestion(logged_in, factory, pool, moscow):
    today = local_day(utcnow(), zone(moscow.timezone))
    for back, (peak, leased, fallback_visits) in enumerate([(1, 3, 0), (2, 8, 4), (2, 6, 0)]):
        db.session.add(PoolUsage(account_id=moscow.id, rule_id=pool.id,
                                 day=today - timedelta(days=back), pool_size=2,
                                 peak_leases=peak, leased_visits=leased,
                                 fallback_visits=fallback_visits, updated_at=utcnow()))
    # Older than 30 days: not shown.
    db.session.add(PoolUsage(account_id=moscow.id, rule_id=pool.id,
                             day=today - timedelta(days=30), pool_size=2, peak_leases=2,
                             leased_visits=1, fallback_visits=99, updated_at=utcnow()))
    db.session.commit()
    html = logged_in.get(f"/rules/{pool.id}").get_data(as_text=True)
    assert 'id="pool-usage"' in html  # the live Redis figures stay
    assert "Addresses used, by day" in html
    assert html.count("2 / 2") == 2 and "1 / 2" in html
    assert format_date(today - timedelta(days=30), "medium", locale="en") not in html
    assert format_date(today - timedelta(days=29), "medium", locale="en") not in html
    assert format_date(today - timedelta(days=2), "medium", locale="en") in html
    assert ("On 1 of the last 30 days every address was taken. "
            "4 visits got the fallback address. Add about 1 address.") in html


def test_rule_page_without_fallbacks_has_no_suggestion(logged_in, factory, pool, moscow):
    html = logged_in.get(f"/rules/{pool.id}").get_data(as_text=True)
    assert "No usage counted yet" in html and "every address was taken" not in html
    db.session.add(PoolUsage(account_id=moscow.id, rule_id=pool.id,
                             day=local_day(utcnow(), zone(moscow.timezone)), pool_size=2,
                             peak_leases=2, leased_visits=9, fallback_visits=0,
                             updated_at=utcnow()))
    db.session.commit()
    html = logged_in.get(f"/rules/{pool.id}").get_data(as_text=True)
    assert "2 / 2" in html and "every address was taken" not in html
    static = factory.rule(moscow, name="Static one", address="s@shop.example")
    html = logged_in.get(f"/rules/{static.id}").get_data(as_text=True)
    assert "Addresses used, by day" not in html


def test_another_accounts_usage_is_not_shown(logged_in, factory, pool):
    stranger = factory.account()
    their = factory.rule(stranger, mode="pool", pool=["t@shop.example"],
                         fallback_address="tm@shop.example")
    assert logged_in.get(f"/rules/{their.id}").status_code == 404


def test_a_run_that_meets_rows_written_meanwhile_updates_them(factory, pool, monkeypatch):
    """Two runs at once: the second one's insert meets the unique (rule, day) index,
    and it reads the rows again and updates them."""
    real_store = pools._store
    calls = []

    def store_while_another_run_writes(rule, figures, pool_size, now):
        real_store(rule, figures, pool_size, now)
        if not calls:
            with db.engine.begin() as other:  # another process, on its own connection
                other.execute(PoolUsage.__table__.insert(), [
                    {"account_id": rule.account_id, "rule_id": rule.id, "day": day,
                     "pool_size": 0, "peak_leases": 0, "leased_visits": 0,
                     "fallback_visits": 0, "updated_at": now, "created_at": now}
                    for day in figures])
        calls.append(rule.id)

    monkeypatch.setattr(pools, "_store", store_while_another_run_writes)
    lease(factory, pool, 0, datetime(2024, 3, 10, 5, 0), datetime(2024, 3, 10, 5, 30))
    assert pools.record_usage(now=NOW, days=2) == 2
    assert calls == [pool.id, pool.id]
    assert stored(pool) == {MARCH_9: (2, 0, 0, 0), MARCH_10: (2, 1, 1, 0)}
