"""A page view from the website script: the visit, the winning rule per block, the addresses."""

import re
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from tracker import leases
from tracker.extensions import db
from tracker.models import Assignment, Block, Display, Rule, Site, Visit, utcnow
from tracker.models.visits import UTM_FIELDS
from tracker.segments import visit_facts, winning_rules
from tracker.tokens import catch_all_address, new_token, sub_address

BOT_AGENT = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|mediapartners|facebookexternalhit|embedly|preview|"
    r"yandex(?:bot|images|metrika|direct)|bingpreview|lighthouse|pingdom|uptime|"
    r"curl/|wget/|python-requests|httpclient|okhttp|go-http-client",
    re.I,
)
_CLIENT_ID = re.compile(r"[\w.\-]{1,100}")


class PayloadError(ValueError):
    """A page view or display report that does not have the expected shape."""


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


def _visit(site, hit, user_agent, now):
    """The visit this page view belongs to, created on its first page."""
    visit = db.session.scalar(
        select(Visit).where(Visit.site_id == site.id, Visit.client_visit_id == hit.visit_id)
    )
    if visit is not None:
        visit.last_seen_at = now
        visit.page_views += 1
        return visit
    utm = utm_from(hit.url)
    facts = visit_facts(landing_url=hit.url, referrer=hit.referrer, utm=utm,
                        own_domains=site.domain_names)
    visit = Visit(
        account_id=site.account_id, site_id=site.id, visitor_id=hit.visitor_id,
        client_visit_id=hit.visit_id, started_at=now, last_seen_at=now, landing_url=hit.url,
        referrer=hit.referrer, channel=facts["channel"], ga_client_id=hit.ga,
        ym_client_id=hit.ym, user_agent=user_agent[:500],
        is_bot=is_bot(user_agent, hit.webdriver), **utm,
    )
    db.session.add(visit)
    db.session.flush()
    return visit


def _existing(visit, rule):
    return db.session.scalar(
        select(Assignment)
        .where(Assignment.visit_id == visit.id, Assignment.rule_id == rule.id)
        .order_by(Assignment.id.desc())
        .limit(1)
    )


def _assign_token(site, visit, rule, now):
    """A sub-address or catch-all address unique to the visit (one per visit and rule)."""
    current = _existing(visit, rule)
    if current is not None and current.token:
        return current.address
    for _ in range(5):
        token = new_token(lambda t: db.session.scalar(
            select(Assignment.id).where(Assignment.site_id == site.id, Assignment.token == t)
        ) is not None)
        if rule.dynamic_mode == "subaddress":
            address = sub_address(rule.base_address, token)
        else:
            address = catch_all_address(rule.catchall_domain, token)
        try:
            with db.session.begin_nested():
                db.session.add(Assignment(
                    account_id=site.account_id, site_id=site.id, visit_id=visit.id,
                    rule_id=rule.id, kind=rule.dynamic_mode, address=address, token=token,
                    assigned_at=now,
                ))
            return address
        except IntegrityError:
            continue  # another request drew the same token: draw again
    raise RuntimeError("could not store a unique token")


def _record_once(site, visit, rule, kind, address, now):
    current = _existing(visit, rule)
    if current is None or current.address != address:
        db.session.add(Assignment(
            account_id=site.account_id, site_id=site.id, visit_id=visit.id, rule_id=rule.id,
            kind=kind, address=address, assigned_at=now,
        ))
    return address


def _assign_pool(site, visit, rule, now, redis):
    """Lease a pool address for the reservation time, or fall back when none is free."""
    pool = {row.id: row.address for row in rule.pool_addresses}
    if visit.is_bot or not pool:
        return _record_once(site, visit, rule, "fallback", rule.fallback_address, now)
    current = _existing(visit, rule)
    order = list(pool)
    if current is not None and current.pool_address_id in pool:
        order.remove(current.pool_address_id)
        order.insert(0, current.pool_address_id)
    ttl_ms = rule.reservation_minutes * 60_000
    now_ms = int(time.time() * 1000)
    got = leases.lease(redis, rule.id, visit.id, order, now_ms, ttl_ms)
    if got.pool_address_id is None:
        return _record_once(site, visit, rule, "fallback", rule.fallback_address, now)
    expires = now + timedelta(milliseconds=ttl_ms)
    if not got.new and current is not None and current.pool_address_id == got.pool_address_id:
        current.expires_at = expires
    else:
        db.session.add(Assignment(
            account_id=site.account_id, site_id=site.id, visit_id=visit.id, rule_id=rule.id,
            pool_address_id=got.pool_address_id, kind="pool",
            address=pool[got.pool_address_id], assigned_at=now, expires_at=expires,
        ))
    return pool[got.pool_address_id]


def _address(site, visit, rule, now, redis):
    if rule.kind == "static":
        return _record_once(site, visit, rule, "static", rule.static_address, now)
    if rule.dynamic_mode in ("subaddress", "catchall"):
        return _assign_token(site, visit, rule, now)
    return _assign_pool(site, visit, rule, now, redis)


def site_setup(site):
    """The blocks of a site and the rules that serve them, loaded in three queries."""
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
    return blocks, rules


def record_page_view(site, hit, user_agent, redis):
    """Store the page view and answer, per block, where to look and what to show."""
    now = utcnow()
    visit = _visit(site, hit, user_agent, now)
    blocks, rules = site_setup(site)
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
            by_rule[rule.id] = _address(site, visit, rule, now, redis)
        address = by_rule[rule.id]
        if not address:
            continue
        entry = {"i": block.id, "t": address}
        if block.placement == "element":
            entry["q"] = block.selector
            if block.replace_address:
                entry["f"] = [block.replace_address]
        else:
            entry["f"] = block.address_values
        answer.append(entry)
    db.session.commit()
    return {"s": visit.client_visit_id, "b": answer}


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
