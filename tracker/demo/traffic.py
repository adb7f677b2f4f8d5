"""The demo's visits: planned from a seeded random.Random, then played page view by page view.

Past days are laid out from the account's midnight today, so that they follow its
day (busy afternoons, quiet nights) and two runs on one day agree to the second; a
few visits of the last hours are laid out back from now. Either way nothing in the
plan depends on the clock, only where it lands.
"""

from bisect import bisect_left
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from tracker.demo import content
from tracker.pageviews import SiteRef, parse_hit, record_page_view

DAY_MS = 86_400_000
DAYS = 30
BOT_SHARE = 0.06
ENGLISH_SHARE = 0.15
RETURN_SHARE = 0.35
# A Yandex Direct campaign launch: more visits at once than the pool has addresses.
BURST_VISITS = 6
BURST_DAY = 9
PAGE_COUNTS = (1, 2, 3, 4, 5, 7)
PAGE_COUNT_WEIGHTS = (35, 25, 18, 12, 6, 4)


@dataclass
class Visitor:
    """A browser: its first-party id, analytics ids and language; `person` once it writes."""

    id: str
    user_agent: str
    ga: str = ""
    ym: str = ""
    lang: str = "ru"
    webdriver: bool = False
    bot: bool = False
    person: object = None


@dataclass
class PlannedVisit:
    """One visit: where it came from and when each page view happens (ms since the epoch)."""

    id: str
    visitor: Visitor
    source: content.Source | None
    pages: list  # [(ms, url, referrer)]
    category: str
    recent: bool  # laid out back from now rather than from midnight
    shown: list = field(default_factory=list)  # the address shown at each page view

    @property
    def start_ms(self):
        return self.pages[0][0]


def _id(rng):
    return f"{rng.getrandbits(96):024x}"


def day_seconds(rng):
    """A time of day in seconds, by HOUR_WEIGHTS."""
    hour = rng.choices(range(24), weights=content.HOUR_WEIGHTS)[0]
    return hour * 3600 + rng.randrange(3600)


def _gaps(rng, bot):
    """Seconds between page views, the first 0."""
    count = rng.randint(1, 3) if bot else rng.choices(PAGE_COUNTS, PAGE_COUNT_WEIGHTS)[0]
    return [0] + [rng.randint(20, 240) for _ in range(count - 1)]


def _landing(rng, source):
    """(path, query, referrer) of a visit's first page."""
    if source is None:  # a crawler: any page, nothing to say where from
        return rng.choice(list(content.PAGES)), "", ""
    if source.campaigns:
        campaign = rng.choice(source.campaigns)
        query = f"{source.utm}&utm_campaign={campaign.name}"
        term = rng.choice(campaign.terms)
        if term:
            query += f"&utm_term={quote_plus(term)}"
        if source.key == "yandex_direct":
            query += f"&utm_content=ad{rng.randint(1, 4)}"
        if source.click_id:
            query += f"&{source.click_id}={rng.getrandbits(60):x}"
        return campaign.path, query, source.referrer
    query, referrer = rng.choice(source.variants)
    path = rng.choice(list(content.PAGES))
    if source.key == "newsletter":
        path = rng.choice(("/sale/", "/catalog/sofas/"))
    return path, query, referrer


def _pages(rng, start_ms, gaps, path, query, referrer, lang):
    prefix = "/en" if lang == "en" else ""
    url = f"{content.SITE_URL}{prefix}{path}" + (f"?{query}" if query else "")
    pages, at = [(start_ms, url, referrer)], start_ms
    for gap in gaps[1:]:
        at += gap * 1000
        next_url = f"{content.SITE_URL}{prefix}{rng.choice(content.BROWSE)}"
        pages.append((at, next_url, pages[-1][1]))
    return pages


def _new_visitor(rng, bot=None):
    """A new browser: a person's (most with analytics ids), or a bot's from BOTS."""
    if bot is not None:
        user_agent, webdriver, _ads = bot
        return Visitor(_id(rng), user_agent, webdriver=webdriver, bot=True)
    visitor = Visitor(_id(rng), rng.choice(content.BROWSERS))
    visitor.lang = "en" if rng.random() < ENGLISH_SHARE else "ru"
    if rng.random() < 0.8:  # ad blockers keep the others from analytics
        number, first_seen = rng.randint(10**8, 2 * 10**9), rng.randint(16 * 10**8, 17 * 10**8)
        visitor.ga = f"GA1.2.{number}.{first_seen}"
    if rng.random() < 0.85:
        visitor.ym = str(rng.randint(10**18, 10**19))
    return visitor


def plan(rng, count, anchor_ms, now_ms):
    """`count` visits: over the DAYS days before anchor_ms (in time order; some by returning
    visitors, some by bots, a Yandex Direct burst), then a few in the hours before now_ms."""
    human_sources = content.SOURCES
    weights = [s.weight for s in human_sources]
    recent = max(2, round(count / (DAYS + 1)))
    burst = BURST_VISITS if count >= 60 else 0
    drafts = []  # (start ms, source, bot, gaps)
    for _ in range(count - recent - burst):
        start = anchor_ms - rng.randint(1, DAYS) * DAY_MS + day_seconds(rng) * 1000
        if rng.random() < BOT_SHARE:
            bot = rng.choice(content.BOTS)
            source = content.SOURCE["yandex_direct"] if bot[2] else None
            drafts.append((start, source, bot, _gaps(rng, True)))
        else:
            source = rng.choices(human_sources, weights)[0]
            drafts.append((start, source, None, _gaps(rng, False)))
    launch = anchor_ms - BURST_DAY * DAY_MS + 11 * 3_600_000
    for i in range(burst):
        drafts.append((launch + i * rng.randint(60, 240) * 1000, content.SOURCE["yandex_direct"],
                       None, [0] + [rng.randint(60, 240) for _ in range(rng.randint(2, 4))]))
    drafts.sort(key=lambda d: d[0])

    visits, seen, seen_at = [], [], []  # human visitors by their first visit's start
    for start, source, bot, gaps in drafts:
        visitor = None
        if bot is None and source.key in content.RETURN_SOURCES and rng.random() < RETURN_SHARE:
            earlier = bisect_left(seen_at, start - 3_600_000)  # back after an hour at least
            if earlier:
                visitor = seen[rng.randrange(earlier)]
        if visitor is None:
            visitor = _new_visitor(rng, bot)
            if bot is None:
                seen.append(visitor)
                seen_at.append(start)
        path, query, referrer = _landing(rng, source)
        visits.append(PlannedVisit(_id(rng), visitor, source,
                                   _pages(rng, start, gaps, path, query, referrer, visitor.lang),
                                   content.PAGES[path], recent=False))

    # The last hours: no pool traffic, so that where they land beside the past days
    # (it depends on the time of day) changes no lease.
    quiet = [s for s in human_sources if not s.pool]
    for _ in range(recent):
        source = rng.choices(quiet, [s.weight for s in quiet])[0]
        gaps = _gaps(rng, False)
        start = now_ms - (sum(gaps) + rng.randint(15 * 60, 5 * 3600)) * 1000
        visitor = _new_visitor(rng)
        path, query, referrer = _landing(rng, source)
        visits.append(PlannedVisit(_id(rng), visitor, source,
                                   _pages(rng, start, gaps, path, query, referrer, visitor.lang),
                                   content.PAGES[path], recent=True))
    return visits


def play(visits, site, redis):
    """Send every page view through record_page_view at its own time, in time order.

    Pool leases are decided by time in Redis, so page views of overlapping visits
    must arrive interleaved as they would from browsers. Fills each visit's `shown`.
    """
    ref = SiteRef(site.id, site.account_id, tuple(site.domain_names))
    views = sorted(
        ((at, n, index, visit) for n, visit in enumerate(visits)
         for index, (at, _url, _referrer) in enumerate(visit.pages)),
        key=lambda view: view[:3])
    for at, _n, index, visit in views:
        _at, url, referrer = visit.pages[index]
        hit = parse_hit({
            "v": visit.visitor.id, "s": visit.id, "u": url, "r": referrer,
            "ga": visit.visitor.ga, "ym": visit.visitor.ym, "wd": visit.visitor.webdriver,
            "n": index == 0,
        })
        answer, _woke = record_page_view(ref, hit, visit.visitor.user_agent, redis, (),
                                         now_ms=at)
        visit.shown.append(answer["b"][0]["t"] if answer["b"] else "")
