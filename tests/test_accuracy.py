"""Accuracy end to end: 300 concurrent visitors from five sources write to what they were shown.

Page views go through the real API over HTTP (many at once), emails through Dovecot, and
a real `rq worker` process writes the page views, syncs the mailbox and attributes. Every
email has a known right answer (the rule, and the visit or none); the test asserts that
each one is right, or right and marked uncertain where the evidence is a guess, and that
none is wrong without a mark. The hard cases ride along: headers in the worst order, the
mailbox's own address also a rule's, pool addresses written to after the lease ended,
replies to the plain address, repeats, bots, spam to a bot's old token.
"""

import json
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.request import Request, urlopen

import pytest
from sqlalchemy import func, select

from tests.test_sync import box, imap_settings, now  # noqa: F401  (fixtures)
from tracker import pageviews
from tracker.extensions import db
from tracker.jobs.sync import enqueue_sync
from tracker.models import Assignment, Email, Visit

pytestmark = pytest.mark.usefixtures("imap_settings", "crowd_limits")


@pytest.fixture
def crowd_limits(app_config):
    """Every visitor of this test comes from 127.0.0.1: lift the per-address API limit."""
    app_config["API_RATE_PER_IP"] = "100000 per minute"

ORIGIN = "https://shop.example"
PERSON = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
CRAWLERS = ["Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "python-requests/2.31.0"]
# (source, how many people, landing query, referrer). "early" visitors came three hours
# ago (their 30-minute pool leases have ended when they write); the rest come at once.
SOURCES = [
    ("google", 70, "?utm_source=google&utm_medium=cpc&utm_campaign=brand", "https://www.google.com/"),
    ("social", 55, "", "https://vk.com/feed"),
    ("early", 12, "?utm_source=newsletter&utm_medium=email", ""),
    ("newsletter", 25, "?utm_source=newsletter&utm_medium=email", ""),
    ("promo", 20, "?utm_source=promo", ""),
    ("yandex", 50, "?utm_source=yandex&utm_medium=cpc", "https://yandex.ru/search/"),
    ("direct", 58, "", ""),
]
BOTS = 10
POOL_SIZE = 40  # newsletter: room for everyone, so no address is leased twice
PROMO_POOL = 5  # promo: too small, most get the fallback address


class ShiftedClock:
    """tracker.pageviews' clock, moved back: page views that happened hours ago."""

    def __init__(self, by):
        self.by = by.total_seconds()

    def time(self):
        return time.time() - self.by

    def monotonic(self):
        return time.monotonic()


@dataclass
class Visitor:
    n: int
    source: str
    query: str
    referrer: str
    agent: str = PERSON
    visit: str = ""
    shown: str | None = None
    pages: int = 1


@dataclass
class Expected:
    """The right answer for one email, by Message-ID."""

    rule_id: int | None
    visit: str | None  # the client visit id, None when no visit can be known
    uncertain: str | None = None
    counted: bool = True
    case: str = ""
    extra: dict = field(default_factory=dict)


def page_view(base, site_key, visitor, page, first):
    body = {"k": site_key, "v": f"visitor-{visitor.n:05d}", "s": visitor.visit,
            "u": f"https://shop.example/{'contacts' if page else ''}{visitor.query if not page else ''}",
            "r": visitor.referrer if not page else "https://shop.example/", "n": first}
    request = Request(f"{base}/api/v1/hit", data=json.dumps(body).encode(), method="POST",
                      headers={"Content-Type": "text/plain", "Origin": ORIGIN,
                               "User-Agent": visitor.agent})
    with urlopen(request, timeout=30) as answer:
        return json.load(answer)


def visit_site(base, site_key, visitor):
    """The visitor's page views, one after another, as a browser would send them."""
    shown = None
    for page in range(visitor.pages):
        answer = page_view(base, site_key, visitor, page, first=page == 0)
        addresses = {entry["t"] for entry in answer["b"]}
        assert len(addresses) <= 1, answer
        address = addresses.pop() if addresses else None
        assert shown is None or address == shown, (visitor, shown, address)
        shown = address
    visitor.shown = shown
    return visitor


def message(to, sender, message_id, *, subject="Заявка", headers=()):
    lines = [f"From: Client <{sender}>", *headers, f"To: {to}", f"Subject: {subject}",
             f"Message-ID: <{message_id}>"]
    return ("\r\n".join(lines) + "\r\n\r\nHello\r\n").encode()


def run_worker(app, dovecot, worker_env, tmp_path):
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", IMAP_ALLOWED_PORTS=str(dovecot.tls_port),
                     IMAP_CA_FILE=str(dovecot.ca_path))
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--worker-class",
         "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"], app.config["RQ_QUEUE"]],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_email_of_300_concurrent_visitors_is_right_or_marked(
        app, ctx, factory, user, box, live_server, dovecot, worker_env, tmp_path, monkeypatch):
    rng = random.Random(20261129)
    account = user.account
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    own = box.login  # the mailbox's own address: also the static address for everyone
    local, domain = own.split("@")
    newsletter = factory.rule(account, name="Newsletter", blocks=[block], mode="pool",
                              pool=[f"p{i:02d}@shop.example" for i in range(POOL_SIZE)],
                              reservation_minutes=30, fallback_address="all-taken@shop.example",
                              conditions=[("utm_source", "equals", "newsletter")])
    rules = {
        "google": factory.rule(account, name="Google", blocks=[block], mode="subaddress",
                               base_address=own, fallback_address=f"robots@{domain}",
                               conditions=[("utm_source", "equals", "google")]),
        "social": factory.rule(account, name="Social", blocks=[block], mode="catchall",
                               catchall_domain="in.shop.example",
                               conditions=[("channel", "equals", "social")]),
        "early": newsletter,
        "newsletter": newsletter,
        "promo": factory.rule(account, name="Promo", blocks=[block], mode="pool",
                              pool=[f"promo{i}@shop.example" for i in range(PROMO_POOL)],
                              reservation_minutes=30, fallback_address="promo@shop.example",
                              conditions=[("utm_source", "equals", "promo")]),
        "yandex": factory.rule(account, name="Yandex", blocks=[block],
                               address="yandex@shop.example",
                               conditions=[("utm_source", "equals", "yandex")]),
        "direct": factory.rule(account, name="Everyone", blocks=[block], address=own),
    }

    visitors = []
    for source, count, query, referrer in SOURCES:
        visitors += [Visitor(0, source, query, referrer, pages=rng.randint(1, 3))
                     for _ in range(count)]
    for n in range(BOTS):
        source, _count, query, referrer = SOURCES[n % len(SOURCES)]
        visitors.append(Visitor(0, source, query, referrer, agent=CRAWLERS[n % len(CRAWLERS)]))
    rng.shuffle(visitors)
    for n, visitor in enumerate(visitors, 1):
        visitor.n, visitor.visit = n, f"visit-{n:05d}-{uuid.uuid4().hex[:8]}"
    early = [v for v in visitors if v.source == "early" and v.agent == PERSON]
    crowd = [v for v in visitors if v not in early]

    key = site.key
    with monkeypatch.context() as clock:
        clock.setattr(pageviews, "time", ShiftedClock(timedelta(hours=3)))
        for visitor in early:
            visit_site(live_server.url, key, visitor)
    with ThreadPoolExecutor(max_workers=24) as pool:
        list(pool.map(lambda v: visit_site(live_server.url, key, v), crowd))

    people = [v for v in visitors if v.agent == PERSON]
    bots = [v for v in visitors if v.agent != PERSON]
    # What each was shown: people a token, a pool address or the static address of their
    # source; bots never an address of their own.
    pooled = {"early", "newsletter", "promo"}
    leased = {v.n: v.shown for v in people
              if v.source in pooled and v.shown not in ("all-taken@shop.example",
                                                        "promo@shop.example")}
    assert len(leased) == len(early) + 25 + PROMO_POOL
    # No address held by two visitors, and the crowd never got an address the early
    # visitors had held: free addresses idle longest go first.
    assert len(set(leased.values())) == len(leased)
    assert all(v.shown and v.shown.startswith(local + "+") for v in people if v.source == "google")
    assert all(v.shown.endswith("@in.shop.example") for v in people if v.source == "social")
    assert {v.shown for v in bots} <= {f"robots@{domain}", "all-taken@shop.example",
                                       "promo@shop.example", "yandex@shop.example", own, None}

    expected = {}
    messages = []  # (bytes, internaldate)

    def send(to, sender, expect, *, headers=(), subject="Заявка"):
        message_id = f"{uuid.uuid4().hex}@clients.example"
        messages.append(message(to, sender, message_id, subject=subject, headers=headers))
        expected[message_id] = expect
        return message_id

    firsts, first_headers = {}, {}
    for i, v in enumerate(people):
        sender = f"client{v.n}@clients.example"
        rule_id = rules[v.source].id
        if v.source == "early":
            # Written after the lease ended; nobody has held the address since: the visit
            # is the most plausible one, and the attribution says it is a guess.
            firsts[v.n] = send(v.shown, sender, Expected(rule_id, v.visit, "lease_ended",
                                                         case="pool, after the lease"))
            continue
        if v.source in pooled and v.n not in leased:
            # The pool was full: the fallback address names the rule, no visit.
            firsts[v.n] = send(v.shown, sender, Expected(rule_id, None, case="pool full"))
            continue
        visit = v.visit if v.source in ("google", "social") or v.n in leased else None
        headers = ()
        if visit and i % 4 == 0:
            # The worst header order: the mailbox's own address (the static address for
            # everyone) comes first, in Delivered-To.
            headers = (f"Delivered-To: {own}",)
        elif visit and i % 4 == 1:
            headers = ("Cc: yandex@shop.example",)  # another rule's static address in Cc
        case = "header order" if headers else v.source
        firsts[v.n] = send(v.shown, sender, Expected(rule_id, visit, case=case), headers=headers)
        first_headers[v.n] = headers

    later = len(messages)
    # Repeats: ten people write again to the same address (delivered the same way).
    for v in people[:10]:
        first = expected[firsts[v.n]]
        send(v.shown, f"client{v.n}@clients.example",
             Expected(first.rule_id, first.visit, first.uncertain, counted=False, case="repeat"),
             headers=first_headers.get(v.n, ()))
    # Replies to the plain address, in the thread of the first email, from a new address.
    for v in people[10:25]:
        first = expected[firsts[v.n]]
        send(own, f"other{v.n}@clients.example",
             Expected(first.rule_id, first.visit, first.uncertain, counted=False, case="reply"),
             subject="Re: Заявка", headers=(f"In-Reply-To: <{firsts[v.n]}>",
                                           f"References: <{firsts[v.n]}>"))
    # Strangers to the plain address: the rule for everyone, no visit.
    for n in range(5):
        send(own, f"stranger{n}@elsewhere.example",
             Expected(rules["direct"].id, None, case="plain address"))
    # Spam to what the bots were shown: the rule's fallback, never a bot's visit.
    for v in bots:
        if v.shown == f"robots@{domain}":
            send(v.shown, f"spam{v.n}@spam.example",
                 Expected(rules["google"].id, None, case="bot fallback"))

    with dovecot.client(box.login) as imap:
        for raw in messages[:later]:
            imap.append("INBOX", raw)
        # Repeats and replies come at least a second after the emails they follow (the
        # same second would leave which came first to the Message-IDs' order).
        time.sleep(1.1)
        for raw in messages[later:]:
            imap.append("INBOX", raw)
    enqueue_sync(box.id, trigger="manual")
    run_worker(app, dovecot, worker_env, tmp_path)

    db.session.expire_all()
    visits = dict(db.session.execute(select(Visit.id, Visit.client_visit_id)).all())
    by_client = {client: visit_id for visit_id, client in visits.items()}
    assert set(by_client) == {v.visit for v in visitors}, "page views not written"
    assert db.session.scalar(select(func.count()).select_from(Visit)
                             .where(Visit.is_bot.is_(True))) == BOTS

    # A token a crawler was given before crawlers stopped getting them: spam to it is kept,
    # marked, never counted.
    crawler = next(v for v in bots if v.source == "google")
    token = f"{local}+oldbot{crawler.n}@{domain}"
    db.session.add(Assignment(account_id=account.id, site_id=site.id,
                              visit_id=by_client[crawler.visit], rule_id=rules["google"].id,
                              address=token, kind="subaddress", token=f"oldbot{crawler.n}",
                              assigned_at=(now() - timedelta(days=1)).replace(tzinfo=None)))
    db.session.commit()
    spam_id = f"{uuid.uuid4().hex}@spam.example"
    box.deliver(message(token, "harvester@spam.example", spam_id))
    expected[spam_id] = Expected(rules["google"].id, crawler.visit, "bot_visit", counted=False,
                                 case="a bot's old token")
    enqueue_sync(box.id, trigger="manual")
    run_worker(app, dovecot, worker_env, tmp_path)

    db.session.expire_all()
    stored = {e.message_id: e for e in db.session.scalars(select(Email))}
    assert len(stored) == len(expected) == len(messages) + 1
    outcome, wrong = Counter(), []
    for message_id, want in expected.items():
        email = stored[message_id]
        got = (email.rule_id, visits.get(email.visit_id))
        if got != (want.rule_id, want.visit):
            outcome["wrong, marked" if email.uncertain else "wrong"] += 1
            wrong.append((want.case, email.tracked_address, got, (want.rule_id, want.visit)))
            continue
        outcome["right, marked" if email.uncertain else "right"] += 1
        assert (email.uncertain, email.counted) == (want.uncertain, want.counted), (
            want.case, email.tracked_address, email.internaldate, db.session.execute(
                select(Assignment.visit_id, Assignment.assigned_at, Assignment.expires_at)
                .where(Assignment.address == email.tracked_address)).all())
    print(f"\n{len(expected)} emails from {len(visitors)} visitors: {dict(outcome)}; "
          f"cases: {dict(Counter(want.case for want in expected.values()))}")
    assert wrong == []
