"""Rules: create each type, segments, validation, order, switches, list filters, isolation."""

import re

import pytest
from sqlalchemy import select

from tests.test_i18n import english_leftovers
from tracker.extensions import db
from tracker.models import PoolAddress, Rule, RuleCondition
from tracker.rules import received_domains


def rules_of(account_id):
    return db.session.scalars(
        select(Rule).where(Rule.account_id == account_id).order_by(Rule.priority, Rule.id)
    ).all()


@pytest.fixture
def block(factory, user):
    site = factory.site(user.account, name="Shop", domains=["shop.example"])
    return factory.block(user.account, name="Contacts", sites=[site])


def static_rule(block, **data):
    return {"name": "Everyone", "active": "y", "blocks": [block.id], "segment": "all",
            "kind": "static", "static_address": "info@shop.example", **data}


def test_pages_require_login(client):
    for url in ("/rules/", "/rules/new"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_create_static_rule_for_a_segment(logged_in, user, block):
    response = logged_in.post("/rules/new", data=static_rule(
        block, name=" Google Ads ", static_address="Ads@Shop.EXAMPLE", segment="conditions",
        **{"conditions-0-field": "utm_source", "conditions-0-operator": "equals",
           "conditions-0-value": " google ",
           "conditions-1-field": "", "conditions-1-operator": "equals", "conditions-1-value": "",
           "conditions-2-field": "channel", "conditions-2-operator": "equals",
           "conditions-2-value": "PAID"}))
    assert response.status_code == 302
    [rule] = rules_of(user.account_id)
    assert (rule.name, rule.kind, rule.dynamic_mode, rule.active) == ("Google Ads", "static", None, True)
    assert rule.static_address == "ads@shop.example"
    assert rule.match_all is False
    assert [(c.field, c.operator, c.value) for c in rule.conditions] == [
        ("utm_source", "equals", "google"), ("channel", "equals", "paid")]
    assert rule.block_ids == [block.id] and rule.priority == 1
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Rule “Google Ads” created." in page
    assert "utm_source equals <q>google</q>" in page and "Channel equals <q>Paid ads</q>" in page


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"dynamic_mode": "subaddress", "base_address": "Sales@Пример.РФ"},
         {"base_address": "sales@пример.рф", "fallback_address": None}),
        # Token rules may name a fallback address: what crawlers see.
        ({"dynamic_mode": "subaddress", "base_address": "sales@shop.example",
          "fallback_address": " Robots@Shop.example "},
         {"base_address": "sales@shop.example", "fallback_address": "robots@shop.example"}),
        ({"dynamic_mode": "catchall", "catchall_domain": "in.shop.example",
          "fallback_address": "robots@shop.example"},
         {"catchall_domain": "in.shop.example", "fallback_address": "robots@shop.example"}),
        ({"dynamic_mode": "catchall", "catchall_domain": "https://Track.Пример.рф/"},
         {"catchall_domain": "track.xn--e1afmkfd.xn--p1ai"}),
        ({"dynamic_mode": "pool", "reservation_minutes": "45", "fallback_address": "Main@shop.example",
          "pool_addresses": "a@shop.example\nB@Shop.example\n\na@SHOP.example, c@shop.example"},
         {"fallback_address": "main@shop.example", "reservation_minutes": 45,
          "pool_values": ["a@shop.example", "b@shop.example", "c@shop.example"]}),
    ],
)
def test_create_dynamic_rules(logged_in, user, block, data, expected):
    response = logged_in.post("/rules/new", data=static_rule(block, kind="dynamic", **data))
    assert response.status_code == 302, response.get_data(as_text=True)
    [rule] = rules_of(user.account_id)
    assert rule.kind == "dynamic" and rule.dynamic_mode == data["dynamic_mode"]
    assert rule.static_address is None
    for name, value in expected.items():
        assert getattr(rule, name) == value
    assert logged_in.get(f"/rules/{rule.id}").status_code == 200


def test_switching_type_clears_the_other_fields(logged_in, user, block):
    logged_in.post("/rules/new", data=static_rule(
        block, kind="dynamic", dynamic_mode="pool", pool_addresses="a@shop.example",
        fallback_address="f@shop.example", static_address="left@shop.example"))
    [rule] = rules_of(user.account_id)
    assert rule.static_address is None and rule.pool_values == ["a@shop.example"]
    logged_in.post(f"/rules/{rule.id}/edit", data=static_rule(block))
    db.session.expire_all()
    rule = db.session.get(Rule, rule.id)
    assert (rule.kind, rule.dynamic_mode, rule.fallback_address) == ("static", None, None)
    assert rule.static_address == "info@shop.example"
    assert db.session.scalars(select(PoolAddress)).all() == []


def test_editing_a_pool_keeps_the_rows_of_addresses_that_stay(logged_in, user, block, factory):
    rule = factory.rule(user.account, blocks=[block], mode="pool",
                        pool=["a@shop.example", "b@shop.example"], fallback_address="f@shop.example")
    kept = db.session.scalar(select(PoolAddress.id).where(PoolAddress.address == "b@shop.example"))
    response = logged_in.post(f"/rules/{rule.id}/edit", data=static_rule(
        block, kind="dynamic", dynamic_mode="pool", pool_addresses="B@shop.example\nc@shop.example",
        reservation_minutes="30", fallback_address="f@shop.example"))
    assert response.status_code == 302
    db.session.expire_all()
    rule = db.session.get(Rule, rule.id)
    assert rule.pool_values == ["b@shop.example", "c@shop.example"]
    assert rule.pool_addresses[0].id == kept


def test_edit_form_is_prefilled(logged_in, user, block, factory):
    rule = factory.rule(user.account, name="Prefilled", blocks=[block],
                        conditions=[("utm_medium", "contains", "mail")], address="p@shop.example")
    body = logged_in.get(f"/rules/{rule.id}/edit").get_data(as_text=True)
    assert 'value="Prefilled"' in body and 'value="p@shop.example"' in body
    assert '<option selected value="utm_medium">' in body and 'value="mail"' in body
    assert 'id="conditions-1"' in body  # an empty row for one more
    assert f'value="{block.id}" checked' in body


def test_new_form_preselects_blocks_from_the_url(logged_in, user, block):
    body = logged_in.get(f"/rules/new?block={block.id}&block=abc").get_data(as_text=True)
    assert f'value="{block.id}" checked' in body


BAD_INPUT = [
    ({"name": ""}, "Give the rule a name."),
    ({"name": "x" * 201}, "Keep the name under 200 characters."),
    ({"blocks": []}, "Choose at least one block."),
    ({"blocks": ["x"]}, "Invalid choice(s)"),
    ({"blocks": [999999]}, "not a valid choice"),
    ({"segment": "some"}, "Not a valid choice"),
    ({"segment": "conditions"}, "Add at least one condition, or choose all visitors."),
    ({"segment": "conditions", "conditions-0-field": "utm_nope", "conditions-0-operator": "equals",
      "conditions-0-value": "x"}, "Not a valid choice"),
    ({"segment": "conditions", "conditions-0-field": "utm_source",
      "conditions-0-operator": "like", "conditions-0-value": "x"}, "Not a valid choice"),
    ({"segment": "conditions", "conditions-0-field": "utm_source",
      "conditions-0-operator": "equals", "conditions-0-value": ""}, "Enter a value."),
    ({"segment": "conditions", "conditions-0-field": "utm_source",
      "conditions-0-operator": "equals", "conditions-0-value": "x" * 501}, "under 500 characters"),
    ({"segment": "conditions", "conditions-0-field": "landing_url",
      "conditions-0-operator": "regex", "conditions-0-value": "(unclosed"},
     "Not a valid regular expression."),
    ({"segment": "conditions", "conditions-0-field": "landing_url",
      "conditions-0-operator": "regex", "conditions-0-value": "(a+)+$"}, "can make matching hang"),
    ({"segment": "conditions", "conditions-0-field": "landing_url",
      "conditions-0-operator": "regex", "conditions-0-value": "a" * 201},
     "under 200 characters"),
    ({"segment": "conditions", "conditions-0-field": "channel",
      "conditions-0-operator": "equals", "conditions-0-value": "tv"}, "A channel is one of"),
    ({"segment": "conditions", "conditions-0-field": "referrer_domain",
      "conditions-0-operator": "equals", "conditions-0-value": "no such!"}, "Enter a domain"),
    ({"kind": "other"}, "Not a valid choice"),
    ({"static_address": ""}, "Enter the address to show."),
    ({"static_address": "not an address"}, "Enter a valid email address."),
    ({"static_address": "x@y"}, "Enter a valid email address."),
    ({"kind": "dynamic", "dynamic_mode": "nope"}, "Not a valid choice"),
    ({"kind": "dynamic", "dynamic_mode": "subaddress", "base_address": ""},
     "Enter the base address."),
    ({"kind": "dynamic", "dynamic_mode": "subaddress", "base_address": "a+b@shop.example"},
     "must not contain “+”"),
    ({"kind": "dynamic", "dynamic_mode": "subaddress", "base_address": "@shop.example"},
     "Enter a valid email address."),
    ({"kind": "dynamic", "dynamic_mode": "catchall", "catchall_domain": ""},
     "Enter the catch-all domain."),
    ({"kind": "dynamic", "dynamic_mode": "catchall", "catchall_domain": "in.shop.example",
      "fallback_address": "robots at shop"}, "Enter a valid email address."),
    ({"kind": "dynamic", "dynamic_mode": "catchall", "catchall_domain": "bad domain!"},
     "Enter a domain, such as example.com."),
    ({"kind": "dynamic", "dynamic_mode": "catchall", "catchall_domain": "localhost"},
     "Enter a domain, such as example.com."),
    ({"kind": "dynamic", "dynamic_mode": "catchall", "catchall_domain": "10.0.0.1"},
     "Enter a domain, such as example.com."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "pool_addresses": ""},
     "Enter at least one address."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "pool_addresses": "a@shop.example nope"},
     "Not an email address: nope."),
    ({"kind": "dynamic", "dynamic_mode": "pool",
      "pool_addresses": "\n".join(f"a{i}@shop.example" for i in range(501))},
     "at most 500 addresses"),
    ({"kind": "dynamic", "dynamic_mode": "pool", "pool_addresses": "x" * 100001}, "Too long."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "reservation_minutes": "soon"},
     "Enter a whole number of minutes from 1 to 10080."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "reservation_minutes": "0"}, "from 1 to 10080"),
    ({"kind": "dynamic", "dynamic_mode": "pool", "reservation_minutes": "²"}, "from 1 to 10080"),
    ({"kind": "dynamic", "dynamic_mode": "pool", "reservation_minutes": "10081"},
     "from 1 to 10080"),
    ({"kind": "dynamic", "dynamic_mode": "pool", "reservation_minutes": "9" * 5000},
     "from 1 to 10080"),
    ({"kind": "dynamic", "dynamic_mode": "pool", "fallback_address": ""},
     "Enter the fallback address."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "fallback_address": "fallback"},
     "Enter a valid email address."),
    ({"kind": "dynamic", "dynamic_mode": "pool", "fallback_address": "A@shop.example"},
     "must not be one of the pool addresses"),
]


@pytest.mark.parametrize(("data", "message"), BAD_INPUT)
def test_bad_input_is_an_inline_message(logged_in, user, block, data, message):
    valid = static_rule(block, pool_addresses="a@shop.example", reservation_minutes="30",
                        fallback_address="f@shop.example", base_address="s@shop.example",
                        catchall_domain="track.shop.example")
    response = logged_in.post("/rules/new", data={**valid, **data})
    body = response.get_data(as_text=True)
    assert response.status_code == 422, body
    assert message in body
    assert rules_of(user.account_id) == []


def test_missing_fields_are_inline_messages(logged_in, user):
    response = logged_in.post("/rules/new", data={})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Give the rule a name." in body and "Choose at least one block." in body
    assert "Enter the address to show." in body


def test_a_pool_address_belongs_to_one_rule(logged_in, user, block, factory):
    factory.rule(user.account, blocks=[block], mode="pool", pool=["taken@shop.example"],
                 fallback_address="f@shop.example")
    response = logged_in.post("/rules/new", data=static_rule(
        block, kind="dynamic", dynamic_mode="pool", pool_addresses="TAKEN@shop.example",
        reservation_minutes="30", fallback_address="g@shop.example"))
    assert response.status_code == 422
    assert "Already in the pool of another rule: taken@shop.example." in response.get_data(as_text=True)


def test_the_same_pool_address_in_another_account_is_fine(logged_in, user, block, factory):
    stranger = factory.account()
    factory.rule(stranger, mode="pool", pool=["a@shop.example"], fallback_address="f@shop.example")
    response = logged_in.post("/rules/new", data=static_rule(
        block, kind="dynamic", dynamic_mode="pool", pool_addresses="a@shop.example",
        reservation_minutes="30", fallback_address="f@shop.example"))
    assert response.status_code == 302


def test_add_and_remove_condition_rows_without_javascript(logged_in, user, block):
    data = static_rule(block, segment="all", **{
        "conditions-0-field": "utm_source", "conditions-0-operator": "equals",
        "conditions-0-value": "google"})
    added = logged_in.post("/rules/new", data={**data, "action": "add-condition"})
    body = added.get_data(as_text=True)
    assert added.status_code == 200 and 'id="conditions-1"' in body
    assert 'value="conditions" checked' in body or 'checked id="segment-1"' in body
    assert rules_of(user.account_id) == []
    removed = logged_in.post("/rules/new", data={
        **data, "conditions-1-field": "utm_medium", "conditions-1-operator": "equals",
        "conditions-1-value": "cpc", "action": "remove-condition-0"})
    body = removed.get_data(as_text=True)
    assert removed.status_code == 200
    assert 'id="conditions-0"' not in body and 'value="cpc"' in body
    assert rules_of(user.account_id) == []


def test_hostile_text_is_escaped(logged_in, user, block):
    hostile = "<img src=x onerror=alert(1)>"
    response = logged_in.post("/rules/new", data=static_rule(
        block, name=hostile, segment="conditions", **{
            "conditions-0-field": "utm_campaign", "conditions-0-operator": "contains",
            "conditions-0-value": hostile}))
    assert response.status_code == 302
    for url in ("/rules/", response.headers["Location"], "/rules/?q=img",
                response.headers["Location"] + "/edit"):
        body = logged_in.get(url).get_data(as_text=True)
        assert "<img src=x" not in body and "&lt;img src=x" in body, url
    bad = logged_in.post("/rules/new", data=static_rule(block, static_address=hostile))
    assert bad.status_code == 422 and "<img src=x" not in bad.get_data(as_text=True)


def test_new_rules_go_last_and_move_up_and_down(logged_in, user, block, factory):
    first, second, third = (factory.rule(user.account, name=n, blocks=[block]) for n in "ABC")
    response = logged_in.post("/rules/new", data=static_rule(block, name="D"))
    assert response.status_code == 302
    assert [r.name for r in rules_of(user.account_id)] == ["A", "B", "C", "D"]
    response = logged_in.post(f"/rules/{third.id}/move/up")
    assert response.status_code == 302 and response.headers["Location"] == "/rules/"
    db.session.expire_all()
    assert [r.name for r in rules_of(user.account_id)] == ["A", "C", "B", "D"]
    logged_in.post(f"/rules/{first.id}/move/up")  # already first: nothing changes
    logged_in.post(f"/rules/{first.id}/move/down")
    db.session.expire_all()
    assert [r.name for r in rules_of(user.account_id)] == ["C", "A", "B", "D"]
    assert logged_in.post(f"/rules/{first.id}/move/sideways").status_code == 404


def test_moving_works_even_when_priorities_collide(logged_in, user, block, factory):
    a = factory.rule(user.account, name="A", blocks=[block], priority=5)
    factory.rule(user.account, name="B", blocks=[block], priority=5)
    logged_in.post(f"/rules/{a.id}/move/down")
    db.session.expire_all()
    assert [r.name for r in rules_of(user.account_id)] == ["B", "A"]


def test_moving_in_a_filtered_list_swaps_with_the_visible_neighbour(logged_in, user, block,
                                                                    factory):
    factory.rule(user.account, name="Static one", blocks=[block])
    pool = factory.rule(user.account, name="Pool one", blocks=[block], mode="pool",
                        pool=["p@shop.example"], fallback_address="f@shop.example")
    factory.rule(user.account, name="Static two", blocks=[block])
    sub = factory.rule(user.account, name="Sub one", blocks=[block], mode="subaddress",
                       base_address="s@shop.example")
    response = logged_in.post(f"/rules/{sub.id}/move/up?type=dynamic",
                              headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in body and "<table" in body
    assert body.index("Sub one") < body.index("Pool one") and "Static one" not in body
    db.session.expire_all()
    assert [r.name for r in rules_of(user.account_id)] == [
        "Static one", "Sub one", "Static two", "Pool one"]
    plain = logged_in.post(f"/rules/{pool.id}/move/up?type=dynamic&q=one")
    assert plain.headers["Location"] == "/rules/?q=one&type=dynamic"


def test_active_switch(logged_in, user, block, factory):
    rule = factory.rule(user.account, name="Switchable", blocks=[block])
    response = logged_in.post(f"/rules/{rule.id}/active", data={"active": "0"},
                              headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith("<form")
    assert 'aria-checked="false"' in body and 'name="active" value="1"' in body
    db.session.expire_all()
    assert db.session.get(Rule, rule.id).active is False
    response = logged_in.post(f"/rules/{rule.id}/active?next=/rules/%3Factive%3Dno",
                              data={"active": "1"})
    assert response.headers["Location"] == "/rules/?active=no"
    db.session.expire_all()
    assert db.session.get(Rule, rule.id).active is True
    response = logged_in.post(f"/rules/{rule.id}/active?next=https://evil.example/",
                              data={"active": "1"})
    assert response.headers["Location"] == f"/rules/{rule.id}"
    assert logged_in.post(f"/rules/{rule.id}/active", data={"active": "maybe"}).status_code == 400
    assert logged_in.post(f"/rules/{rule.id}/active").status_code == 400


def test_delete_asks_then_deletes(logged_in, user, block, factory):
    rule = factory.rule(user.account, name="Doomed", blocks=[block],
                        conditions=[("utm_source", "equals", "x")])
    page = logged_in.get(f"/rules/{rule.id}/delete").get_data(as_text=True)
    assert "Delete rule “Doomed”?" in page
    response = logged_in.post(f"/rules/{rule.id}/delete")
    assert response.status_code == 302
    assert rules_of(user.account_id) == [] and db.session.scalars(select(RuleCondition)).all() == []


@pytest.fixture
def listed(user, factory):
    """Five rules over two sites and three blocks."""
    account = user.account
    shop = factory.site(account, name="Shop")
    blog = factory.site(account, name="Blog")
    contacts = factory.block(account, name="Контакты", sites=[shop])
    footer = factory.block(account, name="Footer", sites=[shop, blog])
    sidebar = factory.block(account, name="Sidebar", sites=[blog])
    factory.rule(account, name="Google", blocks=[contacts], address="google@shop.example")
    factory.rule(account, name="Yandex pool", blocks=[footer], mode="pool",
                 pool=["y1@shop.example", "y2@shop.example"], fallback_address="y@shop.example")
    factory.rule(account, name="Blog visitors", blocks=[sidebar], active=False,
                 address="blog@blog.example")
    factory.rule(account, name="Newsletter", blocks=[contacts, sidebar], mode="catchall",
                 catchall_domain="track.shop.example")
    factory.rule(account, name="Everyone", blocks=[footer], mode="subaddress",
                 base_address="sales@shop.example", active=False)
    return {"shop": shop, "blog": blog, "contacts": contacts, "footer": footer,
            "sidebar": sidebar}


NAMES = ("Google", "Yandex pool", "Blog visitors", "Newsletter", "Everyone")


def listed_names(client, query=""):
    body = client.get("/rules/" + query).get_data(as_text=True)
    return [name for name in NAMES if f">{name}</a>" in body]


def test_list_is_in_priority_order_with_places(logged_in, listed):
    body = logged_in.get("/rules/").get_data(as_text=True)
    assert listed_names(logged_in) == list(NAMES)
    positions = [body.index(f">{name}</a>") for name in NAMES]
    assert positions == sorted(positions)
    assert "<td>5</td>" in body


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("?q=google", ["Google"]),
        ("?q=Y2@SHOP", ["Yandex pool"]),
        ("?q=track.shop", ["Newsletter"]),
        ("?q=sales@", ["Everyone"]),
        ("?q=контакты", ["Google", "Newsletter"]),
        ("?q=blog", ["Blog visitors"]),
        ("?type=static", ["Google", "Blog visitors"]),
        ("?q=type:static", ["Google", "Blog visitors"]),
        ("?type=dynamic", ["Yandex pool", "Newsletter", "Everyone"]),
        ("?type=pool", ["Yandex pool"]),
        ("?q=type:catchall", ["Newsletter"]),
        ("?active=yes", ["Google", "Yandex pool", "Newsletter"]),
        ("?q=active:no", ["Blog visitors", "Everyone"]),
        ("?q=active:нет", ["Blog visitors", "Everyone"]),
        ("?q=block:footer", ["Yandex pool", "Everyone"]),
        ('?q=block:"Конт"', ["Google", "Newsletter"]),
        ("?q=site:blog", ["Yandex pool", "Blog visitors", "Newsletter", "Everyone"]),
        ("?q=site:blog active:yes type:dynamic pool", ["Yandex pool"]),
        ("?type=dynamic&active=no&q=sales", ["Everyone"]),
        ("?q=zzz", []),
    ],
)
def test_search_and_filters(logged_in, listed, query, names):
    assert listed_names(logged_in, query) == names


def test_select_filters_take_ids(logged_in, listed):
    assert listed_names(logged_in, f"?block={listed['sidebar'].id}") == [
        "Blog visitors", "Newsletter"]
    assert listed_names(logged_in, f"?site={listed['shop'].id}") == [
        "Google", "Yandex pool", "Newsletter", "Everyone"]
    assert listed_names(logged_in, f"?q=block:{listed['contacts'].id}") == ["Google", "Newsletter"]


def test_filters_keep_their_state_in_the_form_and_links(logged_in, listed, app):
    app.config["PAGE_SIZE"] = 1
    url = f"/rules/?q=sales&type=dynamic&block={listed['footer'].id}&site=&active=no"
    body = logged_in.get(url).get_data(as_text=True)
    assert 'value="sales"' in body
    assert '<option value="dynamic" selected>' in body
    assert f'<option value="{listed["footer"].id}" selected>' in body
    assert '<option value="no" selected>' in body
    assert "move/up?q=sales&amp;type=dynamic" in body
    assert "next=/rules/?q%3Dsales" in body or "next=%2Frules%2F%3Fq%3Dsales" in body


def test_bad_filter_values_are_reported_not_failed(logged_in, listed):
    body = logged_in.get("/rules/?type=banana&active=perhaps&block=%00&page=x").get_data(
        as_text=True)
    assert "Unknown value for type: banana. It was ignored." in body
    assert "Unknown value for active: perhaps. It was ignored." in body
    assert listed_names(logged_in, "?type=banana") == list(NAMES)
    assert "No rules match the search and filters." in logged_in.get(
        "/rules/?q=nothing-like-this").get_data(as_text=True)


def test_htmx_list_returns_the_results_fragment(logged_in, listed):
    response = logged_in.get("/rules/?q=google", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "<html" not in body and "Google" in body and "HX-Request" in response.headers["Vary"]


def test_warning_for_domains_no_mailbox_receives(logged_in, user, block, factory):
    # In this tree there are no mailboxes yet, so no domain is received.
    assert received_domains(user.account_id) == set()
    rule = factory.rule(user.account, blocks=[block], address="sales@shop.example")
    warning = ("No mailbox of yours receives mail for shop.example, so emails to "
               "sales@shop.example would never be seen.")
    assert warning in logged_in.get(f"/rules/{rule.id}").get_data(as_text=True)
    assert warning in logged_in.get(f"/rules/{rule.id}/edit").get_data(as_text=True)
    bad = logged_in.post("/rules/new", data=static_rule(block, name="", static_address="sales@shop.example"))
    assert bad.status_code == 422 and warning in bad.get_data(as_text=True)
    pool = factory.rule(user.account, blocks=[block], mode="pool", fallback_address="f@shop.example",
                        pool=[f"p{i}@shop.example" for i in range(5)])
    page = logged_in.get(f"/rules/{pool.id}").get_data(as_text=True)
    assert page.count("No mailbox of yours receives mail for shop.example") == 1
    assert "emails to p0@shop.example, p1@shop.example, p2@shop.example …" in page
    # A warning, not an error: the rule saves.
    assert logged_in.post("/rules/new", data=static_rule(block)).status_code == 302


def test_a_catch_all_domain_whose_emails_are_synced_is_received(logged_in, user, block,
                                                                 factory):
    # The mailbox's login is on another domain; the catch-all domain's mail reaches it.
    mailbox = factory.mailbox(user.account, factory.credential(user.account,
                                                               login="inbox@mail.example"))
    rule = factory.rule(user.account, blocks=[block], address="sales@shop.example")
    warning = "No mailbox of yours receives mail for shop.example"
    assert warning in logged_in.get(f"/rules/{rule.id}").get_data(as_text=True)
    assert received_domains(user.account_id, ["sales@shop.example"]) == {"mail.example"}
    # An email to the domain was synced (to another address of it, attributed or not).
    factory.email(mailbox, recipient="x7k2@shop.example")
    assert received_domains(user.account_id, ["sales@shop.example"]) == {
        "mail.example", "shop.example"}
    assert warning not in logged_in.get(f"/rules/{rule.id}").get_data(as_text=True)
    assert warning not in logged_in.get(f"/rules/{rule.id}/edit").get_data(as_text=True)


def test_a_tracked_address_counts_as_received_too(user, block, factory):
    mailbox = factory.mailbox(user.account, factory.credential(user.account,
                                                               login="inbox@mail.example"))
    factory.email(mailbox, recipient="inbox@mail.example", tracked_address="t1@promo.example")
    assert "promo.example" in received_domains(user.account_id, ["a@promo.example"])
    # Or any of its recipients (a copy to the catch-all domain).
    copy = factory.email(mailbox, recipient="inbox@mail.example")
    copy.recipients = ["inbox@mail.example", "k9@catch.example"]
    db.session.commit()
    assert "catch.example" in received_domains(user.account_id, ["a@catch.example"])
    assert "catch.exampl" not in received_domains(user.account_id, ["a@catch.exampl"])


def test_received_domains_match_the_whole_domain_only(user, factory):
    mailbox = factory.mailbox(user.account, factory.credential(user.account,
                                                               login="inbox@mail.example"))
    factory.email(mailbox, recipient="a@myshop.example")
    factory.email(mailbox, recipient="a@shop-example.org")
    # A wildcard character of LIKE in a domain is taken literally.
    assert received_domains(user.account_id, ["x@shop.example", "x@shop_example.org"]) == {
        "mail.example"}
    # Another account's emails say nothing about this account's mail.
    stranger = factory.account()
    other = factory.mailbox(stranger, factory.credential(stranger))
    factory.email(other, recipient="a@shop.example")
    assert "shop.example" not in received_domains(user.account_id, ["x@shop.example"])


def test_received_domains_of_an_idn_domain(user, factory):
    mailbox = factory.mailbox(user.account, factory.credential(user.account,
                                                               login="inbox@mail.example"))
    factory.email(mailbox, recipient="заявка@магазин.рф")
    ascii_domain = "xn--80aairftm.xn--p1ai"
    assert ascii_domain in received_domains(user.account_id, ["продажи@магазин.рф"])


RULE_ROUTES = [
    ("GET", "/rules/{id}"),
    ("GET", "/rules/{id}/edit"),
    ("POST", "/rules/{id}/edit"),
    ("GET", "/rules/{id}/delete"),
    ("POST", "/rules/{id}/delete"),
    ("POST", "/rules/{id}/active"),
    ("POST", "/rules/{id}/move/up"),
    ("POST", "/rules/{id}/move/down"),
]


@pytest.mark.parametrize(("method", "route"), RULE_ROUTES)
def test_another_accounts_rule_answers_404(logged_in, user, block, factory, method, route):
    stranger = factory.account()
    foreign = factory.rule(stranger, name="Foreign", address="their@shop.example")
    factory.rule(stranger, name="Their second")
    before = (foreign.name, foreign.active, foreign.priority, foreign.static_address)
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data={**static_rule(block, name="Hijacked"), "active": "0"})
    assert response.status_code == 404
    db.session.expire_all()
    after = db.session.get(Rule, foreign.id)
    assert (after.name, after.active, after.priority, after.static_address) == before


def test_another_accounts_block_cannot_be_chosen(logged_in, user, block, factory):
    foreign_block = factory.block(factory.account())
    response = logged_in.post("/rules/new", data=static_rule(block, blocks=[foreign_block.id]))
    assert response.status_code == 422
    assert rules_of(user.account_id) == []


def test_own_rule_cannot_swap_with_a_foreign_one(logged_in, user, block, factory):
    mine = factory.rule(user.account, name="Mine", blocks=[block])
    theirs = factory.rule(factory.account(), name="Theirs", priority=0)
    logged_in.post(f"/rules/{mine.id}/move/up")
    db.session.expire_all()
    assert db.session.get(Rule, theirs.id).priority == 0


def test_list_shows_only_own_rules(logged_in, user, block, factory):
    factory.rule(user.account, name="Mine", blocks=[block])
    factory.rule(factory.account(), name="Theirs")
    body = logged_in.get("/rules/").get_data(as_text=True)
    assert "Mine" in body and "Theirs" not in body
    assert ">Theirs</a>" not in logged_in.get("/rules/?q=Theirs").get_data(as_text=True)


RU = {"Accept-Language": "ru-RU,ru;q=0.9"}


def test_blocks_and_rules_pages_are_russian(logged_in, user, factory):
    site = factory.site(user.account, name="Магазин")
    code = factory.block(user.account, name="Контакты", sites=[site])
    element = factory.block(user.account, name="Подвал", sites=[site], selector="#mail")
    pool = factory.rule(user.account, name="Пул", blocks=[code], mode="pool",
                        pool=["a@shop.example"], fallback_address="f@shop.example",
                        conditions=[("channel", "equals", "paid"), ("utm_term", "empty", "")])
    static = factory.rule(user.account, name="Все", blocks=[element], active=False)
    pages = ["/blocks/", "/blocks/?q=zzz", "/blocks/?q=type:x", "/blocks/new",
             f"/blocks/{code.id}", f"/blocks/{element.id}", f"/blocks/{code.id}/edit",
             f"/blocks/{element.id}/edit", f"/blocks/{code.id}/delete",
             "/rules/", "/rules/?q=zzz", "/rules/?type=x", "/rules/new", f"/rules/{pool.id}",
             f"/rules/{static.id}", f"/rules/{pool.id}/edit", f"/rules/{static.id}/edit",
             f"/rules/{pool.id}/delete"]
    for url in pages:
        response = logged_in.get(url, headers=RU)
        html = response.get_data(as_text=True)
        assert response.status_code == 200, url
        assert '<html lang="ru">' in html, url
        assert english_leftovers(html) == [], url
    htmx = {**RU, "HX-Request": "true"}
    fragments = [
        logged_in.get("/blocks/new?modal=1", headers=htmx),
        logged_in.get("/blocks/selector?attribute_kind=id&attribute_value=a+b", headers=htmx),
        logged_in.post("/rules/new", data={}, headers=RU),
        logged_in.post("/blocks/new", data={"placement": "element"}, headers=RU),
        logged_in.post("/rules/new", headers=RU, data=static_rule(
            code, segment="conditions", kind="dynamic", dynamic_mode="pool",
            pool_addresses="bad", reservation_minutes="x", **{
                "conditions-0-field": "landing_url", "conditions-0-operator": "regex",
                "conditions-0-value": "("})),
        logged_in.post(f"/rules/{pool.id}/active", data={"active": "0"}, headers=htmx),
    ]
    for response in fragments:
        html = response.get_data(as_text=True)
        assert english_leftovers(html) == [], html
    assert re.search("Укажите|Введите|Выберите", fragments[2].get_data(as_text=True))


def test_huge_numbers_are_not_found_rather_than_errors(logged_in, user, block):
    huge = "9" * 30
    for url in (f"/rules/{huge}", f"/rules/{huge}/edit", f"/blocks/{huge}", f"/sites/{huge}"):
        assert logged_in.get(url).status_code == 404, url
    assert logged_in.post(f"/rules/{huge}/move/up").status_code == 404
    for url in (f"/rules/?block={huge}", f"/rules/?site={huge}", f"/rules/?q=block:{huge}",
                f"/blocks/?site={huge}", f"/rules/new?block={huge}"):
        assert logged_in.get(url).status_code == 200, url
    response = logged_in.post("/rules/new", data=static_rule(block, blocks=[huge]))
    assert response.status_code == 422


def test_an_address_another_rule_uses_is_warned_about_with_the_rule_that_wins(
        logged_in, user, block, factory):
    from datetime import datetime

    from tracker.attribution import attribute

    account = user.account
    pool = factory.rule(account, name="Pool", blocks=[block], mode="pool", priority=1,
                        pool=["p1@shop.example"], fallback_address="info@shop.example")
    static = factory.rule(account, name="Static", blocks=[block], priority=2,
                          address="info@shop.example")
    later = "Emails to it go to rule “Pool”: it comes first in priority order"
    page = logged_in.get(f"/rules/{static.id}").get_data(as_text=True)
    assert "info@shop.example is also the fallback address of rule “Pool”." in page
    assert later in page and f'href="/rules/{pool.id}"' in page
    page = logged_in.get(f"/rules/{pool.id}/edit").get_data(as_text=True)
    assert "info@shop.example is also the static address of rule “Static”." in page
    assert "Emails to it go to this rule: it comes first in priority order" in page
    # Attribution agrees with the warning.
    at = datetime(2026, 11, 1, 12)
    assert attribute(account.id, ["info@shop.example"], at).rule_id == pool.id
    # A new rule (last in priority order) with a pool address of another rule.
    response = logged_in.post("/rules/new", data=static_rule(
        block, name="", static_address="p1@shop.example"))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "p1@shop.example is also a pool address of rule “Pool”." in body
    assert later in body
    # Deactivate the pool rule: the static rule wins, says the warning and does attribution.
    pool.active = False
    db.session.commit()
    page = logged_in.get(f"/rules/{static.id}").get_data(as_text=True)
    assert "Emails to it go to this rule: it comes first in priority order" in page
    assert attribute(account.id, ["info@shop.example"], at).rule_id == static.id
    # The form's own state counts: the static rule switched off in the form loses again.
    response = logged_in.post(f"/rules/{static.id}/edit", data=static_rule(
        block, name="", static_address="info@shop.example", active=""))
    assert later in response.get_data(as_text=True)


def test_no_shared_address_warning_for_a_rule_alone(logged_in, user, block, factory):
    rule = factory.rule(user.account, name="Alone", blocks=[block], address="solo@shop.example")
    assert "is also the" not in logged_in.get(f"/rules/{rule.id}").get_data(as_text=True)
