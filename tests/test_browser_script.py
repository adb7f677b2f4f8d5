"""The website script in headless Chromium, on fixture pages of another origin than the app.

The pages (tests/fixtures/pages/) are served by a small threaded server on its own
port: `{{BASE}}` becomes where tracker.js comes from (the app, or a proxy in front
of it that can be slow, fail or drop connections) and `{{KEY}}` the site key.
Every test fails on a page error, a console error the script could have caused, or
a warning of the script.
"""

import http.client
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.services.browser import launch_chromium
from tracker import ingest
from tracker.extensions import db, redis_client
from tracker.models import Assignment, Display, Visit

PAGES = Path(__file__).parent / "fixtures" / "pages"
ORIGINAL = "info@shop.example"
TRACKED = "sales@shop.example"
# Console errors that the browser itself logs for failed requests: expected when the
# API is down, fails or is forbidden by CSP. Anything else is a failure.
NETWORK_NOISE = re.compile(
    r"^(Failed to load resource|Refused to connect|Connecting to '.*' violates|"
    r"Access to XMLHttpRequest at '.*' from origin '.*' has been blocked by CORS policy)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _serve(handler):
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    return server, thread


def _stop(server, thread):
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


class PageHandler(BaseHTTPRequestHandler):
    """Fixture pages with {{BASE}} and {{KEY}} filled in; /spa/* is the SPA page."""

    def do_GET(self):
        path = self.path.split("?")[0].lstrip("/")
        name = "spa.html" if path.startswith("spa/") else path
        file = PAGES / name
        if "/" in name or not file.is_file():
            self.send_error(404)
            return
        config = self.server.config
        body = file.read_text().replace("{{BASE}}", config["base"]).replace("{{KEY}}", config["key"])
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for header, value in config["headers"].items():
            self.send_header(header, value.replace("{{BASE}}", config["base"]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ProxyHandler(BaseHTTPRequestHandler):
    """Passes requests on to the app; API calls can be delayed, fail with 500 or be dropped."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def _handle(self):
        proxy = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        mode = proxy.mode if self.path.startswith("/api/") else "pass"
        proxy.calls.append((self.path, mode))
        if mode == "down":  # the connection closes without an answer
            self.close_connection = True
            return
        if mode == "500":
            # An answer that would swap if the script ignored the status.
            payload = b'{"s": "xxxxxxxx", "b": [{"i": 1, "f": ["info@shop.example"], "t": "x@evil.example"}]}'
            self.send_response(500)
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if mode == "slow":
            time.sleep(proxy.delay)
            if self._client_left():
                proxy.dropped.append(self.path)
                self.close_connection = True
                return
        try:
            upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            upstream.close()
        except OSError:  # the test is over and the app gone
            self.close_connection = True
            return
        try:
            self.send_response(answer.status)
            for header, value in answer.getheaders():
                if header.lower() not in ("connection", "transfer-encoding", "content-length", "date",
                                          "server"):
                    self.send_header(header, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the browser gave up waiting and closed the connection
            proxy.dropped.append(self.path)
            self.close_connection = True
            return
        proxy.answered.append(self.path)

    def _client_left(self):
        """Whether the browser closed the connection while we waited (it gave up)."""
        try:
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:  # nothing to read: still open
            return False
        except OSError:
            return True

    def log_message(self, *args):
        pass


@pytest.fixture
def pages():
    """The fixture pages' server (a different origin than the app); `config` says what to fill in."""
    server, thread = _serve(PageHandler)
    server.config = {"base": "", "key": "", "headers": {}}
    yield server
    _stop(server, thread)


@pytest.fixture
def proxy(live_server):
    """A proxy in front of the app: `mode` is pass, slow (by `delay` s), 500 or down for /api/."""
    server, thread = _serve(ProxyHandler)
    server.target_port = live_server.server_port
    server.mode, server.delay = "pass", 0
    server.calls, server.answered, server.dropped = [], [], []
    yield server
    _stop(server, thread)


@pytest.fixture
def shop(factory, live_server, pages):
    """An account with a site on 127.0.0.1 and a "find in code" block for info@shop.example."""
    account = factory.account()
    site = factory.site(account, domains=["127.0.0.1"])
    block = factory.block(account, sites=[site], addresses=[ORIGINAL])
    pages.config.update(base=live_server.url, key=site.key)
    return account, site, block


# What Debian's Chromium says when it is not headless: "HeadlessChrome" is on the
# crawler list, and a visitor recognised as a bot gets no address of its own.
PERSON_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/156.0.0.0 Safari/537.36")


@pytest.fixture(scope="module")
def human_browser(playwright):
    """A Chromium that passes for a person: navigator.webdriver is false and the user
    agent is a desktop Chrome's. Gets pool leases and tokens, as visitors do."""
    chromium = launch_chromium(playwright, args=["--disable-blink-features=AutomationControlled",
                                                 f"--user-agent={PERSON_AGENT}"])
    yield chromium
    chromium.close()


@pytest.fixture
def open_context(human_browser):
    """Opens browser contexts that collect page errors, console errors and the script's
    warnings; in the browser that passes for a person unless another one is given."""
    contexts, problems = [], []

    def on_console(message):
        text = message.text
        if "[email-tracker]" in text or (message.type == "error" and not NETWORK_NOISE.search(text)):
            problems.append(f"console {message.type}: {text}")

    def open_(chromium=None, **options):
        context = (chromium or human_browser).new_context(locale="en-US", **options)
        context.set_default_timeout(10_000)
        context.on("console", on_console)
        context.on("weberror", lambda error: problems.append(f"page error: {error.error}"))
        contexts.append(context)
        return context

    yield open_
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def page(open_context):
    """A page in a fresh context of the browser that passes for a person."""
    return open_context().new_page()


def eventually(check, timeout=6.0):
    """Poll the database until check() returns something truthy; returns it.

    Each time the page views queued in Redis are written first, as the RQ writer does.
    """
    deadline = time.monotonic() + timeout
    while True:
        written()
        result = check()
        if result or time.monotonic() > deadline:
            assert result, "the condition did not become true in time"
            return result
        time.sleep(0.05)


def written():
    """Write the queued page views; commits, so the next query sees the live server's work."""
    ingest.flush(redis_client())


def visits():
    written()
    return db.session.scalars(select(Visit).order_by(Visit.id)).all()


def displayed():
    rows = db.session.execute(
        select(Display.block_id, Display.address, func.sum(Display.count))
        .group_by(Display.block_id, Display.address)
    ).all()
    return {(block, address): int(count) for block, address, count in rows}


# --- Swapping --------------------------------------------------------------------------------


def test_find_in_code_swaps_text_and_mailto_links_only_where_visible(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/code.html")
    expect(page.locator("#plain")).to_have_text(f"Write to {TRACKED} today.")
    expect(page.locator("#case")).to_have_text(f"Or to {TRACKED}, if you shout.")
    expect(page.locator("#touching")).to_have_text(f'({TRACKED}), "{TRACKED}". [{TRACKED}]')
    expect(page.locator("#end")).to_have_text(f"Mail {TRACKED}.")
    expect(page.locator("#mail")).to_have_text(TRACKED)
    expect(page.locator("#mail")).to_have_attribute(
        "href", f"mailto:{TRACKED}?subject=Order%20123&cc=boss@shop.example")
    expect(page.locator("#upper")).to_have_attribute("href", f"MAILTO:{TRACKED}")  # the scheme as written
    # Other addresses that merely contain the original, and places the visitor edits or never reads.
    expect(page.locator("#longer")).to_have_text(
        "myinfo@shop.example, info@shop.example.org, info@shop.examples")
    expect(page.locator("#other")).to_have_attribute("href", "mailto:boss@shop.example")
    assert page.locator("#inline").evaluate("s => s.text") == 'var quoted = "info@shop.example";'
    assert "info@shop.example" in page.locator("style").evaluate("s => s.textContent")
    expect(page.locator("#area")).to_have_value(ORIGINAL)
    expect(page.locator("#field")).to_have_value(ORIGINAL)
    expect(page.locator("#choice option")).to_have_text(ORIGINAL)
    expect(page.locator("#editor")).to_contain_text(f"Draft to {ORIGINAL}")
    expect(page.locator("#draft")).to_have_attribute("href", f"mailto:{ORIGINAL}")
    # Each text node and link changed counts once: five text nodes (one is the link's text)
    # and two links, reported as displayed.
    assert eventually(lambda: displayed().get((block.id, TRACKED)) == 7)


def test_element_blocks_swap_inside_the_selected_elements(page, pages, shop, factory):
    account, site, _ = shop
    whole = factory.block(account, sites=[site], selector="#whole")
    split = factory.block(account, sites=[site], selector="#split")
    linked = factory.block(account, sites=[site], selector="#linked")
    footer = factory.block(account, sites=[site], selector=".footer")
    footer.attribute_kind, footer.attribute_value = "class", "footer"
    footer.replace_address = "hello@shop.example"
    db.session.commit()
    factory.rule(account, blocks=[whole, split, linked], address=TRACKED)
    factory.rule(account, blocks=[footer], address="footer@shop.example")
    page.goto(f"{pages.url}/element.html")
    expect(page.locator("#whole")).to_have_text(TRACKED)
    expect(page.locator("#split")).to_have_text(TRACKED)  # the whole text, split over nodes
    expect(page.locator("#linked a")).to_have_text(TRACKED)  # the link inside stays a link
    expect(page.locator("#linked a")).to_have_attribute("href", f"mailto:{TRACKED}?subject=Hi")
    expect(page.locator("#footer-mail")).to_have_text("footer@shop.example")
    expect(page.locator("#footer-mail")).to_have_attribute("href", "mailto:footer@shop.example?subject=Hi")
    expect(page.locator(".footer").nth(0)).to_have_text("Mail: footer@shop.example or call.")
    expect(page.locator(".footer").nth(1)).to_have_text("Or footer@shop.example, again.")
    # Outside the selected elements the same address stays.
    expect(page.locator("#outside")).to_have_text("Elsewhere: hello@shop.example x")
    expect(page.locator("#outside-mail")).to_have_attribute("href", "mailto:hello@shop.example")
    assert eventually(lambda: displayed() == {
        (whole.id, TRACKED): 1, (split.id, TRACKED): 1, (linked.id, TRACKED): 2,
        (footer.id, "footer@shop.example"): 3})


def test_content_added_later_is_swapped(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/late.html")
    expect(page.locator("#ready")).to_have_text(TRACKED)
    page.evaluate("openModal()")
    expect(page.locator("#modal-mail")).to_have_text(TRACKED)
    expect(page.locator("#modal-mail")).to_have_attribute("href", f"mailto:{TRACKED}?subject=Modal")
    page.evaluate("lazyWidget()")
    expect(page.locator("#widget")).to_have_text(f"Chat offline, mail {TRACKED}")
    page.evaluate("decode()")
    expect(page.locator("#decoded")).to_have_text(TRACKED)
    expect(page.locator("#protected")).to_have_attribute("href", f"mailto:{TRACKED}")


def test_copying_an_original_address_puts_the_tracked_one_on_the_clipboard(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=pages.url)
    page.goto(f"{pages.url}/copy.html")
    expect(page.locator("#swapped")).to_have_text(f"Or {TRACKED}")
    # Split over elements, the address is not swapped on the page; a copy of it still is.
    expect(page.locator("#split")).to_have_text("Write to info@shop.example, we answer fast.")
    page.locator("#split").select_text()
    page.keyboard.press("Control+C")
    assert page.evaluate("navigator.clipboard.readText()") == f"Write to {TRACKED}, we answer fast."
    page.locator("#unrelated").select_text()
    page.keyboard.press("Control+C")
    assert page.evaluate("navigator.clipboard.readText()") == "Nothing to see here."


def test_hard_mailto_links_and_labels_get_the_tracked_address(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/links.html")
    # A malformed escape first on the page: it stays, and the links after it are swapped.
    expect(page.locator("#after")).to_have_attribute("href", f"mailto:{TRACKED}")
    expect(page.locator("#malformed")).to_have_attribute("href", "mailto:a%zz@shop.example")
    expect(page.locator("#mixed")).to_have_attribute("href", f"mailto:a%zz@shop.example,{TRACKED}")
    # Several recipients, spaces, capitals, an escaped @: the original becomes the tracked one.
    expect(page.locator("#several")).to_have_attribute(
        "href", f"mailto:{TRACKED},boss@shop.example?subject=Hi")
    expect(page.locator("#spaced")).to_have_attribute("href", f"mailto: {TRACKED}")
    expect(page.locator("#padded")).to_have_attribute("href", f" mailto:{TRACKED} ")
    expect(page.locator("#capitals")).to_have_attribute("href", f"MAILTO:{TRACKED}?subject=Up")
    expect(page.locator("#escaped")).to_have_attribute("href", f"mailto:{TRACKED}")
    expect(page.locator("#longer")).to_have_attribute("href", "mailto:info@shop.example.au")
    # What screen readers read, with the same address boundaries.
    expect(page.locator("#titled")).to_have_attribute("title", f"Write to {TRACKED}")
    expect(page.locator("#titled")).to_have_attribute(
        "aria-label", f"Mail {TRACKED}, not info@shop.example.au")
    expect(page.locator("#kept")).to_have_attribute("title", "info@shop.example.au or myinfo@shop.example")
    expect(page.locator("#field")).to_have_value(ORIGINAL)
    # Seven links changed (titles and labels are no displays of their own).
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 7})
    page.wait_for_timeout(1500)
    assert displayed() == {(block.id, TRACKED): 7}


def test_an_element_block_wins_over_find_in_code_and_is_counted_alone(page, pages, shop, factory):
    account, site, block = shop
    boxed = factory.block(account, sites=[site], selector="#boxed")
    card = factory.block(account, sites=[site], selector="#card")
    card.replace_address = ORIGINAL  # an element block that swaps the given address inside
    db.session.commit()
    factory.rule(account, blocks=[block], address=TRACKED)
    factory.rule(account, blocks=[boxed], address="box@shop.example")
    factory.rule(account, blocks=[card], address="card@shop.example")
    page.goto(f"{pages.url}/covered.html")
    expect(page.locator("#boxed")).to_have_text("box@shop.example")
    expect(page.locator("#card-mail")).to_have_text("card@shop.example")
    expect(page.locator("#card-mail")).to_have_attribute("href", "mailto:card@shop.example")
    expect(page.locator("#free")).to_have_text(f"Or {TRACKED}")
    expected = {(block.id, TRACKED): 1, (boxed.id, "box@shop.example"): 1, (card.id, "card@shop.example"): 2}
    assert eventually(lambda: displayed() == expected)
    page.wait_for_timeout(1500)
    assert displayed() == expected


def test_each_swap_is_counted_once_per_page_view(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{TRACKED}?subject=Hello")
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 2})
    # A reload swaps from the cached answer, then the fresh answer finds nothing left to swap.
    page.reload()
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{TRACKED}?subject=Hello")
    eventually(lambda: visits()[0].page_views == 2)
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 4})
    page.wait_for_timeout(1500)
    assert displayed() == {(block.id, TRACKED): 4}


def test_single_page_navigation_counts_new_content_once(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/spa/home")
    expect(page.locator("#view")).to_have_text(f"Home. Mail {TRACKED}")
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 1})
    page.evaluate("go('/spa/prices')")
    expect(page.locator("#page-prices a")).to_have_attribute("href", f"mailto:{TRACKED}")
    eventually(lambda: visits()[0].page_views == 2)
    # The link's text and href, once: not again from the cached answer nor from the fresh one.
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 3})
    page.wait_for_timeout(1500)
    assert displayed() == {(block.id, TRACKED): 3}


def test_copying_respects_address_boundaries_and_what_the_visitor_edits(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=pages.url)
    page.goto(f"{pages.url}/copy.html")
    expect(page.locator("#swapped")).to_have_text(f"Or {TRACKED}")
    expect(page.locator("#longer")).to_have_text("Our shop abroad: info@shop.example.au")
    for selector, text in [("#longer", "Our shop abroad: info@shop.example.au"), ("#area", ORIGINAL),
                           ("#field", ORIGINAL), ("#editor", f"Draft to {ORIGINAL}")]:
        page.evaluate("navigator.clipboard.writeText('')")
        page.locator(selector).select_text()
        page.keyboard.press("Control+C")
        assert page.evaluate("navigator.clipboard.readText()") == text, selector
    page.locator("#split").select_text()
    page.keyboard.press("Control+C")
    assert page.evaluate("navigator.clipboard.readText()") == f"Write to {TRACKED}, we answer fast."


# --- Page views and visits -------------------------------------------------------------------


def test_single_page_navigation_counts_as_page_views(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/spa/home")
    expect(page.locator("#view")).to_have_text(f"Home. Mail {TRACKED}")
    eventually(lambda: visits() and visits()[0].page_views == 1)
    page.evaluate("go('/spa/prices')")
    expect(page.locator("#page-prices a")).to_have_text(TRACKED)
    expect(page.locator("#page-prices a")).to_have_attribute("href", f"mailto:{TRACKED}")
    eventually(lambda: visits()[0].page_views == 2)
    page.evaluate("history.replaceState({}, '', location.href)")  # the same URL: no page view
    page.evaluate("go('/spa/about')")
    eventually(lambda: visits()[0].page_views == 3)
    page.go_back()  # popstate
    expect(page.locator("#page-prices a")).to_have_text(TRACKED)
    eventually(lambda: visits()[0].page_views == 4)
    page.evaluate("history.replaceState({}, '', '/spa/prices?tab=2')")
    eventually(lambda: visits()[0].page_views == 5)
    page.evaluate("emailTracker.refresh()")
    visit = eventually(lambda: visits()[0].page_views == 6 and visits()[0])
    assert len(visits()) == 1 and visit.landing_url == f"{pages.url}/spa/home"


def test_landing_with_utm_values_gets_the_matching_static_rule(open_context, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address="yandex@shop.example",
                 conditions=[("utm_source", "equals", "yandex")])
    factory.rule(account, blocks=[block], address="everyone@shop.example")
    context = open_context()
    context.add_cookies([
        {"name": "_ga", "value": "GA1.2.111.222", "url": pages.url},
        {"name": "_ym_uid", "value": "1699", "url": pages.url},
    ])
    page = context.new_page()
    page.goto(f"{pages.url}/plain.html?utm_source=yandex&utm_medium=cpc",
              referer="https://yandex.ru/search/?text=flowers")
    expect(page.locator("#addr")).to_have_text("yandex@shop.example")
    expect(page.locator("#mail")).to_have_attribute("href", "mailto:yandex@shop.example?subject=Hello")
    # The next page of the visit, without utm values, keeps the landing's source.
    page.goto(f"{pages.url}/code.html")
    expect(page.locator("#plain")).to_have_text("Write to yandex@shop.example today.")
    visit = eventually(lambda: visits() and visits()[0].page_views == 2 and visits()[0])
    assert (visit.utm_source, visit.utm_medium, visit.channel) == ("yandex", "cpc", "paid")
    assert visit.referrer == "https://yandex.ru/search/?text=flowers"
    assert (visit.ga_client_id, visit.ym_client_id, visit.is_bot) == ("111.222", "1699", False)
    # Another visitor without utm values gets the rule for everyone.
    other = open_context().new_page()
    other.goto(f"{pages.url}/plain.html")
    expect(other.locator("#addr")).to_have_text("everyone@shop.example")


def test_new_utm_values_or_half_an_hour_idle_start_a_new_visit(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address=ORIGINAL)
    page.goto(f"{pages.url}/plain.html?utm_source=google")
    expect(page.locator("#addr")).not_to_have_text(ORIGINAL)
    first = page.locator("#addr").text_content()
    page.goto(f"{pages.url}/plain.html?utm_source=google")  # the same utm values: the same visit
    expect(page.locator("#addr")).to_have_text(first)
    page.goto(f"{pages.url}/plain.html?utm_source=vk")
    expect(page.locator("#addr")).to_have_text(re.compile(r"^info\+"))
    expect(page.locator("#addr")).not_to_have_text(first)
    second = page.locator("#addr").text_content()
    # 31 minutes without activity.
    page.evaluate("""() => {
        const visit = JSON.parse(localStorage.getItem('et_s'));
        visit.a -= 31 * 60 * 1000;
        localStorage.setItem('et_s', JSON.stringify(visit));
    }""")
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).to_have_text(re.compile(r"^info\+"))
    expect(page.locator("#addr")).not_to_have_text(second)
    rows = eventually(lambda: len(visits()) == 3 and visits())
    assert [v.utm_source for v in rows] == ["google", "vk", ""]
    assert [v.page_views for v in rows] == [2, 1, 1]
    assert len({v.visitor_id for v in rows}) == 1  # one visitor throughout
    assert first.startswith("info+") and second.startswith("info+") and first != second


def test_two_people_get_different_pool_addresses(open_context, human_browser, browser, pages, shop,
                                                 factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="pool",
                 pool=["p1@shop.example", "p2@shop.example"], fallback_address="fb@shop.example")
    first = open_context(human_browser).new_page()
    first.goto(f"{pages.url}/plain.html")
    expect(first.locator("#addr")).to_have_text(re.compile(r"^p[12]@shop\.example$"))
    second = open_context(human_browser).new_page()
    second.goto(f"{pages.url}/plain.html")
    expect(second.locator("#addr")).to_have_text(re.compile(r"^p[12]@shop\.example$"))
    mine, theirs = first.locator("#addr").text_content(), second.locator("#addr").text_content()
    assert mine != theirs
    first.reload()  # the lease holds for the visit
    expect(first.locator("#addr")).to_have_text(mine)
    assert [v.is_bot for v in visits()] == [False, False]
    # A browser that says it is automated gets the fallback, never a lease.
    robot = open_context(browser).new_page()
    robot.goto(f"{pages.url}/plain.html")
    expect(robot.locator("#addr")).to_have_text("fb@shop.example")
    kinds = eventually(lambda: sorted(db.session.scalars(select(Assignment.kind)).all()))
    assert kinds == ["fallback", "pool", "pool"]


def test_a_robot_gets_no_token_of_its_own(open_context, browser, pages, shop, factory):
    """A browser that says it is automated gets a sub-address rule's fallback address and
    a catch-all rule without a fallback leaves the page's own address: no token at all."""
    account, site, block = shop
    other = factory.block(account, sites=[site], addresses=["sales@shop.example"])
    factory.rule(account, blocks=[block], mode="subaddress", base_address=ORIGINAL,
                 fallback_address="robots@shop.example")
    factory.rule(account, blocks=[other], mode="catchall", catchall_domain="in.shop.example")
    robot = open_context(browser).new_page()
    robot.goto(f"{pages.url}/plain.html")
    expect(robot.locator("#addr")).to_have_text("robots@shop.example")
    visit = eventually(lambda: visits() and visits()[0])
    assert visit.is_bot
    kinds = eventually(lambda: db.session.execute(select(Assignment.kind, Assignment.token)).all())
    assert [tuple(k) for k in kinds] == [("fallback", None)]
    # The same page for a person: a token of their own.
    person = open_context().new_page()
    person.goto(f"{pages.url}/plain.html")
    expect(person.locator("#addr")).to_have_text(re.compile(r"^info\+\w+@shop\.example$"))


def test_display_report_reaches_the_server(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="catchall", catchall_domain="in.shop.example")
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).to_have_text(re.compile(r"@in\.shop\.example$"))
    address = page.locator("#addr").text_content()
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{address}?subject=Hello")
    assert eventually(lambda: displayed() == {(block.id, address): 2})
    visit = visits()[0]
    assert db.session.scalar(select(Display.visit_id)) == visit.id


# --- Cached answers and failures ---------------------------------------------------------------


def test_later_pages_swap_from_the_cached_answer_while_the_api_is_slow(page, pages, proxy, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address=ORIGINAL)
    pages.config["base"] = proxy.url
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).not_to_have_text(ORIGINAL)
    tracked = page.locator("#addr").text_content()
    proxy.mode, proxy.delay = "slow", 5  # longer than the script waits: no answer will come
    page.goto(f"{pages.url}/code.html")
    expect(page.locator("#plain")).to_have_text(f"Write to {tracked} today.")
    page.goto(f"{pages.url}/plain.html")
    # Swapped already when `load` fired: the visitor never saw the original.
    assert page.evaluate("window.atLoad") == tracked
    assert proxy.answered.count("/api/v1/hit") == 1  # only the first page's hit was answered


def test_a_fresh_answer_replaces_a_stale_cached_one(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address=ORIGINAL)
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).to_have_text(re.compile(r"^info\+"))
    tracked = page.locator("#addr").text_content()
    # The cached answer is out of date (say, a lease that ended): the fresh one wins.
    page.evaluate("""() => {
        const visit = JSON.parse(localStorage.getItem('et_s'));
        visit.b[0].t = 'stale@shop.example';
        localStorage.setItem('et_s', JSON.stringify(visit));
    }""")
    page.goto(f"{pages.url}/plain.html")
    assert page.evaluate("window.atLoad") in ("stale@shop.example", tracked)
    expect(page.locator("#addr")).to_have_text(tracked)
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{tracked}?subject=Hello")


@pytest.mark.parametrize("mode", ["down", "500", "slow"])
def test_host_page_survives_a_failing_api(page, pages, proxy, shop, factory, mode):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    pages.config["base"] = proxy.url
    proxy.mode, proxy.delay = mode, 4.5
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).to_have_text(ORIGINAL)
    assert page.evaluate("window.atLoad") == ORIGINAL
    if mode == "slow":  # the script gives up after 4 s: the late answer finds the connection closed
        deadline = time.monotonic() + 8
        while "/api/v1/hit" not in proxy.dropped and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert proxy.dropped == ["/api/v1/hit"] and "/api/v1/hit" not in proxy.answered
    else:
        page.wait_for_timeout(500)
    assert ("/api/v1/hit", mode) in proxy.calls
    expect(page.locator("#addr")).to_have_text(ORIGINAL)
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{ORIGINAL}?subject=Hello")
    # The page's own scripts still run and the script's one global is there.
    assert page.evaluate("typeof emailTracker.refresh") == "function"


def test_no_app_at_all_leaves_the_page_alone(page, pages, shop):
    pages.config["base"] = "http://127.0.0.1:9"  # the discard port: nothing listens
    page.goto(f"{pages.url}/plain.html")
    assert page.evaluate("window.atLoad") == ORIGINAL


def test_strict_csp_that_forbids_the_api_keeps_the_originals(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    pages.config["headers"] = {"Content-Security-Policy":
                               "default-src 'none'; script-src {{BASE}}; connect-src 'none'"}
    page.goto(f"{pages.url}/csp.html")
    page.wait_for_function("window.emailTracker")
    page.wait_for_timeout(300)
    expect(page.locator("#addr")).to_have_text(ORIGINAL)
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{ORIGINAL}")
    assert visits() == []


def test_strict_csp_with_trusted_types_still_swaps(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    pages.config["headers"] = {"Content-Security-Policy":
                               "default-src 'none'; script-src {{BASE}}; connect-src {{BASE}}; "
                               "require-trusted-types-for 'script'; trusted-types 'none'"}
    page.goto(f"{pages.url}/csp.html")
    expect(page.locator("#addr")).to_have_text(TRACKED)
    expect(page.locator("#mail")).to_have_attribute("href", f"mailto:{TRACKED}")
    assert eventually(lambda: displayed() == {(block.id, TRACKED): 2})


def test_blocked_local_storage_falls_back_to_a_cookie(open_context, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address=ORIGINAL)
    context = open_context()
    context.add_init_script("""
        Object.defineProperty(window, 'localStorage', {
            get() { throw new DOMException('storage is blocked', 'SecurityError'); }
        });
    """)
    page = context.new_page()
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).not_to_have_text(ORIGINAL)
    tracked = page.locator("#addr").text_content()
    page.goto(f"{pages.url}/code.html")
    expect(page.locator("#plain")).to_have_text(f"Write to {tracked} today.")
    visit = eventually(lambda: visits() and visits()[0].page_views == 2 and visits()[0])
    assert len(visits()) == 1
    cookies = {c["name"] for c in context.cookies(pages.url)}
    assert {"et_v", "et_s"} <= cookies and visit.visitor_id


def test_sandboxed_frame_without_storage_or_origin_keeps_the_originals(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/frame.html")
    frame = page.frame_locator("#frame")
    expect(frame.locator("#addr")).to_have_text(ORIGINAL)
    inner = page.frames[1]
    inner.wait_for_function("window.emailTracker && window.atLoad")
    page.wait_for_timeout(300)
    # Its Origin is "null", which is no domain of the site: the API refuses, nothing breaks.
    expect(frame.locator("#addr")).to_have_text(ORIGINAL)
    assert inner.evaluate("window.atLoad") == ORIGINAL
    assert visits() == []


def test_the_script_defines_one_global(page, pages, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], address=TRACKED)
    page.goto(f"{pages.url}/plain.html")
    expect(page.locator("#addr")).to_have_text(TRACKED)
    added = page.evaluate("Object.keys(window).filter(k => !window.before.includes(k))")
    assert sorted(added) == ["atLoad", "before", "emailTracker"]
