"""Pool usage per pool rule and day, stored in the database (PoolUsage).

Redis (tracker.leases) knows only the live leases and counts page views; this
module counts visits, from the stored history (Assignment rows), per day of the
account's time zone:

- peak_leases: the most pool addresses held at once that day (a sweep over the
  [assigned_at, expires_at) intervals of the rule's "pool" assignments, each
  clipped to the day, so a lease crossing midnight counts on both days);
- leased_visits: the distinct visits whose pool assignment started that day;
- fallback_visits: the distinct visits, bots left out, given the rule's
  fallback address that day (an exhausted pool);
- pool_size: the number of pool addresses the rule has when the row is written.

`record_usage` recomputes the last few days from scratch and upserts them, so it
can run any number of times (the RQ job `tracker.jobs.reports.record_pool_usage`
runs it every 10 minutes). `usage_rows` and `suggestion` feed the rule's page.
"""

import logging
import math
from bisect import bisect_right
from collections import defaultdict
from datetime import timedelta

from flask_babel import ngettext
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from tracker.extensions import db
from tracker.models import Account, Assignment, PoolAddress, PoolUsage, Rule, Visit, utcnow
from tracker.reports.periods import local_day, to_utc, zone

logger = logging.getLogger(__name__)

USAGE_DAYS = 30


def pool_rules(account_id=None):
    """(rule, account time zone name) of every pool rule, of one account or of all."""
    query = (select(Rule, Account.timezone)
             .join(Account, Account.id == Rule.account_id)
             .where(Rule.kind == "dynamic", Rule.dynamic_mode == "pool")
             .order_by(Rule.account_id, Rule.id))
    if account_id is not None:
        query = query.where(Rule.account_id == account_id)
    return db.session.execute(query).all()


def peak(intervals):
    """The most keys held at once over half-open [start, end) intervals of (key, start, end).

    A key (a pool address) held twice at once counts once.
    """
    events = []
    for key, start, end in intervals:
        if start < end:
            events.append((start, 1, key))
            events.append((end, -1, key))
    # At the same instant a lease ending frees its address before another starts.
    events.sort(key=lambda event: (event[0], event[1]))
    held, live, best = defaultdict(int), 0, 0
    for _at, step, key in events:
        before = held[key]
        held[key] = before + step
        if before == 0 and step == 1:
            live += 1
            best = max(best, live)
        elif before == 1 and step == -1:
            live -= 1
    return best


def _leases(rule, start, end):
    """(key, assigned_at, expires_at) of the rule's pool leases overlapping [start, end)."""
    reservation = timedelta(minutes=rule.reservation_minutes or 0)
    rows = db.session.execute(
        select(Assignment.visit_id, Assignment.pool_address_id, Assignment.address,
               Assignment.assigned_at, Assignment.expires_at)
        .where(Assignment.account_id == rule.account_id, Assignment.rule_id == rule.id,
               Assignment.kind == "pool", Assignment.assigned_at < end,
               or_(Assignment.expires_at.is_(None), Assignment.expires_at > start))
    ).all()
    leases = []
    for visit_id, pool_address_id, address, assigned_at, expires_at in rows:
        if expires_at is None:  # not written by the page views; the reservation time then
            expires_at = assigned_at + reservation
        key = pool_address_id if pool_address_id is not None else (address or "").lower()
        leases.append((visit_id, key, assigned_at, expires_at))
    return leases


def _fallbacks(rule, start, end):
    """(visit id, assigned_at) of the rule's fallback assignments in [start, end), no bots."""
    return db.session.execute(
        select(Assignment.visit_id, Assignment.assigned_at)
        .join(Visit, and_(Visit.id == Assignment.visit_id,
                          Visit.account_id == rule.account_id))
        .where(Assignment.account_id == rule.account_id, Assignment.rule_id == rule.id,
               Assignment.kind == "fallback", Assignment.assigned_at >= start,
               Assignment.assigned_at < end, Visit.is_bot.is_(False))
    ).all()


def compute(rule, days, tz):
    """{day: (peak_leases, leased_visits, fallback_visits)} for the given local days."""
    days = sorted(days)
    bounds = [(day, to_utc(day, tz), to_utc(day + timedelta(days=1), tz)) for day in days]
    start, end = bounds[0][1], bounds[-1][2]
    starts = [day_start for _day, day_start, _end in bounds]

    def first_day(at):
        return max(bisect_right(starts, at) - 1, 0)

    clipped, leased, fallback = defaultdict(list), defaultdict(set), defaultdict(set)
    for visit, key, begin, finish in _leases(rule, start, end):
        # Each lease goes to the days it overlaps (one or two, unless renewed for days).
        for index in range(first_day(begin), len(bounds)):
            day, day_start, day_end = bounds[index]
            if day_start >= finish:
                break
            if day_end <= begin:
                continue
            clipped[day].append((key, max(begin, day_start), min(finish, day_end)))
            if begin >= day_start:
                leased[day].add(visit)
    for visit, at in _fallbacks(rule, start, end):
        day, day_start, day_end = bounds[first_day(at)]
        if day_start <= at < day_end:
            fallback[day].add(visit)
    return {day: (peak(clipped[day]), len(leased[day]), len(fallback[day])) for day in days}


def _store(rule, figures, pool_size, now):
    existing = {row.day: row for row in db.session.scalars(
        select(PoolUsage).where(PoolUsage.account_id == rule.account_id,
                                PoolUsage.rule_id == rule.id,
                                PoolUsage.day.in_(list(figures))))}
    for day, (peak_leases, leased_visits, fallback_visits) in figures.items():
        row = existing.get(day)
        if row is None:
            row = PoolUsage(account_id=rule.account_id, rule_id=rule.id, day=day)
            db.session.add(row)
        row.pool_size, row.peak_leases = pool_size, peak_leases
        row.leased_visits, row.fallback_visits = leased_visits, fallback_visits
        row.updated_at = now


def record_usage(now=None, days=2, account_id=None):
    """Recompute and store the last `days` local days of every pool rule (of one account,
    when given); returns rows written.

    Each rule is committed on its own; a rule whose rows another run inserted
    meanwhile is read again and updated (the unique (rule, day) index decides).
    """
    now = now or utcnow()
    days = max(int(days), 1)
    written = 0
    targets = [(rule.id, timezone) for rule, timezone in pool_rules(account_id)]
    for rule_id, timezone in targets:
        tz = zone(timezone)
        for attempt in (1, 2):
            rule = db.session.get(Rule, rule_id)
            if rule is None:
                break
            today = local_day(now, tz)
            wanted = [today - timedelta(days=n) for n in range(days - 1, -1, -1)]
            pool_size = db.session.scalar(
                select(func.count()).select_from(PoolAddress)
                .where(PoolAddress.account_id == rule.account_id, PoolAddress.rule_id == rule.id))
            _store(rule, compute(rule, wanted, tz), pool_size, now)
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                if attempt == 2:
                    raise
                logger.info("Pool usage of rule %s was written meanwhile; updating it", rule_id)
                continue
            written += len(wanted)
            break
    return written


def usage_rows(rule, days=USAGE_DAYS, now=None):
    """The stored usage of a rule for its last `days` local days, newest first."""
    timezone = db.session.scalar(select(Account.timezone).where(Account.id == rule.account_id))
    today = local_day(now or utcnow(), zone(timezone))
    return db.session.scalars(
        select(PoolUsage)
        .where(PoolUsage.account_id == rule.account_id, PoolUsage.rule_id == rule.id,
               PoolUsage.day > today - timedelta(days=days), PoolUsage.day <= today)
        .order_by(PoolUsage.day.desc())
    ).all()


def addresses_needed(row):
    """How many addresses the pool needed that day in all, estimated from its visits.

    The addresses it had served `leased_visits` visits; the visits that got the
    fallback would have needed proportionally more. None when nothing was missed.
    """
    if row.fallback_visits <= 0:
        return None
    if row.leased_visits <= 0 or row.pool_size <= 0:
        # Nothing to scale from (an empty pool, or every address held all day): at least double.
        return max(row.pool_size, 1) * 2
    return math.ceil(row.pool_size * (row.leased_visits + row.fallback_visits)
                     / row.leased_visits)


def suggestion(rows, pool_size, days=USAGE_DAYS):
    """A plain-words suggestion to grow the pool, or None when it is big enough.

    rows: the PoolUsage rows of the last `days` days. Days when visits got the
    fallback address count as full; the number to add comes from the worst of
    them and the pool's size now.
    """
    full = [row for row in rows if row.fallback_visits > 0]
    if not full:
        return None
    needed = max(addresses_needed(row) for row in full)
    more = needed - pool_size
    if more <= 0:
        return None
    missed = sum(row.fallback_visits for row in full)
    return " ".join((
        ngettext("On %(num)d of the last %(total)d days every address was taken.",
                 "On %(num)d of the last %(total)d days every address was taken.",
                 len(full), total=days),
        ngettext("%(num)d visit got the fallback address.",
                 "%(num)d visits got the fallback address.", missed),
        ngettext("Add about %(num)d address.", "Add about %(num)d addresses.", more),
    ))
