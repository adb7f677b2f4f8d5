"""Benchmark: the reports on a big account — list pages, detail, dashboard and exports.

Seeds ONE account of a fresh SQLite database with N emails and M visits (default
1,000,000 and 300,000: a year of data, 6 channels, a few hundred utm_sources, about
half counted as new requests, about 60 % tracked, subjects from a few hundred
templates, Russian and English), then measures in the same run:

1. server time of report pages, in-process with the Flask test client, signed in
   (time.perf_counter around client.get, the whole request including rendering),
   RUNS times each, the pages taking turns so that load on the machine hits them
   alike: the emails page (first page; a keyset page about half-way down, i.e.
   ~500,000 rows deep; a channel + period filter; a text search found in recent
   emails; a text search that matches nothing and so reads every row), an email's
   detail and the 30-day dashboard. Beside each page, its emails query alone
   (tracker.reports.emails.filtered + page, no HTTP, no template), and two baselines
   of the same run: a bare `SELECT ... LIMIT 50` on the same database through the
   sqlite3 driver, and the app's `/sites` page (sign-in, session, layout).
   Goals: p95 <= 150 ms for list and detail pages, <= 300 ms for the dashboard.
2. the CSV and XLSX exports of ~100,000 rows (a custom period) and of all rows,
   each in a child process of its own (a fresh interpreter that builds the app,
   signs in and reads the streamed download to the end, throwing it away): rows per
   second from the request to the last byte, and the child's peak RSS
   (VmHWM in /proc/self/status, the high-water mark of its resident memory, reset
   just before the request) against its RSS just before the request. Goals: memory flat (<= 150 MB) whatever the row count,
   >= 50,000 rows/s for CSV. The XLSX stops at Excel's 1,048,576 rows.

Usage:

    .venv/bin/python bench/reports_bench.py [--emails 1000000] [--visits 300000] [--runs 40]
        [--db PATH] [--analyze] [--no-pages] [--no-exports] [--no-write]

--db keeps the seeded database at PATH and reuses it when it already holds the asked
counts (seeding 1M emails takes a minute or two). --analyze runs SQLite's ANALYZE
after seeding (the app itself never does, so the default measures without it).
The figures replace the "reports" section of docs/benchmarks.md unless --no-write
(or when the run is smaller than 1,000,000 emails).
"""

import argparse
import bisect
import contextlib
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- reports_bench:start -->", "<!-- reports_bench:end -->"
LOGIN, PASSWORD = "bench@reports.example", "bench password for reports"
TIMEZONE = "Europe/Moscow"
SECRET = "bench-secret-key-of-some-length"
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
# Pages: (label, goal in ms for p95)
LIST_GOAL, DASHBOARD_GOAL = 150, 300

# ------------------------------------------------------------------ realistic data

CHANNELS = [("paid", 35), ("organic", 25), ("direct", 15), ("social", 10), ("referral", 8),
            ("email", 7)]
PAID_SOURCES = ["google", "yandex", "vk", "mytarget", "facebook", "telegram", "avito", "bing",
                "tiktok", "dzen"]
SOCIAL_SOURCES = ["vk", "telegram", "ok", "facebook", "instagram", "youtube", "dzen", "pikabu"]
EMAIL_SOURCES = ["newsletter", "unisender", "sendpulse", "mailchimp", "dashamail"]
# A few hundred partners and sites that link with utm tags: a long tail.
PARTNERS = [f"partner-{n:03d}" for n in range(320)]
MEDIUM = {"paid": ["cpc", "cpm", "display", "retargeting"], "social": ["social", "smm", "post"],
          "email": ["email", "newsletter"], "referral": ["referral", "partner", "affiliate"]}
CAMPAIGNS = [f"{season}_{product}_{year}" for season in ("spring", "summer", "autumn", "winter",
                                                           "black_friday", "весна", "распродажа")
             for product in ("sofas", "beds", "tables", "chairs", "kitchens", "brand", "retarget")
             for year in (2025, 2026)]
TERMS = ["купить диван", "диван недорого", "кровать с матрасом", "buy sofa", "кухня на заказ",
         "стол обеденный", "price list furniture", "мебель оптом", "", "", ""]
REFERRERS = {"organic": ["https://www.google.com/", "https://yandex.ru/", "https://ya.ru/",
                         "https://www.bing.com/", "https://duckduckgo.com/"],
             "social": ["https://vk.com/", "https://t.me/", "https://ok.ru/",
                        "https://www.youtube.com/"],
             "referral": ["https://blog.example.org/best-sofas", "https://market.example.com/",
                          "https://forum.example.net/t/123"],
             "email": ["https://mail.yandex.ru/", "https://e.mail.ru/", ""],
             "paid": ["https://www.google.com/", "https://yandex.ru/", ""],
             "direct": [""]}
PAGES = ["/", "/catalog/sofas", "/catalog/beds", "/catalog/kitchens?color=white", "/contacts",
         "/delivery", "/sale", "/product/12345", "/product/777", "/about", "/опт"]
NAMES = ["Иван Петров", "Мария Смирнова", "Ольга", "Алексей Иванов", "ООО «Ромашка»",
         "John Smith", "Renée Dubois", "Li Wei", "Анна К.", "Sales Dept", "", "", ""]
DOMAINS = ["gmail.com", "yandex.ru", "mail.ru", "bk.ru", "inbox.ru", "outlook.com", "ya.ru",
           "icloud.com", "rambler.ru", "corp.example", "company.example.org", "firm.example.ru"]
SUBJECT_BODIES = [
    "Заявка с сайта", "Вопрос по заказу №{n}", "Request for a quote", "Доставка в {city}",
    "Прайс-лист, пожалуйста", "Please send the price list", "Запрос прайс-листа", "price list",
    "Счёт на оплату", "Invoice {n}", "Коммерческое предложение", "Сколько стоит диван {model}?",
    "Order {n}", "Заказ №{n}", "Партнёрство", "Partnership proposal", "Возврат товара",
    "Гарантия на {model}", "Оптовые цены", "Wholesale price list", "Когда будет в наличии {model}?",
    "Скидка для юрлиц", "Размеры {model}", "Договор поставки", "Сроки изготовления",
    "Кухня по индивидуальному проекту", "Консультация дизайнера", "Рекламация по заказу {n}",
    "Tender documents", "Meeting request", "Обратный звонок", "Доставка и сборка",
]
CITIES = ["Казань", "Москва", "Санкт-Петербург", "Новосибирск", "Екатеринбург", "Sochi"]
MODELS = ["Честер", "Оскар", "Milano", "Nordic", "Лофт", "Бостон", "Verona"]
SUBJECT_PREFIXES = ["", "", "", "Re: ", "RE: ", "Fwd: ", "Ответ: "]
UNTRACKED = ["info@shop.example", "office@shop.example", "zakaz@shop.example"]
USER_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0 Safari/537.36")


def weighted(rnd, pairs):
    return rnd.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def zipf_pick(rnd, items, skew=1.1):
    """An item of a long-tailed distribution: the first ones are picked far more often."""
    return items[min(int(rnd.paretovariate(skew)) - 1, len(items) - 1)]


def subject_templates(rnd):
    """A few hundred subject templates, Russian and English, some asking for a price list."""
    templates = []
    for body in SUBJECT_BODIES:
        for prefix in SUBJECT_PREFIXES:
            templates.append(prefix + body)
    rnd.shuffle(templates)
    return templates


def stamp(at):
    """The text SQLAlchemy stores for a DateTime on SQLite."""
    return at.isoformat(" ", "microseconds")


def visit_source(rnd, channel):
    """(utm_source, medium, campaign, content, term, landing, referrer) for a channel."""
    utm_source = medium = campaign = content = term = ""
    if channel == "paid":
        utm_source = zipf_pick(rnd, PAID_SOURCES + PARTNERS[:40], 1.3)
        medium, campaign = rnd.choice(MEDIUM["paid"]), rnd.choice(CAMPAIGNS)
        content, term = f"ad-{rnd.randrange(60)}", rnd.choice(TERMS)
    elif channel == "social":
        utm_source = rnd.choice(SOCIAL_SOURCES) if rnd.random() < 0.7 else ""
        medium = rnd.choice(MEDIUM["social"]) if utm_source else ""
        campaign = rnd.choice(CAMPAIGNS) if utm_source else ""
    elif channel == "email":
        utm_source, medium = rnd.choice(EMAIL_SOURCES), rnd.choice(MEDIUM["email"])
        campaign = f"digest-{rnd.randrange(52)}"
    elif channel == "referral":
        utm_source = zipf_pick(rnd, PARTNERS, 1.05) if rnd.random() < 0.8 else ""
        medium = rnd.choice(MEDIUM["referral"]) if utm_source else ""
    page = rnd.choice(PAGES)
    query = "&".join(f"{k}={v}" for k, v in (("utm_source", utm_source), ("utm_medium", medium),
                                              ("utm_campaign", campaign)) if v)
    landing = f"https://shop.example{page}" + (("&" if "?" in page else "?") + query if query
                                                else "")
    return (utm_source, medium, campaign, content, term, landing,
            rnd.choice(REFERRERS[channel]))


# ------------------------------------------------------------------ seeding


def make_app(db_path, redis_url, workdir):
    from tracker import create_app

    return create_app({
        "TESTING": True, "INSTANCE_PATH": str(workdir / "instance"),
        "DATABASE_URL": f"sqlite:///{db_path}", "REDIS_URL": redis_url, "SECRET_KEY": SECRET,
    })


def seed(app, db_path, emails, visits, analyze):
    """The account and its setup through the models; visits and emails by bulk INSERTs."""
    from tests.factories import Factory
    from tracker.extensions import db
    from tracker.models import Email
    from tracker.models.emails import search_text

    started = time.perf_counter()
    with app.app_context():
        db.create_all()
        factory = Factory(password=PASSWORD)
        account = factory.account("Bench furniture")
        account.timezone = TIMEZONE
        db.session.commit()
        factory.user(account, email=LOGIN)
        sites = [factory.site(account, name=name, domains=[domain]) for name, domain in
                 (("Shop", "shop.example"), ("Opt", "opt.shop.example"))]
        mailboxes = [factory.mailbox(account, credential=factory.credential(account, login=login))
                     for login in ("sales@shop.example", "opt@shop.example",
                                   "info@shop.example")]
        block = factory.block(account, sites=sites, addresses=["sales@shop.example"])
        static_rules = []
        for n, (channel, source) in enumerate([("paid", "google"), ("paid", "yandex"),
                                               ("organic", ""), ("social", "vk"),
                                               ("email", "newsletter"), ("referral", ""),
                                               ("direct", ""), ("paid", "vk")]):
            rule = factory.rule(account, name=f"{channel.title()} {source}".strip(),
                                blocks=[block], address=f"static{n}@shop.example",
                                conditions=[("channel", "equals", channel)])
            static_rules.append((rule.id, rule.static_address, channel, source))
        dynamic = factory.rule(account, name="Каждому посетителю свой адрес", blocks=[block],
                               mode="subaddress", base_address="sales@shop.example")
        pool = factory.rule(account, name="Pool", blocks=[block], mode="pool",
                            pool=[f"p{n}@shop.example" for n in range(20)],
                            fallback_address="sales@shop.example")
        ids = {"account": account.id, "sites": [s.id for s in sites],
               "mailboxes": [m.id for m in mailboxes], "static": static_rules,
               "dynamic": dynamic.id, "pool": pool.id,
               "pool_addresses": [row.id for row in pool.pool_addresses]}
        email_indexes = list(Email.__table__.indexes)
        db.session.remove()
        db.engine.dispose()

    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("PRAGMA cache_size=-400000")
    # Indexes are built once after the rows are in: much faster than row by row.
    for index in email_indexes:
        connection.execute(f"DROP INDEX IF EXISTS {index.name}")
    rnd = random.Random(20261129)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    year_ago = now - timedelta(days=365)
    span = (now - year_ago).total_seconds() - 120

    # Visits: a year of them, in time order (ids grow with time, as the writer stores them),
    # each given one dynamic address: a sub-address token (3 in 4) or a pool lease.
    visit_times = sorted(year_ago + timedelta(seconds=rnd.random() * span) for _ in range(visits))
    visit_facts = []  # (site, channel, utm..., ga, ym, kind, address) per visit, for the emails
    rows, leases = [], []
    created = stamp(now)
    connection.execute("BEGIN")
    for n, at in enumerate(visit_times, start=1):
        channel = weighted(rnd, CHANNELS)
        fields = visit_source(rnd, channel)
        ga = f"GA1.1.{rnd.randrange(10**9)}.{int(at.timestamp())}" if rnd.random() < 0.8 else ""
        ym = str(rnd.randrange(10**18, 10**19)) if rnd.random() < 0.7 else ""
        site_id = ids["sites"][0] if rnd.random() < 0.85 else ids["sites"][1]
        last_seen = at + timedelta(seconds=rnd.randrange(1800))
        if rnd.random() < 0.75:
            token = f"t{n:07x}"
            kind, address, pool_id, expires = "subaddress", f"sales+{token}@shop.example", \
                None, None
        else:
            slot = rnd.randrange(len(ids["pool_addresses"]))
            token, kind, address = None, "pool", f"p{slot}@shop.example"
            pool_id, expires = ids["pool_addresses"][slot], stamp(last_seen + timedelta(minutes=30))
        visit_facts.append((site_id, channel, *fields, ga, ym, kind, address))
        rows.append((n, ids["account"], created, site_id, f"visitor-{rnd.randrange(visits):07d}",
                     f"visit-{n:08d}", stamp(at), stamp(last_seen), fields[5], fields[6],
                     *fields[:5], channel, ga, ym, USER_AGENT, 0, 1 + int(rnd.paretovariate(1.5))))
        leases.append((n, ids["account"], created, site_id, n,
                       ids["dynamic"] if kind == "subaddress" else ids["pool"], pool_id, kind,
                       address, token, stamp(at), expires))
        if len(rows) == 20000:
            _insert_visits(connection, rows, leases)
            rows, leases = [], []
    _insert_visits(connection, rows, leases)
    connection.execute("COMMIT")

    templates = subject_templates(rnd)
    senders = [f"client{n}@{rnd.choice(DOMAINS)}" for n in range(150000)]
    sender_names = [rnd.choice(NAMES) for _ in senders]
    email_times = sorted(year_ago + timedelta(seconds=rnd.random() * span) for _ in range(emails))
    uids = dict.fromkeys(ids["mailboxes"], 0)
    rows = []
    connection.execute("BEGIN")
    for n, at in enumerate(email_times, start=1):
        mailbox = rnd.choices(ids["mailboxes"], weights=(70, 20, 10))[0]
        uids[mailbox] += 1
        # Most senders write a few times; the busiest about 2,600 times in the year.
        sender_n = int(len(senders) * rnd.random() ** 2)
        sender, name = senders[sender_n], sender_names[sender_n]
        subject = templates[min(int(rnd.paretovariate(0.8)) - 1, len(templates) - 1)].format(
            n=rnd.randrange(100000), city=rnd.choice(CITIES), model=rnd.choice(MODELS))
        rule_id = visit_id = tracked = kind = source = channel = utm_source = site_id = None
        if rnd.random() < 0.6:
            roll = rnd.random()
            if roll < 0.6:  # a dynamic address: a recent visit that held it
                index = bisect.bisect_right(visit_times, at) - 1 - rnd.randrange(50)
                if index >= 0:
                    facts = visit_facts[index]
                    visit_id, site_id, channel = index + 1, facts[0], facts[1]
                    keys = ("utm_source", "utm_medium", "utm_campaign", "utm_content",
                            "utm_term", "landing_url", "referrer", "ga_client_id",
                            "ym_client_id")
                    source = {"channel": channel, **dict(zip(keys, facts[2:11], strict=True))}
                    utm_source = facts[2] or None
                    kind, tracked = facts[11], facts[12]
                    rule_id = ids["dynamic"] if kind == "subaddress" else ids["pool"]
            if rule_id is None and roll < 0.95:  # a static address: its rule's source
                rule_id, tracked, channel, utm = rnd.choice(ids["static"])
                kind, site_id = "static", ids["sites"][0]
                source = {"channel": channel, "utm_source": utm}
                utm_source = utm or None
            elif rule_id is None:
                rule_id, kind, tracked = ids["pool"], "fallback", "sales@shop.example"
                channel, source = "direct", {"channel": "direct"}
        recipient = tracked or rnd.choice(UNTRACKED)
        rows.append((
            n, ids["account"], created, mailbox, "INBOX", 1, uids[mailbox],
            f"<{n}.{rnd.randrange(10**9)}@mail.example>", f"<{n}@mail.example>", stamp(at),
            stamp(at - timedelta(seconds=rnd.randrange(5, 120))), sender, name,
            json.dumps([recipient]), json.dumps([["To", recipient]]), recipient, subject,
            rnd.randrange(2000, 80000), int(rnd.random() < 0.5), rule_id, visit_id, tracked,
            kind, json.dumps(source) if source is not None else None, channel, utm_source,
            site_id, search_text(subject, name, sender)))
        if len(rows) == 20000:
            _insert_emails(connection, rows)
            rows = []
    _insert_emails(connection, rows)
    connection.execute("COMMIT")
    inserted = time.perf_counter() - started
    for index in email_indexes:
        columns = ", ".join(column.name for column in index.columns)
        connection.execute(f"CREATE INDEX {index.name} ON email ({columns})")
    if analyze:
        connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return {"seconds": time.perf_counter() - started, "insert_seconds": inserted}


def _insert_visits(connection, rows, leases):
    connection.executemany(
        "INSERT INTO visit (id, account_id, created_at, site_id, visitor_id, client_visit_id, "
        "started_at, last_seen_at, landing_url, referrer, utm_source, utm_medium, utm_campaign, "
        "utm_content, utm_term, channel, ga_client_id, ym_client_id, user_agent, is_bot, "
        "page_views) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows)
    connection.executemany(
        "INSERT INTO assignment (id, account_id, created_at, site_id, visit_id, rule_id, "
        "pool_address_id, kind, address, token, assigned_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", leases)


def _insert_emails(connection, rows):
    connection.executemany(
        "INSERT INTO email (id, account_id, created_at, mailbox_id, folder, uidvalidity, uid, "
        "message_id, fingerprint, internaldate, date_header, from_address, from_name, "
        "recipients, recipient_fields, recipient, subject, size, counted, rule_id, visit_id, "
        "tracked_address, attribution, source, channel, utm_source, site_id, search_text) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?)",
        rows)


def counts(db_path):
    if not Path(db_path).exists():
        return None
    try:
        connection = sqlite3.connect(db_path)
        found = (connection.execute("SELECT count(*) FROM email").fetchone()[0],
                 connection.execute("SELECT count(*) FROM visit").fetchone()[0])
        connection.close()
        return found
    except sqlite3.Error:
        return None


# ------------------------------------------------------------------ measuring pages


def login(client):
    page = client.get("/login").get_data(as_text=True)
    token = CSRF.search(page)
    response = client.post("/login", data={"email": LOGIN, "password": PASSWORD,
                                           "csrf_token": token.group(1) if token else ""})
    if response.status_code != 302:
        raise SystemExit(f"sign-in failed: {response.status_code}")


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]


def cursor_at(connection, account_id, offset):
    """The keyset cursor of the email `offset` rows down the newest-first list."""
    at, email_id = connection.execute(
        "SELECT internaldate, id FROM email WHERE account_id = ? "
        "ORDER BY internaldate DESC, id DESC LIMIT 1 OFFSET ?", (account_id, offset)).fetchone()
    return f"{datetime.fromisoformat(at):%Y%m%d%H%M%S%f}.{email_id}"


def measure_pages(app, db_path, runs):
    """p50/p95 of each page (and of its emails query alone) over `runs` turns."""
    from werkzeug.datastructures import MultiDict

    from tracker.extensions import db
    from tracker.reports import emails as report

    raw = sqlite3.connect(db_path)
    account_id = raw.execute("SELECT id FROM account WHERE name = 'Bench furniture'").fetchone()[0]
    total = raw.execute("SELECT count(*) FROM email WHERE account_id = ?",
                        (account_id,)).fetchone()[0]
    deep = cursor_at(raw, account_id, total // 2)
    detail_id = raw.execute(
        "SELECT id FROM email WHERE account_id = ? AND attribution = 'pool' "
        "ORDER BY internaldate DESC LIMIT 1 OFFSET 1000", (account_id,)).fetchone()[0]
    busiest, their_count = raw.execute(
        "SELECT from_address, count(*) FROM email WHERE account_id = ? GROUP BY from_address "
        "ORDER BY 2 DESC LIMIT 1", (account_id,)).fetchone()
    busiest_id = raw.execute(
        "SELECT id FROM email WHERE account_id = ? AND from_address = ? "
        "ORDER BY internaldate DESC LIMIT 1", (account_id, busiest)).fetchone()[0]
    bare_sql = ("SELECT id, internaldate, from_address, from_name, subject, counted, channel, "
                "utm_source, source, rule_id, visit_id, mailbox_id FROM email "
                "WHERE account_id = ? ORDER BY internaldate DESC, id DESC LIMIT 50")
    tz = ZoneInfo(TIMEZONE)

    pages = [  # (label, url, emails-query args or None, goal ms)
        ("emails, first page", "/emails", {}, LIST_GOAL),
        (f"emails, keyset page {total // 2:,} rows deep", f"/emails?before={deep}",
         {"before": deep}, LIST_GOAL),
        ("emails, channel=paid & period=30d", "/emails?channel=paid&period=30d",
         {"channel": "paid", "period": "30d"}, LIST_GOAL),
        ('emails, search q="price list"', "/emails?q=%22price+list%22",
         {"q": '"price list"'}, LIST_GOAL),
        ("emails, search that matches nothing (reads every row)", "/emails?q=zzzqqq",
         {"q": "zzzqqq"}, None),
        ("email detail (a pool lease, 1,000 emails down)", f"/emails/{detail_id}", None,
         LIST_GOAL),
        (f"email detail, latest of the busiest sender ({their_count:,} emails)",
         f"/emails/{busiest_id}", None, LIST_GOAL),
        ("dashboard, 30 days", "/", None, DASHBOARD_GOAL),
        ("baseline: /sites page", "/sites/", None, None),
    ]
    client = app.test_client()
    login(client)
    times = {label: [] for label, *_ in pages}
    query_times = {label: [] for label, _url, args, _goal in pages if args is not None}
    bare = []
    status = {}
    for label, url, _args, _goal in pages:  # warm-up, and which pages exist yet
        try:
            status[label] = client.get(url).status_code
            client.get(url)
        except Exception as exc:  # a page being written by someone else
            status[label] = f"error: {type(exc).__name__}: {exc}"[:120]
    live = [page for page in pages if status[page[0]] == 200]

    def run_query(args, before):
        with app.app_context():
            filters = report.Filters.from_args(MultiDict(args))
            query, _invalid = report.filtered(account_id, filters, tz)
            report.page(report.with_names(query), before=before)
            db.session.remove()

    for _turn in range(runs):
        for label, url, args, _goal in live:
            started = time.perf_counter()
            response = client.get(url)
            times[label].append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
        for label, _url, args, _goal in pages:
            if args is None:
                continue
            started = time.perf_counter()
            run_query({k: v for k, v in args.items() if k != "before"}, args.get("before"))
            query_times[label].append(time.perf_counter() - started)
        started = time.perf_counter()
        raw.execute(bare_sql, (account_id,)).fetchall()
        bare.append(time.perf_counter() - started)
    raw.close()

    results = []
    for label, url, args, goal in pages:
        row = {"label": label, "url": url, "goal": goal, "status": status[label]}
        if times[label]:
            row["p50"], row["p95"] = percentile(times[label], 0.5), percentile(times[label], 0.95)
        if args is not None:
            row["q50"] = percentile(query_times[label], 0.5)
            row["q95"] = percentile(query_times[label], 0.95)
        results.append(row)
    results.append({"label": "baseline: bare SELECT … LIMIT 50 (sqlite3)", "url": "",
                    "goal": None, "status": 200, "p50": percentile(bare, 0.5),
                    "p95": percentile(bare, 0.95)})
    return results, total


# ------------------------------------------------------------------ measuring exports


def child_export(args):
    """In a fresh process: sign in, download one export to the end; print JSON figures."""
    workdir = Path(args.child_workdir)
    app = make_app(args.db, args.redis, workdir)
    client = app.test_client()
    login(client)
    rss_before, hwm_before = _status_kb("VmRSS"), _status_kb("VmHWM")
    # Start the high-water mark afresh (Linux >= 4.0): signing in hashed a password with
    # scrypt, whose 32 MB would otherwise hide the export's own peak.
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    hwm_reset = _status_kb("VmHWM") < hwm_before
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.get(f"/emails.{args.child_export}?{args.child_query}", buffered=False)
    size = lines = 0
    first = None
    for chunk in response.response:
        if first is None:
            first = time.perf_counter() - started
        size += len(chunk)
        if args.child_export == "csv":
            lines += chunk.count(b"\r\n")
    response.close()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({
        "status": response.status_code, "bytes": size, "seconds": seconds, "cpu": cpu,
        "first_byte": first, "csv_rows": lines - 1 if args.child_export == "csv" else None,
        "rss_before_kb": rss_before, "hwm_before_kb": hwm_before, "hwm_reset": hwm_reset,
        "maxrss_kb": _status_kb("VmHWM"),
    }))


def _status_kb(field):
    """A memory figure of this process from /proc/self/status, in KB.

    VmHWM is the high-water mark of the resident set of this process image only:
    getrusage's ru_maxrss would also carry the parent's peak across fork and exec.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure_exports(db_path, redis_url, workdir):
    """Each export at ~100,000 rows and at all rows, each in a child process."""
    from tracker.reports.exports import XLSX_MAX_ROWS
    from tracker.reports.periods import local_day

    raw = sqlite3.connect(db_path)
    account_id = raw.execute("SELECT id FROM account WHERE name = 'Bench furniture'").fetchone()[0]
    total = raw.execute("SELECT count(*) FROM email WHERE account_id = ?",
                        (account_id,)).fetchone()[0]
    tz = ZoneInfo(TIMEZONE)
    plans = [("all rows", "", total)]
    if total > 150000:
        # A custom period of the latest days that holds about 100,000 emails.
        at = raw.execute("SELECT internaldate FROM email WHERE account_id = ? "
                         "ORDER BY internaldate DESC LIMIT 1 OFFSET 100000",
                         (account_id,)).fetchone()[0]
        first = local_day(datetime.fromisoformat(at), tz)
        today = local_day(datetime.now(UTC).replace(tzinfo=None), tz)
        start = datetime.combine(first, datetime.min.time(), tzinfo=tz).astimezone(UTC)
        rows = raw.execute("SELECT count(*) FROM email WHERE account_id = ? AND internaldate >= ?",
                           (account_id, stamp(start.replace(tzinfo=None)))).fetchone()[0]
        query = f"period=custom&date_from={first}&date_to={today}"
        plans.insert(0, (f"period {first} – {today}", query, rows))
    raw.close()
    results = []
    for kind in ("csv", "xlsx"):
        for label, query, rows in plans:
            completed = subprocess.run(
                [sys.executable, __file__, "--child-export", kind, "--child-query", query,
                 "--db", str(db_path), "--redis", redis_url, "--child-workdir", str(workdir)],
                capture_output=True, text=True, cwd=ROOT, check=False)
            if completed.returncode != 0:
                results.append({"kind": kind, "label": label, "error": completed.stderr[-800:]})
                continue
            figures = json.loads(completed.stdout.strip().splitlines()[-1])
            written = min(rows, XLSX_MAX_ROWS - 1) if kind == "xlsx" else rows
            if kind == "csv" and figures["csv_rows"] != rows:
                figures["warning"] = f"CSV had {figures['csv_rows']} rows, expected {rows}"
            results.append({"kind": kind, "label": label, "rows": written, **figures,
                            "rows_per_second": written / figures["seconds"],
                            "rows_per_cpu_second": written / figures["cpu"]})
            print(f"  {kind} {label}: {written:,} rows in {figures['seconds']:.1f} s "
                  f"({figures['cpu']:.1f} s CPU), RSS {figures['rss_before_kb'] / 1024:.0f} MB "
                  f"before, peak {figures['maxrss_kb'] / 1024:.0f} MB "
                  f"(peak before the request {figures['hwm_before_kb'] / 1024:.0f} MB, "
                  f"{'reset' if figures['hwm_reset'] else 'NOT reset: peak includes start-up'})",
                  flush=True)
    return results


# ------------------------------------------------------------------ report


def ms(value):
    return f"{value * 1000:.1f} ms" if value is not None else "—"


def render(args, seeded, pages, total, exports):
    lines = [START, "## Reports: the emails list, detail, dashboard and exports on 1M emails", ""]
    lines += [
        f"Command: `.venv/bin/python bench/reports_bench.py --emails {args.emails} "
        f"--visits {args.visits} --runs {args.runs}"
        f"{' --analyze' if args.analyze else ''}`",
        f"(measured {datetime.now(UTC):%Y-%m-%d}, CPython {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end; SQLite {sqlite3.sqlite_version} in WAL mode"
        f"{', after ANALYZE' if args.analyze else ', no ANALYZE (the app never runs it)'}).",
        "",
        f"Data: one account with {total:,} emails over a year and {args.visits:,} visits, "
        "3 mailboxes, 10 rules; seeded "
        + (f"in {seeded['seconds']:.0f} s" if seeded else "earlier (database reused)") + ".",
        "",
        f"Pages: in-process Flask test client, signed in, {args.runs} turns in which every "
        "request takes its turn; \"query alone\" is the emails query of the same page "
        "(`filtered` + `with_names` + `page`) without HTTP or template.",
        "",
        "| request | p50 | p95 | query alone p50 / p95 | goal (p95) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in pages:
        goal = row["goal"]
        if "p50" not in row:
            verdict = f"not measured: {row['status']}"
            lines.append(f"| {row['label']} | — | — | "
                         f"{ms(row.get('q50'))} / {ms(row.get('q95'))} | {verdict} |")
            continue
        if goal is None:
            verdict = "(for comparison)"
        else:
            verdict = f"≤ {goal} ms: **{'met' if row['p95'] * 1000 <= goal else 'missed'}**"
        query = f"{ms(row['q50'])} / {ms(row['q95'])}" if "q50" in row else ""
        lines.append(f"| {row['label']} | {ms(row['p50'])} | {ms(row['p95'])} | {query} | "
                     f"{verdict} |")
    if exports:
        lines += [
            "",
            "Exports: each in a child process of its own that builds the app, signs in and "
            "reads the streamed download to its end; peak RSS is the child's high-water mark "
            "(`VmHWM` of `/proc/self/status`, reset through `/proc/self/clear_refs` just "
            "before the request, so that start-up and sign-in do not count), \"before\" its "
            "resident memory just before the request.",
            "",
            "| export | rows | size | time (CPU) | rows/s | rows per CPU second | first byte after "
            "| RSS before | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in exports:
            if "error" in row:
                lines.append(f"| {row['kind']}, {row['label']} | failed | | | | | | | |")
                continue
            lines.append(
                f"| {row['kind'].upper()}, {row['label']} | {row['rows']:,} | "
                f"{row['bytes'] / 2**20:,.0f} MB | {row['seconds']:.1f} s ({row['cpu']:.1f} s) | "
                f"{row['rows_per_second']:,.0f} | {row['rows_per_cpu_second']:,.0f} | "
                f"{row['first_byte']:.1f} s | "
                f"{row['rss_before_kb'] / 1024:.0f} MB | {row['maxrss_kb'] / 1024:.0f} MB |")
    lines.append(END)
    return "\n".join(lines)


def write_docs(section):
    text = DOCS.read_text()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        _old, after = rest.split(END, 1)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--visits", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--db", help="keep the seeded database here (reused when it matches)")
    parser.add_argument("--analyze", action="store_true", help="run ANALYZE after seeding")
    parser.add_argument("--no-exports", action="store_true")
    parser.add_argument("--no-pages", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--child-export", help=argparse.SUPPRESS)
    parser.add_argument("--child-query", default="", help=argparse.SUPPRESS)
    parser.add_argument("--child-workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export:
        child_export(args)
        return

    from tests.services.redis_server import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="reports-bench-"))
    db_path = Path(args.db).resolve() if args.db else workdir / "bench.sqlite3"
    redis = RedisServer(workdir / "redis")
    (workdir / "redis").mkdir()
    redis.start()
    try:
        seeded = None
        if counts(db_path) != (args.emails, args.visits):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{db_path}{suffix}")
            print(f"seeding {args.emails:,} emails and {args.visits:,} visits into {db_path}",
                  flush=True)
            app = make_app(db_path, redis.url, workdir)
            seeded = seed(app, db_path, args.emails, args.visits, args.analyze)
            print(f"  seeded in {seeded['seconds']:.0f} s "
                  f"(rows {seeded['insert_seconds']:.0f} s, then indexes)", flush=True)
        app = make_app(db_path, redis.url, workdir)
        pages, total = [], counts(db_path)[0]
        if not args.no_pages:
            print(f"pages: {args.runs} turns", flush=True)
            pages, total = measure_pages(app, db_path, args.runs)
            for row in pages:
                print(f"  {row['label']}: p50 {ms(row.get('p50'))}, p95 {ms(row.get('p95'))}"
                      + (f", query alone {ms(row['q50'])} / {ms(row['q95'])}"
                         if "q50" in row else "")
                      + ("" if row["status"] == 200 else f" [{row['status']}]"), flush=True)
        exports = []
        if not args.no_exports:
            print("exports (one child process each):", flush=True)
            exports = measure_exports(db_path, redis.url, workdir)
            for row in exports:
                if "error" in row:
                    print(f"  {row['kind']} {row['label']} failed:\n{row['error']}")
        section = render(args, seeded, pages, total, exports)
        print()
        print(section)
        if not args.no_write and args.emails >= 1_000_000:
            write_docs(section)
            print(f"\nwritten to {DOCS}")
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
