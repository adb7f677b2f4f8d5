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
