"""Attribution of an email to a rule and a visit, from its recipients and its time."""

from datetime import datetime, timedelta

import pytest

from tracker.attribution import attribute
from tracker.extensions import db
from tracker.models import Assignment, Visit

T0 = datetime(2026, 11, 1, 12, 0)


@pytest.fixture
def shop(factory):
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site])
    return account, site, block


def visit(account, site, n, **fields):
    row = Visit(account_id=account.id, site_id=site.id, visitor_id=f"visitor-{n}",
                client_visit_id=f"visit-{n:04d}", started_at=T0, last_seen_at=T0, **fields)
    db.session.add(row)
    db.session.commit()
    return row


def assign(account, site, visit_row, rule, address, kind, at=T0, expires=None, token=None, pool=None):
    row = Assignment(account_id=account.id, site_id=site.id, visit_id=visit_row.id,
                     rule_id=rule.id, address=address, kind=kind, assigned_at=at,
                     expires_at=expires, token=token, pool_address_id=pool)
    db.session.add(row)
    db.session.commit()
    return row


def test_sub_address_token_names_the_visit(shop, factory):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    v = visit(account, site, 1, utm_source="yandex", utm_medium="cpc", channel="paid")
    assign(account, site, v, rule, "info+k7m2x9q4rt@shop.example", "subaddress", token="k7m2x9q4rt")
    result = attribute(account.id, ["INFO+K7M2X9Q4RT@Shop.Example"], T0 + timedelta(days=3))
    assert (result.rule_id, result.visit_id, result.kind) == (rule.id, v.id, "subaddress")
    assert result.source["utm_source"] == "yandex" and result.source["channel"] == "paid"


def test_unknown_token_still_names_the_rule(shop, factory):
    account, _site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    result = attribute(account.id, ["info+nosuchtoken@shop.example"], T0)
    assert (result.rule_id, result.visit_id) == (rule.id, None)


def test_catch_all(shop, factory):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="catchall", catchall_domain="in.shop.example")
    v = visit(account, site, 2)
    assign(account, site, v, rule, "abcdefgh23@in.shop.example", "catchall", token="abcdefgh23")
    assert attribute(account.id, ["abcdefgh23@in.shop.example"], T0).visit_id == v.id
    assert attribute(account.id, ["zzzzzzzz22@in.shop.example"], T0).rule_id == rule.id


def test_pool_address_goes_to_the_visit_that_held_it_then(shop, factory):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"],
                        fallback_address="fb@shop.example")
    first, second = visit(account, site, 3), visit(account, site, 4)
    assign(account, site, first, rule, "p1@shop.example", "pool", at=T0, expires=T0 + timedelta(minutes=30))
    assign(account, site, second, rule, "p1@shop.example", "pool", at=T0 + timedelta(hours=2),
           expires=T0 + timedelta(hours=2, minutes=30))
    assert attribute(account.id, ["p1@shop.example"], T0 + timedelta(minutes=10)).visit_id == first.id
    # After the first lease ended and before the second began: its last holder, within the window.
    assert attribute(account.id, ["p1@shop.example"], T0 + timedelta(hours=1)).visit_id == first.id
    assert attribute(account.id, ["p1@shop.example"], T0 + timedelta(days=1)).visit_id == second.id
    stale = attribute(account.id, ["p1@shop.example"], T0 + timedelta(days=30))
    assert (stale.rule_id, stale.visit_id) == (rule.id, None)


def test_static_and_fallback_addresses_name_their_rule(shop, factory):
    account, _site, block = shop
    static = factory.rule(account, blocks=[block], address="ads@shop.example")
    pool = factory.rule(account, blocks=[block], mode="pool", pool=["p9@shop.example"],
                        fallback_address="fb@shop.example")
    assert (attribute(account.id, ["ads@shop.example"], T0).rule_id) == static.id
    result = attribute(account.id, ["fb@shop.example"], T0)
    assert (result.rule_id, result.kind) == (pool.id, "fallback")


def test_first_tracked_recipient_decides_and_untracked_mail_stays_untracked(shop, factory):
    account, _site, block = shop
    rule = factory.rule(account, blocks=[block], address="ads@shop.example")
    assert attribute(account.id, ["boss@shop.example", "ads@shop.example"], T0).rule_id == rule.id
    nothing = attribute(account.id, ["boss@shop.example", "not an address"], T0)
    assert not nothing.tracked and nothing.visit_id is None


def test_other_accounts_addresses_are_not_used(shop, factory):
    account, _site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    other = factory.account()
    assert not attribute(other.id, ["ads@shop.example"], T0).tracked


def test_a_static_address_takes_the_source_its_rule_pins_down(shop, factory):
    account, site, block = shop
    paid = factory.rule(account, blocks=[block], address="ads@shop.example",
                        conditions=[("utm_source", "equals", "google"),
                                    ("utm_medium", "equals", "cpc"),
                                    ("landing_url", "contains", "/sale")])
    social = factory.rule(account, blocks=[block], address="vk@shop.example",
                          conditions=[("channel", "equals", "social")])
    everyone = factory.rule(account, blocks=[block], address="info@shop.example")
    result = attribute(account.id, ["ads@shop.example"], T0)
    assert result.source == {"utm_source": "google", "utm_medium": "cpc", "channel": "paid"}
    assert (result.rule_id, result.site_id) == (paid.id, site.id)
    assert attribute(account.id, ["vk@shop.example"], T0).source == {"channel": "social"}
    result = attribute(account.id, ["info@shop.example"], T0)
    assert (result.rule_id, result.source) == (everyone.id, {})
    assert social.id != everyone.id


def test_a_rule_on_two_sites_names_no_site(shop, factory):
    account, site, block = shop
    other = factory.block(account, sites=[factory.site(account)])
    factory.rule(account, blocks=[block, other], address="ads@shop.example")
    assert attribute(account.id, ["ads@shop.example"], T0).site_id is None


def test_an_email_after_the_lease_ended_is_marked_uncertain(shop, factory):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"])
    first = visit(account, site, 5)
    assign(account, site, first, rule, "p1@shop.example", "pool", at=T0,
           expires=T0 + timedelta(minutes=30))
    held = attribute(account.id, ["p1@shop.example"], T0 + timedelta(minutes=10))
    assert (held.visit_id, held.uncertain) == (first.id, None)
    late = attribute(account.id, ["p1@shop.example"], T0 + timedelta(hours=2))
    assert (late.visit_id, late.uncertain) == (first.id, "lease_ended")
    nobody = attribute(account.id, ["p1@shop.example"], T0 + timedelta(days=30))
    assert (nobody.rule_id, nobody.visit_id, nobody.uncertain) == (rule.id, None, None)


def test_attribute_emails_stores_the_uncertain_mark(shop, factory):
    from tracker.attribution import attribute_emails

    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"])
    first = visit(account, site, 6)
    assign(account, site, first, rule, "p1@shop.example", "pool", at=T0,
           expires=T0 + timedelta(minutes=30))
    mailbox = factory.mailbox(account)
    held = factory.email(mailbox, at=T0 + timedelta(minutes=5), recipient="p1@shop.example")
    late = factory.email(mailbox, at=T0 + timedelta(hours=3), recipient="p1@shop.example")
    attribute_emails([held.id, late.id])
    db.session.commit()
    db.session.refresh(held)
    db.session.refresh(late)
    assert (held.visit_id, held.uncertain) == (first.id, None)
    assert (late.visit_id, late.attribution, late.uncertain) == (first.id, "pool", "lease_ended")


def test_pool_address_beats_a_static_delivered_to_that_is_the_mailbox_s_own(shop, factory):
    """info@ is the mailbox's login and a static rule's address; its aliases land in it."""
    from tracker.attribution import on_emails_stored

    account, site, block = shop
    static = factory.rule(account, blocks=[block], address="info@shop.example")
    pool = factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"])
    v = visit(account, site, 7, utm_source="google", channel="paid")
    assign(account, site, v, pool, "p1@shop.example", "pool", at=T0,
           expires=T0 + timedelta(hours=1))
    at = T0 + timedelta(minutes=5)
    # Delivered-To first, as the sync stores them.
    recipients = ["info@shop.example", "p1@shop.example"]
    result = attribute(account.id, recipients, at, own_address="INFO@shop.example")
    assert (result.rule_id, result.visit_id, result.kind) == (pool.id, v.id, "pool")
    # Even without being told the mailbox's address: the pool address identifies a visit.
    assert attribute(account.id, recipients, at).visit_id == v.id
    # Through the sync's path: the mailbox's login is its own address.
    mailbox = factory.mailbox(account, credential=factory.credential(account,
                                                                     login="info@shop.example"))
    email = factory.email(mailbox, at=at, recipient="info@shop.example")
    email.recipients = recipients
    alone = factory.email(mailbox, at=at, recipient="info@shop.example")
    db.session.commit()
    on_emails_stored(None, mailbox, [email.id, alone.id])
    db.session.commit()
    db.session.refresh(email)
    db.session.refresh(alone)
    assert (email.visit_id, email.rule_id) == (v.id, pool.id)
    # The mailbox's own address alone still counts: the static rule.
    assert (alone.rule_id, alone.attribution) == (static.id, "static")


def test_the_mailbox_s_own_address_counts_only_when_nothing_else_is_tracked(shop, factory):
    account, _site, block = shop
    own = factory.rule(account, blocks=[block], address="info@shop.example")
    ads = factory.rule(account, blocks=[block], address="ads@shop.example")
    fallback = factory.rule(account, blocks=[block], mode="pool", pool=["p2@shop.example"],
                            fallback_address="fb@shop.example")
    # Not told the mailbox's address: the static tier beats the fallback tier.
    assert attribute(account.id, ["fb@shop.example", "info@shop.example"], T0).rule_id == own.id
    # info@ is the mailbox's own: the fallback address decides.
    result = attribute(account.id, ["info@shop.example", "fb@shop.example"], T0,
                       own_address="info@shop.example")
    assert (result.rule_id, result.kind) == (fallback.id, "fallback")
    assert attribute(account.id, ["info@shop.example", "ads@shop.example"], T0,
                     own_address="info@shop.example").rule_id == ads.id
    assert attribute(account.id, ["info@shop.example", "boss@shop.example"], T0,
                     own_address="info@shop.example").rule_id == own.id


def test_the_best_evidence_wins_whatever_the_header_order(shop, factory):
    account, site, block = shop
    static = factory.rule(account, blocks=[block], address="ads@shop.example")
    sub = factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    pool = factory.rule(account, blocks=[block], mode="pool", pool=["p3@shop.example"],
                        fallback_address="fb@shop.example")
    v, w = visit(account, site, 8), visit(account, site, 9)
    assign(account, site, v, sub, "info+tok1234567@shop.example", "subaddress", token="tok1234567")
    assign(account, site, w, pool, "p3@shop.example", "pool", at=T0,
           expires=T0 + timedelta(hours=1))
    token, pooled = "info+tok1234567@shop.example", "p3@shop.example"
    unknown = "info+nosuchtoken@shop.example"
    for recipients in ([token, pooled, "ads@shop.example"], ["ads@shop.example", pooled, token],
                       [pooled, "fb@shop.example", token]):
        assert attribute(account.id, recipients, T0).visit_id == v.id
    for recipients in (["ads@shop.example", pooled], [unknown, "fb@shop.example", pooled]):
        assert attribute(account.id, recipients, T0).visit_id == w.id
    assert attribute(account.id, ["fb@shop.example", "ads@shop.example"], T0).rule_id == static.id
    assert attribute(account.id, [unknown, "fb@shop.example"], T0).kind == "fallback"
    result = attribute(account.id, ["boss@shop.example", unknown], T0)
    assert (result.rule_id, result.visit_id) == (sub.id, None)


def test_cc_order_does_not_matter(shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    pool = factory.rule(account, blocks=[block], mode="pool", pool=["p4@shop.example"])
    v = visit(account, site, 10)
    assign(account, site, v, pool, "p4@shop.example", "pool", at=T0,
           expires=T0 + timedelta(hours=1))
    one = attribute(account.id, ["info@shop.example", "ads@shop.example", "p4@shop.example"], T0)
    other = attribute(account.id, ["info@shop.example", "p4@shop.example", "ads@shop.example"], T0)
    assert one == other and one.visit_id == v.id


def test_within_a_tier_header_order_decides(shop, factory):
    account, _site, block = shop
    first = factory.rule(account, blocks=[block], address="a@shop.example")
    second = factory.rule(account, blocks=[block], address="b@shop.example")
    assert attribute(account.id, ["a@shop.example", "b@shop.example"], T0).rule_id == first.id
    assert attribute(account.id, ["b@shop.example", "a@shop.example"], T0).rule_id == second.id


def test_an_address_of_two_rules_belongs_to_the_first_active_one_by_priority(shop, factory):
    account, _site, block = shop
    pool = factory.rule(account, blocks=[block], mode="pool", pool=["p5@shop.example"],
                        fallback_address="info@shop.example", priority=1)
    static = factory.rule(account, blocks=[block], address="info@shop.example", priority=2)
    result = attribute(account.id, ["info@shop.example"], T0)
    assert (result.rule_id, result.kind) == (pool.id, "fallback")
    pool.active = False
    db.session.commit()
    result = attribute(account.id, ["info@shop.example"], T0)
    assert (result.rule_id, result.kind) == (static.id, "static")
    static.active = False
    db.session.commit()
    assert attribute(account.id, ["info@shop.example"], T0).rule_id == pool.id


def _reply(factory, mailbox, at, parent_ids, recipient="info@shop.example", **fields):
    in_reply_to, *rest = parent_ids
    return factory.email(mailbox, at=at, recipient=recipient, in_reply_to=in_reply_to,
                         reference_ids=rest or None, subject="Re: price", **fields)


def test_a_thread_reply_takes_the_earlier_email_s_visit_and_is_a_repeat(shop, factory):
    from tracker.attribution import on_emails_stored

    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress",
                        base_address="info@shop.example")
    v = visit(account, site, 21, utm_source="yandex", utm_medium="cpc", channel="paid")
    assign(account, site, v, rule, "info+tok21@shop.example", "subaddress", token="tok21")
    mailbox = factory.mailbox(account, credential=factory.credential(
        account, login="info@shop.example"), repeat_period_seconds=0)
    first = factory.email(mailbox, at=T0, recipient="info+tok21@shop.example",
                          message_id="first@client.example")
    on_emails_stored(None, mailbox, [first.id])
    db.session.commit()
    # Days later, "Re:" to the plain address, naming the first email in References only.
    reply = _reply(factory, mailbox, T0 + timedelta(days=3),
                   ["answer@shop.example", "first@client.example", "answer@shop.example"])
    on_emails_stored(None, mailbox, [reply.id])
    db.session.commit()
    db.session.refresh(reply)
    db.session.refresh(first)
    assert (reply.visit_id, reply.rule_id, reply.attribution) == (v.id, rule.id, "subaddress")
    assert (reply.channel, reply.utm_source, reply.site_id) == ("paid", "yandex", site.id)
    assert reply.tracked_address == "info+tok21@shop.example"
    assert reply.thread_of == first.id
    # A zero period counts everything, except a reply in a thread.
    assert first.counted and not reply.counted


def test_the_earlier_email_may_be_in_the_same_batch_and_chains_follow(shop, factory):
    from tracker.attribution import attribute_emails

    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="pool", pool=["p9@shop.example"])
    v = visit(account, site, 22, channel="organic")
    assign(account, site, v, rule, "p9@shop.example", "pool", at=T0,
           expires=T0 + timedelta(hours=1))
    mailbox = factory.mailbox(account)
    first = factory.email(mailbox, at=T0 + timedelta(minutes=5), recipient="p9@shop.example",
                          message_id="a@client")
    # The same second as the first, stored after it; then a reply to the reply.
    reply = _reply(factory, mailbox, T0 + timedelta(minutes=5), ["a@client"], message_id="b@c")
    again = _reply(factory, mailbox, T0 + timedelta(days=20), ["b@c"], message_id="c@c")
    attribute_emails([again.id, reply.id, first.id])
    db.session.commit()
    for row in (first, reply, again):
        db.session.refresh(row)
    assert (reply.visit_id, reply.thread_of) == (v.id, first.id)
    # 20 days later the pool lease is long over, but the thread still names the visit.
    assert (again.visit_id, again.thread_of, again.uncertain) == (v.id, reply.id, None)
    assert [first.counted, reply.counted, again.counted] == [True, False, False]


def test_a_reply_with_its_own_tracked_recipient_keeps_its_own_source(shop, factory):
    from tracker.attribution import attribute_emails

    account, site, block = shop
    info = factory.rule(account, blocks=[block], address="info@shop.example")
    ads = factory.rule(account, blocks=[block], address="ads@shop.example")
    mailbox = factory.mailbox(account, credential=factory.credential(
        account, login="info@shop.example"))
    first = factory.email(mailbox, at=T0, recipient="ads@shop.example", message_id="m1@c")
    attribute_emails([first.id], mailbox_address="info@shop.example")
    # To the mailbox's own address, which is a static rule's too: the thread decides.
    plain = _reply(factory, mailbox, T0 + timedelta(days=2), ["m1@c"])
    # To another tracked address: its own evidence wins; it is still a thread reply.
    own = _reply(factory, mailbox, T0 + timedelta(days=2), ["m1@c"], recipient="ads@shop.example",
                 sender="other@example.org")
    # Not in any stored thread: the own address decides, as before.
    lone = _reply(factory, mailbox, T0 + timedelta(days=2), ["unknown@c"],
                  sender="third@example.org")
    attribute_emails([plain.id, own.id, lone.id], mailbox_address="info@shop.example")
    db.session.commit()
    for row in (plain, own, lone):
        db.session.refresh(row)
    assert (plain.rule_id, plain.thread_of, plain.counted) == (ads.id, first.id, False)
    assert (own.rule_id, own.thread_of, own.counted) == (ads.id, first.id, False)
    assert (lone.rule_id, lone.thread_of, lone.counted) == (info.id, None, True)


def test_threads_stay_within_the_account_and_never_reach_back_to_later_mail(shop, factory):
    from tracker.attribution import attribute_emails

    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    other = factory.account()
    theirs = factory.email(factory.mailbox(other), at=T0, recipient="ads@shop.example",
                           message_id="shared@c")
    mailbox = factory.mailbox(account)
    # A reply naming a message stored later (its own time is earlier) is no thread reply.
    early = _reply(factory, mailbox, T0, ["later@c"])
    later = factory.email(mailbox, at=T0 + timedelta(hours=1), recipient="ads@shop.example",
                          message_id="later@c")
    reply = _reply(factory, mailbox, T0 + timedelta(hours=2), ["shared@c"],
                   sender="x@example.org")
    attribute_emails([early.id, later.id, reply.id])
    db.session.commit()
    for row in (early, reply, theirs):
        db.session.refresh(row)
    assert (early.thread_of, early.rule_id) == (None, None)
    assert (reply.thread_of, reply.rule_id, reply.counted) == (None, None, True)


def test_an_email_to_a_bot_s_token_is_suspected_spam_and_never_counts(shop, factory):
    """A token given to a bot's visit (before bots stopped getting them): the email is kept,
    attributed to that visit, marked "bot_visit" and is not a new request."""
    from tracker.attribution import on_emails_stored

    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress",
                        base_address="info@shop.example")
    crawler = visit(account, site, 31, is_bot=True,
                    user_agent="Mozilla/5.0 (compatible; AhrefsBot/7.0)")
    assign(account, site, crawler, rule, "info+bot31@shop.example", "subaddress", token="bot31")
    mailbox = factory.mailbox(account, credential=factory.credential(
        account, login="info@shop.example"), repeat_period_seconds=0)
    spam = factory.email(mailbox, at=T0 + timedelta(days=2), recipient="info+bot31@shop.example",
                         sender="seo@spam.example")
    on_emails_stored(None, mailbox, [spam.id])
    db.session.commit()
    db.session.refresh(spam)
    assert (spam.visit_id, spam.rule_id, spam.uncertain) == (crawler.id, rule.id, "bot_visit")
    assert not spam.counted
    # A second one from the same sender: the first was not counted, neither is this.
    again = factory.email(mailbox, at=T0 + timedelta(days=3),
                          recipient="info+bot31@shop.example", sender="seo@spam.example")
    on_emails_stored(None, mailbox, [again.id])
    db.session.commit()
    db.session.refresh(again)
    assert (again.uncertain, again.counted) == ("bot_visit", False)


def test_a_bot_s_token_is_the_weakest_evidence(shop, factory):
    """With another tracked recipient, that one decides; a person's token beats it too."""
    account, site, block = shop
    subaddress = factory.rule(account, blocks=[block], mode="subaddress",
                              base_address="info@shop.example")
    static = factory.rule(account, blocks=[block], address="ads@shop.example")
    crawler = visit(account, site, 32, is_bot=True)
    person = visit(account, site, 33)
    assign(account, site, crawler, subaddress, "info+bot32@shop.example", "subaddress",
           token="bot32")
    assign(account, site, person, subaddress, "info+man33@shop.example", "subaddress",
           token="man33")
    result = attribute(account.id, ["info+bot32@shop.example", "ads@shop.example"], T0)
    assert (result.rule_id, result.kind, result.uncertain) == (static.id, "static", None)
    result = attribute(account.id, ["info+bot32@shop.example", "info+man33@shop.example"], T0)
    assert (result.visit_id, result.uncertain) == (person.id, None)
    result = attribute(account.id, ["info+bot32@shop.example"], T0)
    assert (result.visit_id, result.uncertain) == (crawler.id, "bot_visit")


def test_a_reply_stored_before_the_email_it_answers_is_linked_when_that_arrives(shop, factory):
    """The original was filed in a folder synced after INBOX: the reply, stored first with
    no source, takes the original's visit and becomes a repeat once the original is stored."""
    from tracker.attribution import on_emails_stored

    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress",
                        base_address="info@shop.example")
    v = visit(account, site, 41, utm_source="google", utm_medium="cpc", channel="paid")
    assign(account, site, v, rule, "info+tok41@shop.example", "subaddress", token="tok41")
    mailbox = factory.mailbox(account, credential=factory.credential(
        account, login="info@shop.example"), repeat_period_seconds=0)
    reply = _reply(factory, mailbox, T0 + timedelta(days=1), ["original41@client.example"],
                   recipient="info@shop.example", sender="client41@example.org")
    on_emails_stored(None, mailbox, [reply.id])
    db.session.commit()
    db.session.refresh(reply)
    assert (reply.thread_of, reply.visit_id, reply.counted) == (None, None, True)
    original = factory.email(mailbox, at=T0, recipient="info+tok41@shop.example",
                             sender="client41@example.org", folder="Orders",
                             message_id="original41@client.example")
    on_emails_stored(None, mailbox, [original.id])
    db.session.commit()
    db.session.refresh(reply)
    db.session.refresh(original)
    assert reply.thread_of == original.id
    assert (reply.visit_id, reply.rule_id, reply.channel) == (v.id, rule.id, "paid")
    assert original.counted and not reply.counted


def test_an_email_in_the_second_its_lease_began_goes_to_that_lease(shop, factory):
    """INTERNALDATE has whole seconds: 12:00:10 covers a lease that began at 12:00:10.4."""
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"])
    v = visit(account, site, 51)
    began = T0 + timedelta(seconds=10, milliseconds=400)
    assign(account, site, v, rule, "p1@shop.example", "pool", at=began,
           expires=began + timedelta(minutes=30))
    result = attribute(account.id, ["p1@shop.example"], T0 + timedelta(seconds=10))
    assert (result.visit_id, result.uncertain) == (v.id, None)
    assert attribute(account.id, ["p1@shop.example"], T0 + timedelta(seconds=9)).visit_id is None
