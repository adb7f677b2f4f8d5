"""Blocks: list, search, create (both kinds), edit, delete, the dialog, and account isolation."""

import pytest
from sqlalchemy import select

from tracker.extensions import db
from tracker.models import Block, BlockAddress


def blocks_of(account_id):
    return db.session.scalars(select(Block).where(Block.account_id == account_id)).all()


@pytest.fixture
def site(factory, user):
    return factory.site(user.account, name="Shop", domains=["shop.example"])


def code_block(site, **data):
    return {"name": "Contacts", "sites": [site.id], "placement": "code",
            "addresses": "info@shop.example", **data}


def element_block(site, **data):
    return {"name": "Footer", "sites": [site.id], "placement": "element",
            "attribute_kind": "id", "attribute_value": "contact-email", **data}


def test_pages_require_login(client):
    for url in ("/blocks/", "/blocks/new", "/blocks/selector"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_create_find_in_code_block(logged_in, user, site):
    response = logged_in.post("/blocks/new", data=code_block(
        site, name="  Контактная почта ",
        addresses="Info@Shop.example\ninfo@shop.example, sales@пример.рф"))
    assert response.status_code == 302
    [block] = blocks_of(user.account_id)
    assert block.name == "Контактная почта"
    assert block.placement == "code" and block.selector is None
    # As they appear on the site (the script looks for them), without duplicates.
    assert block.address_values == ["Info@Shop.example", "sales@пример.рф"]
    assert block.site_ids == [site.id]
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Block “Контактная почта” created." in page and "sales@пример.рф" in page


@pytest.mark.parametrize(
    ("data", "selector"),
    [
        ({"attribute_kind": "id", "attribute_value": "contact-email"}, "#contact-email"),
        ({"attribute_kind": "id", "attribute_value": "1st"}, "#\\31 st"),
        ({"attribute_kind": "class", "attribute_value": "footer  mail"}, ".footer.mail"),
        ({"attribute_kind": "other", "attribute_name": "data-role",
          "attribute_value": 'say "hi"'}, '[data-role="say \\"hi\\""]'),
    ],
)
def test_create_element_block_builds_the_selector(logged_in, user, site, data, selector):
    response = logged_in.post("/blocks/new", data=element_block(site, **data))
    assert response.status_code == 302
    [block] = blocks_of(user.account_id)
    assert block.selector == selector and block.addresses == []
    assert block.attribute_name == (data.get("attribute_name"))
    page = logged_in.get(f"/blocks/{block.id}").get_data(as_text=True)
    assert "The element&#39;s whole text" in page or "The element's whole text" in page


def test_element_block_with_an_address_inside(logged_in, user, site):
    logged_in.post("/blocks/new", data=element_block(site, replace_address=" Info@Shop.example "))
    [block] = blocks_of(user.account_id)
    assert block.replace_address == "Info@Shop.example"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "Give the block a name."),
        ({"name": "x" * 201}, "Keep the name under 200 characters."),
        ({"sites": []}, "Choose at least one site."),
        ({"sites": ["abc"]}, "Invalid choice(s)"),
        ({"sites": [999999]}, "not a valid choice"),
        ({"placement": "somewhere"}, "Not a valid choice"),
        ({"addresses": ""}, "Enter at least one address."),
        ({"addresses": "info@shop.example\nnot-an-address"}, "Not an email address: not-an-address."),
        ({"addresses": "a@ b@"}, "Not email addresses: a@, b@."),
        ({"addresses": " ".join(f"a{i}@shop.example" for i in range(21))}, "at most 20 addresses"),
        ({"addresses": "x" * 10001}, "Too long."),
        ({"placement": "element", "attribute_value": ""}, "Enter the attribute's value."),
        ({"placement": "element", "attribute_value": "two words"}, "An id cannot contain spaces."),
        ({"placement": "element", "attribute_value": "a\x07"}, "control characters"),
        ({"placement": "element", "attribute_kind": "other", "attribute_name": "",
          "attribute_value": "x"}, "Enter an attribute name"),
        ({"placement": "element", "attribute_kind": "other", "attribute_name": "on click",
          "attribute_value": "x"}, "Enter an attribute name"),
        ({"placement": "element", "attribute_kind": "other", "attribute_name": "a" * 101,
          "attribute_value": "x"}, "under 100 characters"),
        ({"placement": "element", "attribute_kind": "tag", "attribute_value": "x"},
         "Not a valid choice"),
        ({"placement": "element", "attribute_value": "x" * 501}, "under 500 characters"),
        ({"placement": "element", "replace_address": "nope"}, "Enter a valid email address."),
        ({"placement": "element", "replace_address": "x" * 321}, "Too long."),
    ],
)
def test_bad_input_is_an_inline_message(logged_in, user, site, data, message):
    response = logged_in.post("/blocks/new", data={**element_block(site), **code_block(site),
                                                    **data})
    body = response.get_data(as_text=True)
    assert response.status_code == 422, body
    assert message in body
    assert blocks_of(user.account_id) == []


def test_missing_fields_are_inline_messages(logged_in, user):
    response = logged_in.post("/blocks/new", data={})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Give the block a name." in body and "Choose at least one site." in body


def test_hostile_text_is_escaped(logged_in, user, site):
    hostile = "<img src=x onerror=alert(1)>"
    response = logged_in.post("/blocks/new", data=element_block(
        site, name=hostile, attribute_kind="other", attribute_name="data-x",
        attribute_value=hostile))
    assert response.status_code == 302
    for url in ("/blocks/", response.headers["Location"], "/blocks/?q=img"):
        body = logged_in.get(url).get_data(as_text=True)
        assert "<img src=x" not in body and "&lt;img src=x" in body
    bad = logged_in.post("/blocks/new", data=code_block(site, addresses=hostile))
    assert bad.status_code == 422 and "<img" not in bad.get_data(as_text=True)


def test_edit_keeps_rows_and_switching_kind_clears_the_other(logged_in, user, site, factory):
    block = factory.block(user.account, sites=[site], addresses=["a@shop.example", "b@shop.example"])
    kept = db.session.scalar(select(BlockAddress.id).where(BlockAddress.address == "b@shop.example"))
    response = logged_in.post(f"/blocks/{block.id}/edit", data=code_block(
        site, name="Renamed", addresses="b@shop.example\nc@shop.example"))
    assert response.status_code == 302
    db.session.expire_all()
    block = db.session.get(Block, block.id)
    assert block.name == "Renamed" and block.address_values == ["b@shop.example", "c@shop.example"]
    assert block.addresses[0].id == kept
    logged_in.post(f"/blocks/{block.id}/edit", data=element_block(site, attribute_kind="class",
                                                                  attribute_value="mail"))
    db.session.expire_all()
    block = db.session.get(Block, block.id)
    assert block.placement == "element" and block.selector == ".mail"
    assert db.session.scalars(select(BlockAddress)).all() == []
    logged_in.post(f"/blocks/{block.id}/edit", data=code_block(site))
    db.session.expire_all()
    block = db.session.get(Block, block.id)
    assert (block.selector, block.attribute_kind, block.attribute_value) == (None, None, None)


def test_edit_form_is_prefilled(logged_in, user, site, factory):
    block = factory.block(user.account, name="Prefilled", sites=[site], addresses=["p@shop.example"])
    body = logged_in.get(f"/blocks/{block.id}/edit").get_data(as_text=True)
    assert 'value="Prefilled"' in body and "p@shop.example" in body
    assert f'<input checked id="sites-0" name="sites" type="checkbox" value="{site.id}">' in body


def test_delete_asks_then_deletes_and_warns_about_orphaned_rules(logged_in, user, site, factory):
    block = factory.block(user.account, name="Doomed", sites=[site])
    other = factory.block(user.account, sites=[site])
    factory.rule(user.account, name="Lonely rule", blocks=[block])
    factory.rule(user.account, name="Shared rule", blocks=[block, other])
    page = logged_in.get(f"/blocks/{block.id}/delete").get_data(as_text=True)
    assert "Delete block “Doomed”?" in page and "Lonely rule" in page
    response = logged_in.post(f"/blocks/{block.id}/delete")
    assert response.status_code == 302
    assert [b.id for b in blocks_of(user.account_id)] == [other.id]
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "These rules have no block left and show nothing: Lonely rule." in page
    assert "Shared rule" not in page.split("no block left")[1].split("</p>")[0]


def test_search_and_site_filter(logged_in, user, factory, app):
    app.config["PAGE_SIZE"] = 2
    shop = factory.site(user.account, name="Shop")
    blog = factory.site(user.account, name="Blog")
    factory.block(user.account, name="Контактная почта", sites=[shop], addresses=["hi@shop.example"])
    factory.block(user.account, name="Footer", sites=[blog], selector="#footer-mail")
    factory.block(user.account, name="Header", sites=[shop, blog], addresses=["top@blog.example"])

    def names(url):
        body = logged_in.get(url).get_data(as_text=True)
        return [n for n in ("Контактная почта", "Footer", "Header") if f">{n}</a>" in body]

    assert names("/blocks/") == ["Footer", "Header"]
    assert names("/blocks/?page=2") == ["Контактная почта"]
    assert names("/blocks/?q=КОНТАКТ") == ["Контактная почта"]
    assert names("/blocks/?q=footer-mail") == ["Footer"]
    assert names("/blocks/?q=top@blog") == ["Header"]
    assert names(f"/blocks/?site={blog.id}") == ["Footer", "Header"]
    assert names("/blocks/?q=site:shop") == ["Контактная почта", "Header"]
    assert names("/blocks/?q=site:shop type:code контакт") == ["Контактная почта"]
    assert names("/blocks/?q=type:element") == ["Footer"]
    assert names("/blocks/?site=999999") == []
    assert "No blocks match the search." in logged_in.get("/blocks/?q=zzz").get_data(as_text=True)
    body = logged_in.get("/blocks/?q=type:banana").get_data(as_text=True)
    assert "Unknown value for type: banana. It was ignored." in body
    assert logged_in.get("/blocks/?q=100%25_").status_code == 200
    assert logged_in.get("/blocks/?site=abc&page=-1").status_code == 200


def test_htmx_search_returns_the_results_fragment(logged_in, user, site, factory):
    factory.block(user.account, name="Fragmented", sites=[site])
    response = logged_in.get("/blocks/?q=frag", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "Fragmented" in body and "<html" not in body and "<table" in body
    assert "HX-Request" in response.headers["Vary"]


def test_selector_preview(logged_in):
    body = logged_in.get("/blocks/selector?attribute_kind=other&attribute_name=data-x"
                         "&attribute_value=a%22b").get_data(as_text=True)
    assert '[data-x=&#34;a\\&#34;b&#34;]' in body or '[data-x="a\\"b"]' in body
    body = logged_in.get("/blocks/selector?attribute_kind=id&attribute_value=a+b").get_data(
        as_text=True)
    assert "An id cannot contain spaces." in body
    body = logged_in.get("/blocks/selector?prefix=block&block-attribute_kind=class"
                         "&block-attribute_value=x").get_data(as_text=True)
    assert "<code>.x</code>" in body and 'id="blockselector-preview"' in body
    assert "<code>" not in logged_in.get("/blocks/selector").get_data(as_text=True)


def test_dialog_creates_a_block_and_returns_the_rule_forms_blocks(logged_in, user, site, factory):
    existing = factory.block(user.account, name="Existing", sites=[site])
    other = factory.block(user.account, name="Other", sites=[site])
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://localhost/rules/new"}
    dialog = logged_in.get("/blocks/new?modal=1", headers=htmx).get_data(as_text=True)
    assert dialog.lstrip().startswith("{#") is False and "<dialog open" in dialog
    assert 'name="block-name"' in dialog
    bad = logged_in.post("/blocks/new?modal=1", headers=htmx, data={"block-name": ""})
    assert bad.status_code == 422 and "<dialog open" in bad.get_data(as_text=True)
    assert "Give the block a name." in bad.get_data(as_text=True)
    response = logged_in.post("/blocks/new?modal=1", headers=htmx, data={
        "block-name": "From dialog", "block-sites": [site.id], "block-placement": "code",
        "block-addresses": "d@shop.example", "blocks": [existing.id]})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    created = db.session.scalar(select(Block).where(Block.name == "From dialog"))
    assert 'id="rule-blocks" hx-swap-oob="outerHTML"' in body
    assert f'value="{created.id}" checked' in body and f'value="{existing.id}" checked' in body
    assert f'value="{other.id}" >' in body
    assert "/blocks/new?next=/rules/new" in body
    assert "<dialog" not in body


def test_without_js_a_new_block_comes_back_to_the_rule_form(logged_in, user, site):
    form = logged_in.get("/blocks/new?next=/rules/new").get_data(as_text=True)
    assert 'action="/blocks/new?next=/rules/new"' in form
    response = logged_in.post("/blocks/new?next=/rules/7/edit", data=code_block(site))
    [block] = blocks_of(user.account_id)
    assert response.headers["Location"] == f"/rules/7/edit?block={block.id}"


@pytest.mark.parametrize("target", ["https://evil.example/rules/", "//evil.example/rules/",
                                    "/sites/", "/rules/\\evil", "javascript:alert(1)"])
def test_next_never_leaves_the_rule_pages(logged_in, user, site, target):
    response = logged_in.post("/blocks/new", query_string={"next": target}, data=code_block(site))
    [block] = blocks_of(user.account_id)
    assert response.headers["Location"] == f"/blocks/{block.id}"


BLOCK_ROUTES = [
    ("GET", "/blocks/{id}"),
    ("GET", "/blocks/{id}/edit"),
    ("POST", "/blocks/{id}/edit"),
    ("GET", "/blocks/{id}/delete"),
    ("POST", "/blocks/{id}/delete"),
]


@pytest.mark.parametrize(("method", "route"), BLOCK_ROUTES)
def test_another_accounts_block_answers_404(logged_in, user, factory, method, route):
    stranger = factory.account()
    foreign = factory.block(stranger, name="Foreign", addresses=["their@shop.example"])
    own_site = factory.site(user.account)
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data=code_block(own_site, name="Hijacked"))
    assert response.status_code == 404
    db.session.expire_all()
    after = db.session.get(Block, foreign.id)
    assert (after.name, after.address_values) == ("Foreign", ["their@shop.example"])


def test_another_accounts_site_cannot_be_chosen(logged_in, user, factory):
    foreign_site = factory.site(factory.account())
    response = logged_in.post("/blocks/new", data=code_block(foreign_site))
    assert response.status_code == 422
    assert blocks_of(user.account_id) == []


def test_list_shows_only_own_blocks(logged_in, user, factory):
    factory.block(user.account, name="Mine")
    factory.block(factory.account(), name="Theirs")
    body = logged_in.get("/blocks/").get_data(as_text=True)
    assert "Mine" in body and "Theirs" not in body


def test_missing_block_is_404(logged_in):
    assert logged_in.get("/blocks/999999").status_code == 404
