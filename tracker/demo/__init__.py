"""Demo data for newcomers: one demo account with a site, rules and a month of visits and emails.

Everything goes through the real code paths: page views through
tracker.pageviews.record_page_view (back-dated) and the page-view writer
(tracker.ingest), then emails as raw headers through tracker.sync.store_messages,
which parses, stores, counts and attributes them as a sync does. A seeded
random.Random makes every run the same, up to where the clock puts it.

The demo account is the one that owns the demo mailbox's credential (DEMO_HOST +
MAIN_LOGIN, unique across accounts), so there is never more than one. A refresh
deletes what that account owns except the account and its user, and makes it again;
no other account is read or changed. The demo mailboxes are inactive and their host
is under .invalid, so nothing ever connects to them.
"""

import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import delete, func, select

from tracker import ingest, leases, siteregistry, sync, visitstate
from tracker.demo import content, mail, traffic
from tracker.reports import pools
from tracker.extensions import db, redis_client
from tracker.models import (
    Account, Block, BlockAddress, Credential, Email, Mailbox, MailboxFolder, PoolAddress, Rule,
    RuleCondition, Site, SiteDomain, User, Visit,
)
from tracker.segments import check_condition
from tracker.selectors import build_selector

DEMO_EMAIL = "demo@example.com"
DEMO_HOST = "imap.demo.invalid"
MAIN_LOGIN = f"info@{content.SHOP_DOMAIN}"
LEAD_LOGIN = f"leads@{content.LEAD_DOMAIN}"
ACCOUNT_NAME = "Demo furniture shop"
TIMEZONE = "Europe/Moscow"
DEFAULT_VISITS = 600
UIDVALIDITY = 1
EMAIL_BATCH = 100  # several batches, as a sync of a busy mailbox has
FLUSH_WAIT_SECONDS = 30


class DemoError(Exception):
    """The demo cannot be made as asked (nothing was changed)."""


@dataclass
class Summary:
    """What the demo holds after a run."""

    email: str
    visits: int
    bots: int
    emails: int
    counted: int
    tracked: int
    seconds: float = 0.0


def _write_queued(redis):
    """Write every queued page view (ours and any real ones), as the writer job does."""
    while True:
        written = ingest.flush(redis, wait=FLUSH_WAIT_SECONDS)
        if written is None:
            raise DemoError("The page-view writer stayed busy; try again in a minute.")
        if not written:
            break
    # The job's ending: from now on the next page view wakes a writer.
    redis.delete(visitstate.FLAG)
    ingest.flush(redis, wait=FLUSH_WAIT_SECONDS)


def _forget_live_state(redis, site_ids, rule_ids):
    """Drop visits and pool leases that Redis keeps for these sites and rules.

    Ids of deleted rows come back on SQLite, and the demo's visit ids repeat from run
    to run: a visit or lease left from an earlier run would change this one.
    """
    for site_id in site_ids:
        keys = list(redis.scan_iter(match=visitstate.visit_key(site_id, "*"), count=1000))
        for start in range(0, len(keys), 500):
            redis.delete(*keys[start:start + 500])
    for rule_id in rule_ids:
        redis.delete(*leases.keys(rule_id))
    # Each process keeps a site's blocks and rules for a few seconds (pageviews.per_process):
    # a reused site id must not find the deleted site's rules there.
    cache = current_app.extensions.get("tracker.site_setups", {})
    for site_id in site_ids:
        cache.pop(site_id, None)


def _demo_account_id():
    return db.session.scalar(select(Credential.account_id).where(
        Credential.host == DEMO_HOST, Credential.login == MAIN_LOGIN))


def _clear(account_id):
    """Delete every row the account owns but its users; returns (site keys, site ids, rule ids)."""
    sites = db.session.execute(select(Site.key, Site.id).where(Site.account_id == account_id)).all()
    rule_ids = list(db.session.scalars(select(Rule.id).where(Rule.account_id == account_id)))
    # Dependents first; the foreign keys cascade to rows without an account_id column.
    for table in reversed(db.metadata.sorted_tables):
        if "account_id" in table.c and table.name != User.__tablename__:
            db.session.execute(delete(table).where(table.c.account_id == account_id))
    return [key for key, _id in sites], [site_id for _key, site_id in sites], rule_ids


def _account(email, password):
    """The demo account and its user, emptied; (account, old site keys, site ids, rule ids)."""
    account_id = _demo_account_id()
    holder = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if holder is not None and holder.account_id != account_id:
        raise DemoError(f"{email} signs in to another account; choose another --email.")
    old = ([], [], [])
    if account_id is None:
        account = Account(name=ACCOUNT_NAME)
        db.session.add(account)
    else:
        account = db.session.get(Account, account_id)
        old = _clear(account_id)
    account.name, account.timezone = ACCOUNT_NAME, TIMEZONE
    user = holder
    if user is None and account_id is not None:
        user = db.session.scalar(
            select(User).where(User.account_id == account_id).order_by(User.id).limit(1))
    if user is None:
        user = User(account=account, email=email)
        db.session.add(user)
    user.email, user.active = email, True
    user.set_password(password)
    db.session.flush()
    return account, *old


@dataclass
class Setup:
    """The demo account's site and mailboxes: what the traffic and the emails need."""

    site: Site
    mailboxes: dict  # "main"/"lead" -> (Mailbox, MailboxFolder)
    rule_ids: list


def _condition(account_id, position, field, operator, value):
    checked = check_condition(field, operator, value)
    return RuleCondition(account_id=account_id, position=position, field=checked.field,
                         operator=checked.operator, value=checked.value)


def _mailbox(account_id, name, login):
    credential = Credential(account_id=account_id, name=name, service="other", host=DEMO_HOST,
                            port=993, security="ssl", login=login)
    credential.password = secrets.token_urlsafe(24)  # never used: nothing connects
    mailbox = Mailbox(account_id=account_id, credential=credential, active=False)
    folder = MailboxFolder(name="INBOX", position=0)
    mailbox.folders.append(folder)
    db.session.add(mailbox)
    return mailbox, folder


def _setup(account):
    """The demo's site, blocks, rules and mailboxes (added to the session, not committed)."""
    aid = account.id
    site = Site(account_id=aid, name="Demo furniture shop")
    site.domains.append(SiteDomain(account_id=aid, domain=content.SHOP_DOMAIN, position=0))
    header = Block(account_id=aid, name="Header and contacts", placement="code", sites=[site])
    header.addresses.append(BlockAddress(account_id=aid, address=MAIN_LOGIN, position=0))
    form = Block(account_id=aid, name="Order form", placement="element", sites=[site],
                 attribute_kind="id", attribute_value="order-email",
                 selector=build_selector("id", "order-email"), replace_address=MAIN_LOGIN)
    blocks = [header, form]
    google = Rule(account_id=aid, name="Google Ads", priority=1, match_all=False,
                  kind="static", static_address=f"google@{content.SHOP_DOMAIN}", blocks=blocks)
    google.conditions = [_condition(aid, 0, "utm_source", "equals", "google"),
                         _condition(aid, 1, "utm_medium", "equals", "cpc")]
    direct = Rule(account_id=aid, name="Yandex Direct", priority=2, match_all=False,
                  kind="dynamic", dynamic_mode="pool", reservation_minutes=30,
                  fallback_address=f"direct@{content.SHOP_DOMAIN}", blocks=blocks)
    direct.conditions = [_condition(aid, 0, "utm_source", "equals", "yandex"),
                         _condition(aid, 1, "utm_medium", "equals", "cpc")]
    direct.pool_addresses = [
        PoolAddress(account_id=aid, position=n, address=f"direct{n + 1}@{content.SHOP_DOMAIN}")
        for n in range(3)]
    # Paused: shows what an inactive rule looks like; newsletter readers fall through.
    newsletter = Rule(account_id=aid, name="Newsletter", priority=3, match_all=False,
                      active=False, kind="static", static_address=f"news@{content.SHOP_DOMAIN}",
                      blocks=blocks)
    newsletter.conditions = [_condition(aid, 0, "utm_medium", "equals", "email")]
    social = Rule(account_id=aid, name="Social networks", priority=4, match_all=False,
                  kind="dynamic", dynamic_mode="catchall", catchall_domain=content.LEAD_DOMAIN,
                  blocks=blocks)
    social.conditions = [_condition(aid, 0, "channel", "equals", "social")]
    everyone = Rule(account_id=aid, name="Everyone else", priority=5, match_all=True,
                    kind="dynamic", dynamic_mode="subaddress", base_address=MAIN_LOGIN,
                    blocks=blocks)
    rules = [google, direct, newsletter, social, everyone]
    db.session.add_all([site, *blocks, *rules])
    # The catch-all domain has a mailbox of its own, so that every address shown is read.
    mailboxes = {"main": _mailbox(aid, "Shop mailbox", MAIN_LOGIN),
                 "lead": _mailbox(aid, "Catch-all leads", LEAD_LOGIN)}
    db.session.flush()
    return Setup(site, mailboxes, [rule.id for rule in rules])


def _clock(now=None):
    """(now, the account's midnight today), in whole seconds as ms since the epoch."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    local = now.astimezone(ZoneInfo(TIMEZONE))
    midnight = local.replace(hour=0, minute=0, second=0)
    return int(now.timestamp()) * 1000, int(midnight.timestamp()) * 1000


def _store(setup, messages):
    """Store each mailbox's messages through the sync, UIDs in arrival order."""
    for key, (mailbox, folder) in setup.mailboxes.items():
        mine = [m for m in messages if m.mailbox == key]
        sync.store_messages(
            mailbox, folder,
            [(uid, m.internaldate, m.headers, m.size) for uid, m in enumerate(mine, 1)],
            UIDVALIDITY, batch_size=EMAIL_BATCH)
        mailbox.synced_at = folder.synced_at
    db.session.commit()


def summary(account_id, email):
    """Counts of the demo account's visits and emails."""
    def count(model, *where):
        return db.session.scalar(select(func.count()).select_from(model).where(
            model.account_id == account_id, *where)) or 0

    return Summary(
        email=email, visits=count(Visit), bots=count(Visit, Visit.is_bot.is_(True)),
        emails=count(Email), counted=count(Email, Email.counted.is_(True)),
        tracked=count(Email, Email.tracked_address.is_not(None)),
    )


def make_demo(email=DEMO_EMAIL, password=None, visits=DEFAULT_VISITS, seed=1, now=None):
    """Create or refresh the demo account; returns its Summary. Raises DemoError.

    now: an aware datetime to lay the month out from (default: the current time).
    """
    started = time.monotonic()
    password = password or secrets.token_urlsafe(12)
    redis = redis_client()
    # Written first: page views of an earlier demo site still queued must not land in a
    # new site that got its id back.
    _write_queued(redis)
    account, old_keys, old_sites, old_rules = _account(email, password)
    setup = _setup(account)
    db.session.commit()
    for key in old_keys:
        siteregistry.forget(key)
    _forget_live_state(redis, {*old_sites, setup.site.id}, {*old_rules, *setup.rule_ids})

    rng = random.Random(seed)
    now_ms, midnight_ms = _clock(now)
    planned = traffic.plan(rng, visits, midnight_ms, now_ms)
    traffic.play(planned, setup.site, redis)
    _write_queued(redis)  # every visit stored before any email is attributed
    _store(setup, mail.emails(rng, planned, midnight_ms, now_ms, MAIN_LOGIN))
    # The month's pool usage, as the cron job would have recorded it day by day.
    pools.record_usage(now=datetime.fromtimestamp(now_ms / 1000, UTC).replace(tzinfo=None),
                       days=32, account_id=account.id)

    result = summary(account.id, email)
    result.seconds = time.monotonic() - started
    return result
