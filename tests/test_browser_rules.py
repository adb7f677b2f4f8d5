"""In a real browser: blocks of each kind, static and dynamic rules, the list's search and filters."""

import re

import pytest
from playwright.sync_api import expect

from tests.test_browser_sites import sign_in
from tracker.extensions import db
from tracker.models import Block, Rule
from tracker.selectors import build_selector


def test_create_blocks_of_each_kind(page, live_server, user, factory):
    factory.site(user.account, name="Flower shop")
    sign_in(page, live_server, user)
    page.get_by_role("link", name="Blocks").click()
    page.get_by_role("button", name="Add block").click()
    page.get_by_label(re.compile(r"^Name")).fill("Контактная почта")
    page.get_by_label("Flower shop").check()
    page.get_by_label("Find the address in the page code").check()
    page.get_by_label("Addresses as they appear on the site").fill("Info@Flowers.example\nnope")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Not an email address: nope.")).to_be_visible()
    page.get_by_label("Addresses as they appear on the site").fill("Info@Flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Контактная почта")).to_be_visible()
    expect(page.get_by_text("Info@Flowers.example")).to_be_visible()

    page.goto(f"{live_server.url}/blocks/new")
    page.get_by_label(re.compile(r"^Name")).fill("Footer")
    page.get_by_label("Flower shop").check()
    page.get_by_label("An element of the page", exact=True).check()
    expect(page.get_by_label("Addresses as they appear on the site")).to_be_hidden()
    page.get_by_role("radio", name="Another attribute").check()
    page.get_by_label("Attribute name").fill("data-role")
    page.get_by_label(re.compile(r"^Value")).fill('say "hi"')
    # The selector is built and shown as the admin types.
    expect(page.locator(".selector-preview code")).to_have_text('[data-role="say \\"hi\\""]')
    page.get_by_role("radio", name="Attribute id").check()
    expect(page.get_by_label("Attribute name")).to_be_hidden()
    expect(page.get_by_text("An id cannot contain spaces.")).to_be_visible()
    page.get_by_label(re.compile(r"^Value")).fill("2nd-mail")
    expect(page.locator(".selector-preview code")).to_have_text("#\\32 nd-mail")
    page.get_by_label("Address inside the element").fill("info@flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Footer")).to_be_visible()
    expect(page.locator("#block-selector")).to_have_text("#\\32 nd-mail")


def test_create_a_static_rule_for_a_segment(page, live_server, user, factory):
    factory.block(user.account, name="Contacts")
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/rules/")
    page.get_by_role("button", name="Add rule").click()
    page.get_by_label(re.compile(r"^Name")).fill("Google Ads")
    page.get_by_label("Contacts").check()
    expect(page.locator(".conditions")).to_be_hidden()
    page.get_by_label("Visitors that meet every condition").check()
    page.locator("#conditions-0-field").select_option("landing_url")
    page.locator("#conditions-0-operator").select_option("regex")
    page.locator("#conditions-0-value").fill("(a+)+$")
    page.get_by_role("button", name="Add condition").click()
    page.locator("#conditions-1-field").select_option("utm_source")
    page.locator("#conditions-1-value").fill("google")
    page.get_by_label("Address", exact=True).fill("ads@flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("can make matching hang")).to_be_visible()
    page.locator("#conditions-0-value").fill(r"/contacts?$")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Google Ads")).to_be_visible()
    expect(page.get_by_text("Rule “Google Ads” created.")).to_be_visible()
    expect(page.locator("dd").filter(has_text="utm_source")).to_contain_text(
        "Landing page URL matches regex /contacts?$ and utm_source equals google")
    # No mailbox receives for the domain in this tree: a warning, not an error.
    expect(page.get_by_text("No mailbox of yours receives mail for flowers.example")).to_be_visible()


def test_create_a_dynamic_rule_with_a_new_block_from_the_form(page, live_server, user, factory):
    factory.site(user.account, name="Flower shop")
    factory.block(user.account, name="Existing block")
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/rules/new")
    page.get_by_label(re.compile(r"^Name")).fill("VK pool")
    page.get_by_label("Existing block").check()
    page.get_by_role("link", name="New block").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Create block").click()
    expect(dialog.get_by_text("Give the block a name.")).to_be_visible()
    dialog.get_by_label(re.compile(r"^Name")).fill("Header email")
    dialog.get_by_label("Flower shop").check()
    dialog.get_by_label("Addresses as they appear on the site").fill("hello@flowers.example")
    dialog.get_by_role("button", name="Create block").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    # Back in the unsaved rule form: the new block is ticked, nothing typed is lost.
    expect(page.get_by_label("Header email")).to_be_checked()
    expect(page.get_by_label("Existing block")).to_be_checked()
    expect(page.get_by_label(re.compile(r"^Name"))).to_have_value("VK pool")

    page.get_by_label("Dynamic: a unique address for each visitor").check()
    expect(page.get_by_label("Address", exact=True)).to_be_hidden()
    page.get_by_label("Pool of real addresses").check()
    page.get_by_label("Pool addresses").fill("vk1@flowers.example\nVK1@flowers.example\nvk2@flowers.example")
    expect(page.get_by_label("Reservation, minutes")).to_have_value("30")
    page.get_by_label("Fallback address").fill("vk@flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="VK pool")).to_be_visible()
    expect(page.locator("dd ul li")).to_have_text(["vk1@flowers.example", "vk2@flowers.example"])
    with db.session.no_autoflush:
        rule = db.session.scalar(db.select(Rule).where(Rule.name == "VK pool"))
        assert sorted(b.name for b in rule.blocks) == ["Existing block", "Header email"]
        assert db.session.scalar(db.select(db.func.count(Block.id))) == 2


def test_create_a_sub_address_rule(page, live_server, user, factory):
    factory.block(user.account, name="Contacts")
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/rules/new")
    page.get_by_label(re.compile(r"^Name")).fill("Everyone unique")
    page.get_by_label("Contacts").check()
    page.get_by_label("Dynamic: a unique address for each visitor").check()
    page.get_by_label("Base address").fill("sales+x@flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("The base address must not contain “+”.")).to_be_visible()
    page.get_by_label("Base address").fill("Sales@Flowers.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("sales+TOKEN@flowers.example")).to_be_visible()


@pytest.fixture
def listed(user, factory):
    shop = factory.site(user.account, name="Shop")
    blog = factory.site(user.account, name="Blog")
    contacts = factory.block(user.account, name="Contacts", sites=[shop])
    sidebar = factory.block(user.account, name="Sidebar", sites=[blog])
    factory.rule(user.account, name="Google", blocks=[contacts], address="google@shop.example")
    factory.rule(user.account, name="Pool rule", blocks=[contacts], mode="pool",
                 pool=["p1@shop.example"], fallback_address="p@shop.example")
    factory.rule(user.account, name="Blog rule", blocks=[sidebar], active=False,
                 address="blog@blog.example")
    return {"shop": shop, "blog": blog}


def names(page):
    return page.locator("#results tbody tr td:nth-child(2)")


def test_search_and_filters_narrow_the_list_and_survive_a_reload(page, live_server, user, listed):
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/rules/")
    expect(names(page)).to_have_text(["Google", "Pool rule", "Blog rule"])
    page.get_by_label("Type").select_option("dynamic")
    expect(names(page)).to_have_text(["Pool rule"])
    page.get_by_label("Type").select_option("")
    page.get_by_label("Site").select_option(label="Blog")
    expect(names(page)).to_have_text(["Blog rule"])
    page.get_by_label("Site").select_option("")
    page.get_by_label("Status").select_option("yes")
    page.get_by_placeholder("Search by name, address or block").press_sequentially("contacts")
    expect(names(page)).to_have_text(["Google", "Pool rule"])
    page.get_by_placeholder("Search by name, address or block").fill("contacts type:static")
    expect(names(page)).to_have_text(["Google"])
    expect(page).to_have_url(re.compile(r"/rules/\?q=contacts(%20|\+)type(%3A|:)static&.*active=yes"))
    page.reload()
    expect(names(page)).to_have_text(["Google"])
    expect(page.get_by_label("Status")).to_have_value("yes")
    expect(page.get_by_placeholder("Search by name, address or block")).to_have_value(
        "contacts type:static")


def test_switches_and_order_change_in_place(page, live_server, user, listed):
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/rules/")
    switch = page.get_by_role("switch", name="Active: Google")
    expect(switch).to_have_attribute("aria-checked", "true")
    switch.click()
    expect(page.get_by_role("switch", name="Active: Google")).to_have_attribute("aria-checked", "false")
    page.get_by_role("button", name="Move up: Blog rule").click()
    expect(names(page)).to_have_text(["Google", "Blog rule", "Pool rule"])
    page.get_by_role("button", name="Move up: Blog rule").click()
    expect(names(page)).to_have_text(["Blog rule", "Google", "Pool rule"])
    expect(page.get_by_role("button", name="Move up: Blog rule")).to_be_disabled()
    page.reload()
    expect(names(page)).to_have_text(["Blog rule", "Google", "Pool rule"])
    expect(page.get_by_role("switch", name="Active: Google")).to_have_attribute("aria-checked", "false")


def test_the_list_works_without_javascript(browser, live_server, user, listed):
    context = browser.new_context(locale="en-US", java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server, user)
        page.goto(f"{live_server.url}/rules/")
        page.get_by_label("Type").select_option("static")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"type=static"))
        expect(names(page)).to_have_text(["Google", "Blog rule"])
        page.get_by_role("switch", name="Active: Blog rule").click()
        expect(page.get_by_text("Rule “Blog rule” is on.")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/rules/\?type=static$"))
        page.get_by_role("button", name="Move up: Blog rule").click()
        expect(names(page)).to_have_text(["Blog rule", "Google"])
        page.goto(f"{live_server.url}/rules/new")
        page.get_by_label("Visitors that meet every condition").check()
        page.get_by_role("button", name="Add condition").click()
        expect(page.locator("#conditions-1-field")).to_be_visible()
    finally:
        context.close()


SELECTOR_CASES = [
    ("id", "contact-email", None, 'id="contact-email"'),
    ("id", "2nd", None, 'id="2nd"'),
    ("id", "a:b.c", None, 'id="a:b.c"'),
    ("id", "почта", None, 'id="почта"'),
    ("id", "back\\slash", None, 'id="back\\slash"'),
    ("class", "mail  footer", None, 'class="footer mail x"'),
    ("class", "w-1/2", None, 'class="w-1/2"'),
    ("other", 'say "hi"', "data-role", 'data-role=\'say "hi"\''),
    ("other", "it's", "data-x", 'data-x="it&#39;s"'),
    ("other", "two words", "itemprop", 'itemprop="two words"'),
    ("other", "line\nbreak", "title", 'title="line&#10;break"'),
    ("other", "a\\b", "data-path", 'data-path="a\\b"'),
]


def test_built_selectors_find_the_element_in_a_real_page(page):
    html = "".join(f"<p {attrs}>target {n}</p><p>decoy</p>"
                   for n, (_, _, _, attrs) in enumerate(SELECTOR_CASES))
    page.set_content(f"<!doctype html><body>{html}</body>")
    for n, (kind, value, name, _) in enumerate(SELECTOR_CASES):
        selector = build_selector(kind, value, name)
        found = page.evaluate("s => [...document.querySelectorAll(s)].map(e => e.textContent)",
                              selector)
        assert found == [f"target {n}"], (selector, found)
