"""A page view from the website script: the visit, the winning rule per block, the addresses."""

import re
import time
from dataclasses import dataclass
from types import SimpleNamespace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from flask import current_app
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from tracker import leases
from tracker.extensions import db
from tracker.models import Assignment, Block, Display, Rule, Site, Visit, utcnow
from tracker.models.visits import UTM_FIELDS
from tracker.segments import visit_facts, winning_rules
from tracker.tokens import catch_all_address, random_token, sub_address

BOT_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|mediapartners|facebookexternalhit|embedly|preview|"
    r"yandex(?:bot|images|metrika|direct)|bingpreview|lighthouse|pingdom|uptime|"
    r"curl/|wget/|python-requests|httpclient|okhttp|go-http-client",
    re.I,
)
_CLIENT_ID = re.compile(r"[\w.\-]{1,100}")


class PayloadError(ValueError):
    """A page view or display report that does not have the expected shape."""


class SiteGone(LookupError):
    """The site was deleted after the registry cached its key."""


@dataclass
class Hit:
    """A validated page view."""

    visitor_id: str
    visit_id: str
    url: str
    referrer: str
    ga: str
    ym: str
    webdriver: bool


def _text(payload, name, limit, required=False, pattern=None):
    value = payload.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise PayloadError(f"{name} is required")
    if len(value) > limit:
        raise PayloadError(f"{name} is longer than {limit} characters")
    if value and pattern is not None and not pattern.fullmatch(value):
        raise PayloadError(f"{name} has unexpected characters")
    return value


_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


def parse_hit(payload):
    """Validate the body of a page view; raises PayloadError with a message."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object")
    url = _text(payload, "u", 2000, required=True)
    if urlsplit(url).scheme not in ("http", "https"):
        raise PayloadError("u must be an http(s) URL")
    referrer = _text(payload, "r", 2000)
    if referrer and urlsplit(referrer).scheme not in ("http", "https", "android-app"):
        raise PayloadError("r must be a URL")
    webdriver = payload.get("wd", False)
    if not isinstance(webdriver, bool):
        raise PayloadError("wd must be true or false")
    return Hit(
        visitor_id=_text(payload, "v", 64, required=True, pattern=_ID),
        visit_id=_text(payload, "s", 64, required=True, pattern=_ID),
        url=url,
        referrer=referrer,
        ga=ga_client_id(_text(payload, "ga", 200)),
        ym=_text(payload, "ym", 100, pattern=_CLIENT_ID),
        webdriver=webdriver,
    )


def ga_client_id(cookie):
    """The Google Analytics client id from a `_ga` cookie (GA1.2.123.456 -> 123.456)."""
    parts = cookie.split(".")
    if len(parts) >= 4 and all(p.isdigit() for p in parts[-2:]):
        return ".".join(parts[-2:])
    return ""


def utm_from(url):
    """utm_* parameters of a landing URL."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=False)
    return {name: (query.get(name) or [""])[0][:200] for name in UTM_FIELDS}


def is_bot(user_agent, webdriver):
    """Obvious automation: a crawler's user agent, or a browser driven by WebDriver."""
    return bool(webdriver) or not user_agent or bool(BOT_AGENT.search(user_agent))


@dataclass(frozen=True)
class SiteRef:
    """What a page view needs of its site: known from the site registry without a query."""

    id: int
    account_id: int
    domain_names: tuple


# The hot path uses Core statements built once (no unit of work, no identity map), and
# the page count goes up in SQL, so concurrent page views of one visit lose no counts.
_VISITS = Visit.__table__
_ASSIGNMENTS = Assignment.__table__
_VISIT_FIELDS = ("id", "is_bot", "landing_url", "referrer", "channel", *UTM_FIELDS)
_FIND_VISIT = select(*(_VISITS.c[name] for name in _VISIT_FIELDS)).where(
    _VISITS.c.site_id == bindparam("site_id"), _VISITS.c.client_visit_id == bindparam("visit_id")
)
_COUNT_PAGE = update(_VISITS).where(_VISITS.c.id == bindparam("visit_id")).values(
    last_seen_at=bindparam("now"), page_views=_VISITS.c.page_views + 1
)
_ADD_VISIT = insert(_VISITS)
_LATEST_ASSIGNMENT = (
    select(_ASSIGNMENTS.c.id, _ASSIGNMENTS.c.address, _ASSIGNMENTS.c.token,
           _ASSIGNMENTS.c.pool_address_id)
    .where(_ASSIGNMENTS.c.visit_id == bindparam("visit_id"),
           _ASSIGNMENTS.c.rule_id == bindparam("rule_id"))
    .order_by(_ASSIGNMENTS.c.id.desc())
    .limit(1)
)
_ADD_ASSIGNMENT = insert(_ASSIGNMENTS)
_EXTEND_LEASE = update(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id == bindparam("assignment_id")).values(
    expires_at=bindparam("expires")
)


def _find_visit(site, hit):
    return db.session.execute(_FIND_VISIT, {"site_id": site.id, "visit_id": hit.visit_id}).first()


def _another_page(visit, now):
    db.session.execute(_COUNT_PAGE, {"visit_id": visit.id, "now": now})
    return visit


def _visit(site, hit, user_agent, now):
    """The visit this page view belongs to (its id and source fields), and whether it is new."""
    visit = _find_visit(site, hit)
    if visit is not None:
        return _another_page(visit, now), False
    utm = utm_from(hit.url)
    facts = visit_facts(landing_url=hit.url, referrer=hit.referrer, utm=utm,
                        own_domains=site.domain_names)
    values = dict(
        account_id=site.account_id, site_id=site.id, visitor_id=hit.visitor_id,
        client_visit_id=hit.visit_id, started_at=now, last_seen_at=now, landing_url=hit.url,
        referrer=hit.referrer, channel=facts["channel"], ga_client_id=hit.ga,
        ym_client_id=hit.ym, user_agent=user_agent[:500],
        is_bot=is_bot(user_agent, hit.webdriver), page_views=1, created_at=now, **utm,
    )
    try:
        values["id"] = db.session.execute(_ADD_VISIT, values).inserted_primary_key[0]
    except IntegrityError:
        # The same visit's first page views raced (two tabs): the other one created it.
        # Otherwise the site itself is gone (its foreign key failed).
        db.session.rollback()
        visit = _find_visit(site, hit)
        if visit is None:
            raise SiteGone(site.id) from None
        return _another_page(visit, now), False
    return SimpleNamespace(**{name: values[name] for name in _VISIT_FIELDS}), True


def _existing(visit, rule, fresh):
    """The visit's latest assignment by the rule (id, address, token, pool address id)."""
    if fresh:  # a visit created by this page view has no assignments yet
        return None
    return db.session.execute(_LATEST_ASSIGNMENT, {"visit_id": visit.id, "rule_id": rule.id}).first()


def _store(site, visit, rule, kind, address, now, token=None, pool_address_id=None, expires=None):
    db.session.execute(_ADD_ASSIGNMENT, dict(
        account_id=site.account_id, site_id=site.id, visit_id=visit.id, rule_id=rule.id,
        kind=kind, address=address, assigned_at=now, created_at=now, token=token,
        pool_address_id=pool_address_id, expires_at=expires,
    ))


def _assign_token(site, visit, rule, now, fresh):
    """A sub-address or catch-all address unique to the visit (one per visit and rule)."""
    current = _existing(visit, rule, fresh)
    if current is not None and current.token:
        return current.address
    for _ in range(5):
        # 49 random bits: a clash is so rare that the unique constraint alone decides.
        token = random_token()
        if rule.dynamic_mode == "subaddress":
            address = sub_address(rule.base_address, token)
        else:
            address = catch_all_address(rule.catchall_domain, token)
        try:
            with db.session.begin_nested():
                _store(site, visit, rule, rule.dynamic_mode, address, now, token=token)
            return address
        except IntegrityError:
            continue  # another request drew the same token: draw again
    raise RuntimeError("could not store a unique token")


def _record_once(site, visit, rule, kind, address, now, fresh):
    current = _existing(visit, rule, fresh)
    if current is None or current.address != address:
        _store(site, visit, rule, kind, address, now)
    return address


def _assign_pool(site, visit, rule, now, redis, fresh):
    """Lease a pool address for the reservation time, or fall back when none is free."""
    pool = {row.id: row.address for row in rule.pool_addresses}
    if visit.is_bot or not pool:
        return _record_once(site, visit, rule, "fallback", rule.fallback_address, now, fresh)
    current = _existing(visit, rule, fresh)
    order = list(pool)
    if current is not None and current.pool_address_id in pool:
        order.remove(current.pool_address_id)
        order.insert(0, current.pool_address_id)
    ttl_ms = rule.reservation_minutes * 60_000
    now_ms = int(time.time() * 1000)
    got = leases.lease(redis, rule.id, visit.id, order, now_ms, ttl_ms)
    if got.pool_address_id is None:
        return _record_once(site, visit, rule, "fallback", rule.fallback_address, now, fresh)
    expires = now + timedelta(milliseconds=ttl_ms)
    if not got.new and current is not None and current.pool_address_id == got.pool_address_id:
        db.session.execute(_EXTEND_LEASE, {"assignment_id": current.id, "expires": expires})
    else:
        _store(site, visit, rule, "pool", pool[got.pool_address_id], now,
               pool_address_id=got.pool_address_id, expires=expires)
    return pool[got.pool_address_id]


def _address(site, visit, rule, now, redis, fresh):
    if rule.kind == "static":
        return _record_once(site, visit, rule, "static", rule.static_address, now, fresh)
    if rule.dynamic_mode in ("subaddress", "catchall"):
        return _assign_token(site, visit, rule, now, fresh)
    return _assign_pool(site, visit, rule, now, redis, fresh)


@dataclass(frozen=True)
class BlockSetup:
    """A block as a page view needs it (a plain copy, safe to keep between requests)."""

    id: int
    placement: str
    selector: str | None
    replace_address: str | None
    address_values: tuple


@dataclass(frozen=True)
class ConditionSetup:
    field: str
    operator: str
    value: str


@dataclass(frozen=True)
class PoolSetup:
    id: int
    address: str


@dataclass(frozen=True)
class RuleSetup:
    """A rule as segment matching and address assignment need it."""

    id: int
    priority: int
    active: bool
    match_all: bool
    block_ids: tuple
    conditions: tuple
    kind: str
    dynamic_mode: str | None
    static_address: str | None
    base_address: str | None
    catchall_domain: str | None
    fallback_address: str | None
    reservation_minutes: int
    pool_addresses: tuple


def _rule_setup(rule):
    return RuleSetup(
        id=rule.id, priority=rule.priority, active=rule.active, match_all=rule.match_all,
        block_ids=tuple(rule.block_ids),
        conditions=tuple(ConditionSetup(c.field, c.operator, c.value) for c in rule.conditions),
        kind=rule.kind, dynamic_mode=rule.dynamic_mode, static_address=rule.static_address,
        base_address=rule.base_address, catchall_domain=rule.catchall_domain,
        fallback_address=rule.fallback_address, reservation_minutes=rule.reservation_minutes,
        pool_addresses=tuple(PoolSetup(p.id, p.address) for p in rule.pool_addresses),
    )


def site_setup(site):
    """The blocks of a site and the active rules that serve them, as plain copies."""
    blocks = db.session.scalars(
        select(Block).where(Block.sites.any(Site.id == site.id))
        .options(selectinload(Block.addresses))
    ).all()
    block_ids = [b.id for b in blocks]
    rules = db.session.scalars(
        select(Rule)
        .where(Rule.account_id == site.account_id, Rule.active.is_(True),
               Rule.blocks.any(Block.id.in_(block_ids)))
        .options(selectinload(Rule.conditions), selectinload(Rule.blocks),
                 selectinload(Rule.pool_addresses))
    ).all() if block_ids else []
    return (
        [BlockSetup(b.id, b.placement, b.selector, b.replace_address, tuple(b.address_values))
         for b in blocks],
        [_rule_setup(rule) for rule in rules],
    )


def cached_site_setup(site):
    """site_setup(), kept per process for SITE_SETUP_CACHE_SECONDS (changes show up that late).

    Every page view needs them and they rarely change; 0 turns the cache off.
    """
    ttl = current_app.config["SITE_SETUP_CACHE_SECONDS"]
    if not ttl:
        return site_setup(site)
    cache = current_app.extensions.setdefault("tracker.site_setups", {})
    now = time.monotonic()
    entry = cache.get(site.id)
    if entry is None or entry[0] <= now:
        if len(cache) > 10_000:
            cache.clear()  # a bound on memory; entries are cheap to rebuild
        entry = cache[site.id] = (now + ttl, site_setup(site))
    return entry[1]


def record_page_view(site, hit, user_agent, redis):
    """Store the page view and answer, per block, where to look and what to show."""
    now = utcnow()
    visit, fresh = _visit(site, hit, user_agent, now)
    blocks, rules = cached_site_setup(site)
    facts = visit_facts(
        landing_url=visit.landing_url, referrer=visit.referrer,
        utm={name: getattr(visit, name) for name in UTM_FIELDS}, channel=visit.channel,
    )
    winners = winning_rules(rules, facts)
    answer, by_rule = [], {}
    for block in blocks:
        rule = winners.get(block.id)
        if rule is None:
            continue
        if rule.id not in by_rule:
            by_rule[rule.id] = _address(site, visit, rule, now, redis, fresh)
        address = by_rule[rule.id]
        if not address:
            continue
        entry = {"i": block.id, "t": address}
        if block.placement == "element":
            entry["q"] = block.selector
            if block.replace_address:
                entry["f"] = [block.replace_address]
        else:
            entry["f"] = list(block.address_values)
        answer.append(entry)
    db.session.commit()
    return {"s": hit.visit_id, "b": answer}


def parse_displays(payload):
    """Validate a display report: [[block id, address, count], ...] (at most 50)."""
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object")
    visit_id = _text(payload, "s", 64, required=True, pattern=_ID)
    rows = payload.get("d")
    if not isinstance(rows, list) or not 0 < len(rows) <= 50:
        raise PayloadError("d must be a list of 1 to 50 entries")
    out = []
    for row in rows:
        if (not isinstance(row, list) or len(row) != 3 or not isinstance(row[0], int)
                or isinstance(row[0], bool) or not isinstance(row[1], str)
                or not isinstance(row[2], int) or isinstance(row[2], bool)):
            raise PayloadError("each entry of d must be [block id, address, count]")
        if not 0 < row[0] < 2**31 or not 0 < row[2] <= 10_000 or not 0 < len(row[1]) <= 320:
            raise PayloadError("an entry of d is out of range")
        out.append((row[0], row[1], row[2]))
    return visit_id, out


def record_displays(site, visit_id, rows):
    """Store what the script displayed; entries for unknown visits or blocks are ignored."""
    visit = db.session.scalar(
        select(Visit).where(Visit.site_id == site.id, Visit.client_visit_id == visit_id)
    )
    if visit is None:
        return 0
    known = set(db.session.scalars(
        select(Block.id).where(Block.sites.any(Site.id == site.id))
    ))
    stored = 0
    now = utcnow()
    for block_id, address, count in rows:
        if block_id in known:
            db.session.add(Display(account_id=site.account_id, visit_id=visit.id,
                                   block_id=block_id, address=address, count=count, at=now))
            stored += 1
    db.session.commit()
    return stored
