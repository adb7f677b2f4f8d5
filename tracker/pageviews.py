"""A page view from the website script: the visit, the winning rule per block, the addresses.

Answered from Redis alone (tracker.visitstate holds the visits and queues what
happened; tracker.ingest writes it to the database); the database is read only
for a site's blocks and rules, which each process keeps for a few seconds.
"""

import functools
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote_plus, urlsplit

import crawleruseragents
import orjson
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from tracker import textclean, visitstate
from tracker.extensions import db
from tracker.models import Block, Rule, Site
from tracker.models.visits import UTM_FIELDS
from tracker.segments import visit_facts, winning_rules
from tracker.tokens import catch_all_address, random_token, sub_address

# What the maintained list (crawler-user-agents, about 1,500 patterns of named crawlers)
# does not catch: any agent that calls itself a bot, crawler or spider ("SomethingBot/1.0",
# but not a "CUBOT" phone), and Yandex's and Google's page fetchers that announce
# themselves only by name.
EXTRA_BOT_AGENT = re.compile(
    r"[a-z]bot/|\bbot\b|crawl|spider|slurp|yandex(?:metrika|direct|images|favicons)|"
    r"google-pagerenderer|^lighthouse|mediapartners|httpclient|preview",
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
    first: bool = False  # the script says it has just started this visit


def _text(payload, name, limit, required=False, pattern=None):
    value = payload.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise PayloadError(f"{name} must be a string")
    value = textclean.one_line(value).strip()
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
    webdriver, first = payload.get("wd", False), payload.get("n", False)
    if not isinstance(webdriver, bool):
        raise PayloadError("wd must be true or false")
    if not isinstance(first, bool):
        raise PayloadError("n must be true or false")
    return Hit(
        visitor_id=_text(payload, "v", 64, required=True, pattern=_ID),
        visit_id=_text(payload, "s", 64, required=True, pattern=_ID),
        url=url,
        referrer=referrer,
        ga=ga_client_id(_text(payload, "ga", 200)),
        ym=_text(payload, "ym", 100, pattern=_CLIENT_ID),
        webdriver=webdriver,
        first=first,
    )


def ga_client_id(cookie):
    """The Google Analytics client id from a `_ga` cookie (GA1.2.123.456 -> 123.456)."""
    parts = cookie.split(".")
    if len(parts) >= 4 and all(p.isdigit() for p in parts[-2:]):
        return ".".join(parts[-2:])
    return ""


_UTM = re.compile(rf"(?:^|&)({'|'.join(UTM_FIELDS)})=([^&]+)")


def utm_from(url):
    """utm_* parameters of a landing URL: the first non-empty value of each, or ""."""
    utm = dict.fromkeys(UTM_FIELDS, "")
    query = urlsplit(url).query
    if "utm_" in query:  # most page views carry none
        for name, value in _UTM.findall(query):
            if not utm[name]:
                utm[name] = textclean.one_line(unquote_plus(value))[:200]
    return utm


def is_bot(user_agent, webdriver):
    """Obvious automation: a crawler's user agent, or a browser driven by WebDriver."""
    return bool(webdriver) or not user_agent or is_crawler(user_agent)


@functools.lru_cache(maxsize=4096)
def is_crawler(user_agent):
    """A user agent that the crawler-user-agents list (kept current upstream) or
    EXTRA_BOT_AGENT names. The list's 1,500 patterns take about 0.1 ms per browser
    user agent; most page views come from a few hundred browser builds, so the
    verdicts are remembered."""
    return crawleruseragents.is_crawler(user_agent) or bool(EXTRA_BOT_AGENT.search(user_agent))


@dataclass(frozen=True)
class SiteRef:
    """What a page view needs of its site: known from the site registry without a query."""

    id: int
    account_id: int
    domain_names: tuple


TOKEN_MODES = ("subaddress", "catchall")


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


def per_process(name, key, build):
    """build(), kept per process under (name, key) for SITE_SETUP_CACHE_SECONDS.

    For what every page view needs and rarely changes (changes show up that late);
    0 turns the cache off.
    """
    app = current_app._get_current_object()
    ttl = app.config["SITE_SETUP_CACHE_SECONDS"]
    if not ttl:
        return build()
    cache = app.extensions.setdefault(name, {})
    now = time.monotonic()
    entry = cache.get(key)
    if entry is None or entry[0] <= now:
        if len(cache) > 10_000:
            cache.clear()  # a bound on memory; entries are cheap to rebuild
        entry = cache[key] = (now + ttl, build())
    return entry[1]


def cached_site_setup(site):
    """site_setup(), kept per process (see per_process)."""
    return per_process("tracker.site_setups", site.id, lambda: site_setup(site))


def _new_visit(site, hit, user_agent):
    """The facts (for rule matching) and the row (for the database) of a visit's first page."""
    utm = utm_from(hit.url)
    bot = is_bot(user_agent, hit.webdriver)
    facts = visit_facts(landing_url=hit.url, referrer=hit.referrer, utm=utm,
                        own_domains=site.domain_names)
    facts["bot"] = bot
    row = dict(visitor_id=hit.visitor_id, landing_url=hit.url, referrer=hit.referrer,
               channel=facts["channel"], ga_client_id=hit.ga, ym_client_id=hit.ym,
               user_agent=user_agent[:500], is_bot=bot, **utm)
    return facts, row


def _serving(blocks, winners):
    """The winning rules of the blocks, each once, in block order."""
    return list({winners[b.id].id: winners[b.id] for b in blocks if b.id in winners}.values())


def _held(rule, current, bot):
    """The address the visit already has from the rule, if it still holds without a change."""
    if current is None:
        return None
    if rule.kind == "static":
        ok = current["k"] == "static" and current["a"] == rule.static_address
    elif bot or (rule.dynamic_mode not in TOKEN_MODES and not rule.pool_addresses):
        ok = current["k"] == "fallback" and current["a"] == rule.fallback_address
    elif rule.dynamic_mode in TOKEN_MODES:
        ok = "t" in current
    else:
        ok = False  # a lease is renewed on every page view
    return current["a"] if ok else None


def _item(rule, bot):
    """What to give the visit from the rule (see visitstate.give), or None for nothing."""
    if rule.kind == "static":
        return {"r": rule.id, "k": "static", "a": rule.static_address}
    if bot:
        # A crawler never gets an address of its own: spam sent later to a harvested
        # address would pass for a request from the crawler's visit.
        if not rule.fallback_address:
            return None
        return {"r": rule.id, "k": "fallback", "a": rule.fallback_address}
    if rule.dynamic_mode in TOKEN_MODES:
        # 49 random bits: a clash is so rare that the database's unique constraint
        # only has to notice it (tracker.ingest stores the later one without its token).
        token = random_token()
        if rule.dynamic_mode == "subaddress":
            address = sub_address(rule.base_address, token)
        else:
            address = catch_all_address(rule.catchall_domain, token)
        return {"r": rule.id, "k": rule.dynamic_mode, "a": address, "t": token}
    if not rule.pool_addresses:
        if not rule.fallback_address:
            return None
        return {"r": rule.id, "k": "fallback", "a": rule.fallback_address}
    item = {"r": rule.id, "k": "pool", "l": rule.reservation_minutes * 60_000,
            "p": [[p.id, p.address] for p in rule.pool_addresses]}
    if rule.fallback_address:
        item["f"] = rule.fallback_address
    return item


def _items(rules, facts, held):
    """Addresses the visit keeps ({rule id: address}) and items for what it must be given."""
    addresses, items = {}, []
    for rule in rules:
        address = _held(rule, held.get(rule.id), facts["bot"])
        if address is not None:
            addresses[rule.id] = address
        elif (item := _item(rule, facts["bot"])) is not None:
            items.append(item)
    return addresses, items


def record_page_view(site, hit, user_agent, redis, rates, *, now_ms=None):
    """Answer a page view from Redis alone: per block, where to look and what to show.

    The visit and the addresses it is given are queued for the database (see
    tracker.ingest). Returns (answer, woke): woke asks the caller to wake a writer.
    now_ms: the page view's time in ms since the epoch (default: now), for demo data
    made in the past. Raises visitstate.RateLimited.
    """
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    blocks, rules = cached_site_setup(site)
    state, woke = None, False
    if not hit.first:
        state, woke = visitstate.touch(redis, site.id, hit.visit_id, now_ms, rates)
    if state is None:
        # The visit's first page view (or Redis forgot the visit): facts from this page.
        facts, row = _new_visit(site, hit, user_agent)
        winners = winning_rules(rules, facts)
        _, items = _items(_serving(blocks, winners), facts, {})
        if hit.first:  # one round trip: the rate limits, and the visit unless it exists
            state, addresses, woke = visitstate.start(
                redis, site.id, hit.visit_id, now_ms, rates, row, facts, items)
        else:
            addresses, woke_now = visitstate.give(
                redis, site.id, hit.visit_id, now_ms, items, row, facts)
            woke = woke or woke_now
    if state is not None:  # a known visit: its own facts, and what it holds
        facts = orjson.loads(state.pop(b"f"))
        held = {int(field[1:]): orjson.loads(value) for field, value in state.items()}
        winners = winning_rules(rules, facts)
        addresses, items = _items(_serving(blocks, winners), facts, held)
        if items:
            given, woke_now = visitstate.give(redis, site.id, hit.visit_id, now_ms, items)
            addresses.update(given)
            woke = woke or woke_now
    answer = []
    for block in blocks:
        rule = winners.get(block.id)
        address = addresses.get(rule.id) if rule is not None else None
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
    return {"s": hit.visit_id, "b": answer}, woke


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
        address = textclean.one_line(row[1])
        if not 0 < row[0] < 2**31 or not 0 < row[2] <= 10_000 or not 0 < len(address) <= 320:
            raise PayloadError("an entry of d is out of range")
        out.append((row[0], address, row[2]))
    return visit_id, out


def record_displays(site, visit_id, rows, redis, rates):
    """Queue what the script displayed, for blocks of the site and a visit Redis knows.

    Returns (entries accepted, woke). Raises visitstate.RateLimited.
    """
    blocks, _rules = cached_site_setup(site)
    known = {block.id for block in blocks}
    rows = [list(row) for row in rows if row[0] in known]
    queued, woke = visitstate.report_displays(
        redis, site.id, visit_id, int(time.time() * 1000), rows, rates)
    return (len(rows) if queued else 0), woke
