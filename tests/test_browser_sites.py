"""In a real browser: sign in, create a site, search as you type, copy the snippet."""

import re

from playwright.sync_api import expect

from tests.conftest import PASSWORD


def sign_in(page, live_server, user):
    page.goto(f"{live_server.url}/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{live_server.url}/")  # the dashboard
    page.goto(f"{live_server.url}/sites/")


def test_sign_in_and_create_a_site(page, live_server, user):
    sign_in(page, live_server, user)
    page.get_by_role("button", name="Add site").click()
    page.get_by_label("Name").fill("Flower shop")
    page.get_by_label("Domains").fill("not a domain!")
    page.get_by_role("button", name="Save").click()
    # htmx swapped the form in place with the inline error.
    expect(page.get_by_text("Not domains: not, a, domain!.")).to_be_visible()
    page.get_by_label("Domains").fill("https://Flowers.example/contact\nцветы.рф")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Flower shop")).to_be_visible()
    expect(page.get_by_text("Site “Flower shop” created.")).to_be_visible()
    expect(page.get_by_text("цветы.рф")).to_be_visible()
    snippet = page.locator("#snippet").input_value()
    assert re.fullmatch(
        rf'<script async src="{live_server.url}/static/js/tracker.js" data-site="[\w-]+"></script>',
        snippet,
    )


def test_copy_button_puts_the_snippet_on_the_clipboard(page, live_server, user, factory):
    site = factory.site(user.account, name="Copyable")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/sites/{site.id}")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("#snippet").input_value()


def test_search_as_you_type_keeps_state_in_the_url(page, live_server, user, factory):
    factory.site(user.account, name="Apple store", domains=["apple.example"])
    factory.site(user.account, name="Banana stand", domains=["banana.example"])
    sign_in(page, live_server, user)
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)
    page.get_by_placeholder("Search by name or domain").press_sequentially("banan")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Banana stand")
    expect(page).to_have_url(re.compile(r"/sites/\?q=banan$"))
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.get_by_placeholder("Search by name or domain")).to_have_value("banan")


def test_delete_with_confirmation(page, live_server, user, factory):
    factory.site(user.account, name="Short-lived")
    sign_in(page, live_server, user)
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete site “Short-lived”?")).to_be_visible()
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Site “Short-lived” deleted.")).to_be_visible()
    expect(page.get_by_text("No sites yet.")).to_be_visible()


def test_russian_browser_gets_russian_pages(browser, live_server, user):
    context = browser.new_context(locale="ru-RU")
    page = context.new_page()
    page.goto(f"{live_server.url}/login")
    expect(page.get_by_role("heading", name="Вход")).to_be_visible()
    context.close()
