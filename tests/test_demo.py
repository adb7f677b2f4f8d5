"""`flask demo`: one demo account, the same data on every run, no other account touched."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tracker import demo, sync
from tracker.extensions import db
from tracker.models import (
    Account, Assignment, Credential, Email, Mailbox, PoolUsage, Rule, Site, User, Visit, utcnow,
)

# Small enough to be quick, large enough for every kind of email to turn up.
VISITS = "300"
PASSWORD_LINE = re.compile(r"Password \(shown once\): (\S+)")


def run_demo(runner, *args):
    result = runner.invoke(args=["demo", "--visits", VISITS, *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def demo_accounts():
    return db.session.scalars(
        select(Account).join(Credential, Credential.account_id == Account.id)
        .where(Credential.host == demo.DEMO_HOST).distinct()).all()


def counts(account_id):
    def count(model, *where):
        return db.session.scalar(select(func.count()).select_from(model).where(
            model.account_id == account_id, *where))

    return {
        "visits": count(Visit), "bots": count(Visit, Visit.is_bot.is_(True)),
        "emails": count(Email), "counted": count(Email, Email.counted.is_(True)),
        "tracked": count(Email, Email.tracked_address.is_not(None)),
        "with_visit": count(Email, Email.visit_id.is_not(None)),
        "assignments": count(Assignment), "rules": count(Rule), "sites": count(Site),
        "pool_days": count(PoolUsage),
        "pool_fallbacks": db.session.scalar(select(func.sum(PoolUsage.fallback_visits)).where(
            PoolUsage.account_id == account_id)),
    }


def signature(account_id):
    """Every email as (subject, sender, counted, channel, attribution), sorted."""
    rows = db.session.execute(
        select(Email.subject, Email.from_address, Email.counted, Email.channel,
               Email.attribution).where(Email.account_id == account_id)).all()
    return sorted(tuple("" if v is None else v for v in row) for row in rows)


def visit_signature(account_id):
    rows = db.session.execute(
        select(Visit.landing_url, Visit.referrer, Visit.channel, Visit.is_bot, Visit.page_views)
        .where(Visit.account_id == account_id)).all()
    return sorted(rows)


def test_twice_leaves_one_demo_account_with_the_same_data(runner, ctx):
    first = run_demo(runner)
    [account] = demo_accounts()
    before = (counts(account.id), signature(account.id), visit_signature(account.id))

    second = run_demo(runner)
    db.session.expire_all()
    assert [a.id for a in demo_accounts()] == [account.id]
    assert db.session.scalar(select(func.count()).select_from(User).where(
        User.email == demo.DEMO_EMAIL)) == 1
    assert (counts(account.id), signature(account.id), visit_signature(account.id)) == before
    assert before[0]["emails"] > 100 and before[0]["visits"] == int(VISITS)
    assert before[0]["pool_days"] >= 30 and before[0]["pool_fallbacks"] > 0

    # A new password each run, printed once; the latest one signs in.
    passwords = [PASSWORD_LINE.search(r.output).group(1) for r in (first, second)]
    assert passwords[0] != passwords[1]
    user = db.session.scalar(select(User).where(User.email == demo.DEMO_EMAIL))
    assert user.check_password(passwords[1]) and not user.check_password(passwords[0])
    assert "demo@example.com" in second.output and "http" in second.output


def test_the_data_does_not_depend_on_the_time_of_day(ctx):
    # Past days hang from the account's midnight and the last hours from now: either
    # way, the same emails with the same fates.
    found = []
    for hour in (21, 6, 14):  # UTC: past midnight in Moscow, early morning, afternoon
        now = datetime.now(UTC).replace(hour=hour, minute=30) - timedelta(days=1)
        demo.make_demo(visits=int(VISITS), now=now)
        [account] = demo_accounts()
        found.append((counts(account.id), signature(account.id)))
    assert found[0] == found[1] == found[2]


def test_other_accounts_are_untouched(runner, factory):
    other = factory.user(email="someone@example.com")
    site = factory.site(other.account)
    mailbox = factory.mailbox(other.account)
    factory.email(mailbox, subject="Keep me")
    factory.visit(site)
    rule = factory.rule(other.account)
    before = (counts(other.account_id), other.password_hash, site.key, rule.static_address)

    run_demo(runner)
    run_demo(runner)
    db.session.expire_all()
    assert (counts(other.account_id), other.password_hash, site.key,
            rule.static_address) == before
    assert db.session.get(Account, other.account_id).timezone == "UTC"
    assert db.session.scalar(select(func.count()).select_from(Account)) == 2


def test_an_email_of_another_account_is_refused(runner, factory):
    factory.user(email="taken@example.com")
    result = runner.invoke(args=["demo", "--visits", VISITS, "--email", "taken@example.com"])
    assert result.exit_code != 0 and "another account" in result.output
    assert demo_accounts() == []


def test_another_email_renames_the_one_demo_login(runner, ctx):
    run_demo(runner)
    run_demo(runner, "--email", "Showcase@Example.com")
    db.session.expire_all()
    [account] = demo_accounts()
    assert [u.email for u in db.session.scalars(select(User))] == ["showcase@example.com"]
    assert db.session.scalar(select(User.account_id)) == account.id


def test_emails_are_attributed_every_way(runner, ctx):
    run_demo(runner)
    [account] = demo_accounts()
    assert account.timezone == "Europe/Moscow"
    emails = db.session.scalars(select(Email).where(Email.account_id == account.id)).all()
    kinds = {e.attribution for e in emails}
    assert {"subaddress", "catchall", "pool", "static", None} <= kinds
    assert any(e.visit_id for e in emails)  # tokens and leases point at their visit
    assert all(e.visit_id is None and e.source["utm_source"] == "google"
               for e in emails if e.attribution == "static")
    untracked = [e for e in emails if e.tracked_address is None]
    assert untracked and {e.recipient for e in untracked} == {demo.MAIN_LOGIN}
    assert any(not e.counted for e in emails)  # repeats within the mailbox's day
    assert any(not e.counted for e in untracked)
    assert {e.channel for e in emails} >= {"paid", "organic", "social", "email", "referral",
                                           "direct"}
    # Russian and English subjects and names, decoded from their encoded headers.
    assert any(re.search("[а-яА-Я]", e.subject) for e in emails)
    assert any(e.subject.isascii() and e.subject for e in emails)
    assert any(re.search("[а-яА-Я]", e.from_name) for e in emails)

    # Some wrote to a pool address after their lease had ended.
    late = [
        e for e in emails if e.attribution == "pool" and e.visit_id and db.session.scalar(
            select(func.max(Assignment.expires_at)).where(
                Assignment.visit_id == e.visit_id, Assignment.address == e.tracked_address)
        ) < e.internaldate
    ]
    assert late

    now = utcnow()
    assert all(now - timedelta(days=32) < e.internaldate <= now for e in emails)
    visits = db.session.scalars(select(Visit).where(Visit.account_id == account.id)).all()
    assert any(v.is_bot for v in visits)
    assert {v.channel for v in visits} >= {"paid", "organic", "social", "email", "referral",
                                           "direct"}
    assert any(v.utm_campaign for v in visits)
    assert max(v.started_at for v in visits) - min(v.started_at for v in visits) > timedelta(
        days=28)
    # Returning visitors: one browser, several visits.
    assert db.session.scalar(select(func.count(Visit.visitor_id.distinct())).where(
        Visit.account_id == account.id)) < len(visits)


def test_demo_mailboxes_are_never_synced(runner, ctx):
    run_demo(runner)
    mailboxes = db.session.scalars(select(Mailbox)).all()
    assert mailboxes and all(not m.active for m in mailboxes)
    assert all(m.credential.host.endswith(".invalid") for m in mailboxes)


@pytest.fixture
def mailbox(factory):
    return factory.mailbox(factory.account())


def headers(n, sender="lead@example.org", to="info@shop.example"):
    return (f"Message-ID: <{n}@example.org>\r\nFrom: Lead <{sender}>\r\nTo: {to}\r\n"
            f"Subject: Request {n}\r\n\r\n").encode()


def test_store_messages_stores_like_a_sync_batch(mailbox):
    folder = mailbox.folders[0]
    at = utcnow().replace(microsecond=0) - timedelta(hours=5)
    messages = [(uid, at + timedelta(hours=uid), headers(uid), 1234) for uid in (1, 2, 3)]
    assert sync.store_messages(mailbox, folder, messages, 7, batch_size=2) == 3
    # Stored again: nothing twice; the cursor stays at the highest UID.
    assert sync.store_messages(mailbox, folder, messages[:1], 7) == 0
    assert (folder.uidvalidity, folder.last_uid) == (7, 3)
    rows = db.session.scalars(select(Email).order_by(Email.uid)).all()
    assert [(e.uid, e.subject, e.size, e.counted) for e in rows] == [
        (1, "Request 1", 1234, True), (2, "Request 2", 1234, False),
        (3, "Request 3", 1234, False)]  # one sender and recipient within a day: repeats
    assert rows[0].internaldate == at + timedelta(hours=1)
