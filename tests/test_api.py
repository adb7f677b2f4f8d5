"""The public API: page views, displays, CORS, limits, and leasing under concurrency."""

import http.client
import json
import time
from datetime import UTC, datetime
from concurrent.futures import ThreadPoolExecutor
from urllib.request import Request, urlopen

import pytest
from sqlalchemy import delete, event, func, select

from tracker.extensions import db
from tracker.models import Assignment, Display, Site, Visit

ORIGIN = "https://shop.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126 Safari/537.36"


@pytest.fixture
def shop(factory):
    """An account with a site on shop.example and a "find in code" block on it."""
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    return account, site, block


def hit(client, site, visit="visit-0001", visitor="visitor-001", url="https://shop.example/",
        origin=ORIGIN, agent=BROWSER, **extra):
    body = {"k": site.key, "v": visitor, "s": visit, "u": url, "r": "", **extra}
    headers = {"Content-Type": "text/plain", "User-Agent": agent}
    if origin:
        headers["Origin"] = origin
    return client.post("/api/v1/hit", data=json.dumps(body), headers=headers)


def test_static_rule_answers_its_address_and_stores_the_visit(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example",
                 conditions=[("utm_source", "equals", "yandex")])
    factory.rule(account, blocks=[block], address="other@shop.example")
    response = hit(client, site, url="https://shop.example/?utm_source=Yandex&utm_medium=cpc",
                   r="https://yandex.ru/search?text=flowers", ga="GA1.2.111.222", ym="1699")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"s": "visit-0001", "b": [
        {"i": block.id, "t": "ads@shop.example", "f": ["info@shop.example"]}]}
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert db.session.scalar(select(Visit)) is None  # queued in Redis until the writer runs
    assert written() == 1
    visit = db.session.scalar(select(Visit))
    assert (visit.utm_source, visit.utm_medium, visit.channel) == ("Yandex", "cpc", "paid")
    assert (visit.ga_client_id, visit.ym_client_id, visit.is_bot) == ("111.222", "1699", False)
    assert db.session.scalar(select(Assignment.address)) == "ads@shop.example"
    other = hit(client, site, visit="visit-0002", url="https://shop.example/")
    assert other.json["b"][0]["t"] == "other@shop.example"


def test_later_page_views_keep_the_visit(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    first = hit(client, site).json["b"][0]["t"]
    again = hit(client, site, url="https://shop.example/contacts").json["b"][0]["t"]
    assert first == again and first.startswith("info+") and first.endswith("@shop.example")
    written()
    visit = db.session.scalar(select(Visit))
    assert visit.page_views == 2 and visit.landing_url == "https://shop.example/"
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_dynamic_addresses_differ_per_visit(client, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="catchall", catchall_domain="in.shop.example")
    answers = {hit(client, site, visit=f"visit-{n:04d}").json["b"][0]["t"] for n in range(5)}
    assert len(answers) == 5 and all(a.endswith("@in.shop.example") for a in answers)


def test_element_block_answers_its_selector(client, factory):
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], selector="#contact-email")
    factory.rule(account, blocks=[block], address="sel@shop.example")
    assert hit(client, site).json["b"] == [{"i": block.id, "t": "sel@shop.example", "q": "#contact-email"}]


def test_bots_get_the_fallback_never_a_lease(client, shop, factory):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example"],
                 fallback_address="fallback@shop.example")
    crawler = hit(client, site, visit="visit-bot1", agent="Mozilla/5.0 (compatible; Googlebot/2.1)")
    driven = hit(client, site, visit="visit-bot2", wd=True)
    person = hit(client, site, visit="visit-human")
    assert crawler.json["b"][0]["t"] == driven.json["b"][0]["t"] == "fallback@shop.example"
    assert person.json["b"][0]["t"] == "p1@shop.example"
    late = hit(client, site, visit="visit-late")
    assert late.json["b"][0]["t"] == "fallback@shop.example"  # the pool of one is taken


@pytest.mark.parametrize("mode, fields", [
    ("subaddress", {"base_address": "info@shop.example"}),
    ("catchall", {"catchall_domain": "in.shop.example"}),
])
def test_bots_get_no_token_of_their_own(client, shop, factory, written, mode, fields):
    """Token rules give a crawler their fallback address, or nothing (the page keeps its
    own address): spam sent later to a harvested address names no visit."""
    account, site, block = shop
    factory.rule(account, blocks=[block], mode=mode, fallback_address="robots@shop.example",
                 **fields)
    crawler = hit(client, site, visit="visit-bot1", agent="Mozilla/5.0 (compatible; YandexBot/3.0)")
    again = hit(client, site, visit="visit-bot1", url="https://shop.example/contacts",
                agent="Mozilla/5.0 (compatible; YandexBot/3.0)")
    driven = hit(client, site, visit="visit-bot2", wd=True)
    person = hit(client, site, visit="visit-human")
    assert crawler.json["b"][0]["t"] == again.json["b"][0]["t"] == "robots@shop.example"
    assert driven.json["b"][0]["t"] == "robots@shop.example"
    assert person.json["b"][0]["t"] not in ("robots@shop.example", "info@shop.example")
    written()
    kinds = db.session.execute(select(Visit.client_visit_id, Assignment.kind, Assignment.token)
                               .join(Visit, Visit.id == Assignment.visit_id)
                               .order_by(Visit.client_visit_id)).all()
    assert [(v, k, t is None) for v, k, t in kinds] == [
        ("visit-bot1", "fallback", True), ("visit-bot2", "fallback", True),
        ("visit-human", mode, False)]


def test_a_bot_is_given_nothing_by_a_token_rule_without_a_fallback(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="catchall", catchall_domain="in.shop.example")
    bare = hit(client, site, visit="visit-bot3", agent="curl/8.5.0")
    assert bare.status_code == 200 and bare.json["b"] == []
    written()
    assert db.session.scalar(select(Visit.is_bot)) is True
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 0


def test_display_report_is_stored(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    hit(client, site)
    body = {"k": site.key, "v": "visitor-001", "s": "visit-0001",
            "d": [[block.id, "ads@shop.example", 3], [999999, "x@y.example", 1]]}
    response = client.post("/api/v1/display", data=json.dumps(body),
                           headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    assert response.status_code == 200 and response.json == {"stored": 1}
    written()
    row = db.session.scalar(select(Display))
    assert (row.block_id, row.address, row.count) == (block.id, "ads@shop.example", 3)


@pytest.mark.parametrize("origin", ["https://www.shop.example", "http://shop.example:8080"])
def test_subdomains_and_other_ports_of_the_domain_are_allowed(client, shop, origin):
    assert hit(client, shop[1], origin=origin).status_code == 200


@pytest.mark.parametrize("origin", [None, "https://evil.example", "https://shop.example.evil.example",
                                    "https://notshop.example", "null", "file://"])
def test_foreign_or_missing_origin_is_403(client, shop, origin):
    response = hit(client, shop[1], origin=origin)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response.headers


def count_queries(app):
    queries = []
    with app.app_context():
        engine = db.engine
    listener = lambda *args: queries.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    return queries, lambda: event.remove(engine, "before_cursor_execute", listener)


def test_refusals_do_not_reach_the_database(app, client, shop):
    _, site, _ = shop
    body = lambda **kw: json.dumps({"k": site.key, "v": "visitor-001", "s": "visit-0001",  # noqa: E731
                                    "u": "https://shop.example/", **kw})
    wrong = json.dumps({"k": "no-such-key-000000", "v": "visitor-001", "s": "visit-0001",
                        "u": "https://shop.example/"})
    headers = {"Origin": ORIGIN}
    client.post("/api/v1/hit", data=wrong, headers=headers)  # caches the unknown key
    client.post("/api/v1/hit", data=body(), headers={"Origin": "https://evil.example"})
    queries, stop = count_queries(app)
    try:
        cases = [
            (client.post("/api/v1/hit", data=wrong, headers=headers), 403),
            (client.post("/api/v1/hit", data=body(), headers={"Origin": "https://evil.example"}), 403),
            (client.post("/api/v1/hit", data="x" * 5000, headers=headers), 413),
            (client.post("/api/v1/hit", data="{not json", headers=headers), 400),
            (client.post("/api/v1/hit", data="[1, 2]", headers=headers), 400),
            (client.post("/api/v1/hit", data=body(u="javascript:alert(1)"), headers=headers), 400),
            (client.post("/api/v1/hit", data=body(v="<script>"), headers=headers), 400),
            (client.post("/api/v1/hit", data=body(s=""), headers=headers), 400),
            (client.post("/api/v1/hit", data=body(wd="yes"), headers=headers), 400),
            (client.post("/api/v1/hit", data=body(r=7), headers=headers), 400),
            (client.post("/api/v1/hit", data=body(u="https://x/" + "a" * 2000), headers=headers), 400),
        ]
    finally:
        stop()
    assert [r.status_code for r, _ in cases] == [code for _, code in cases]
    assert all("error" in r.json for r, _ in cases)
    assert queries == []


def test_rate_limit_per_ip_and_per_site(app, client, shop):
    _, site, _ = shop
    app.config["API_RATE_PER_IP"] = "3 per minute"
    codes = [hit(client, site, visit=f"visit-{n:04d}").status_code for n in range(4)]
    assert codes == [200, 200, 200, 429]
    app.config.update(API_RATE_PER_IP="100 per minute", API_RATE_PER_SITE="2 per minute")
    other_ip = {"REMOTE_ADDR": "127.0.0.9"}
    body = json.dumps({"k": site.key, "v": "visitor-001", "s": "visit-0009", "u": "https://shop.example/"})
    codes = [client.post("/api/v1/hit", data=body, headers={"Origin": ORIGIN},
                         environ_base=other_ip).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_hostile_values_are_stored_as_text(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    url = "https://shop.example/?utm_source=%3Cscript%3Ealert(1)%3C/script%3E&utm_term=%27%22%3E"
    assert hit(client, site, url=url, r="https://evil.example/<img src=x>").status_code == 200
    written()
    visit = db.session.scalar(select(Visit))
    assert visit.utm_source == "<script>alert(1)</script>" and visit.utm_term == "'\">"


def test_the_script_is_served_for_other_origins(client):
    with client.get("/static/js/tracker.js") as response:
        assert response.status_code == 200
        assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
        assert "max-age=300" in response.headers["Cache-Control"]
        etag = response.headers["ETag"]
    with client.get("/static/js/tracker.js", headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304
        assert again.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    with client.get("/static/css/app.css") as other:  # the admin's own files: same-origin
        assert other.status_code == 200
        assert "Cross-Origin-Resource-Policy" not in other.headers
        assert "Access-Control-Allow-Origin" not in other.headers


def test_a_chunked_body_is_read_and_bounded_like_any_other(live_server, shop):
    """Without Content-Length the body is streamed: read as usual, refused past 4 KB."""
    _, site, _ = shop
    body = json.dumps({"k": site.key, "v": "visitor-001", "s": "visit-0001",
                       "u": "https://shop.example/"}).encode()

    def post_chunked(chunks):
        connection = http.client.HTTPConnection(live_server.url.removeprefix("http://"), timeout=10)
        try:
            connection.request("POST", "/api/v1/hit", body=iter(chunks), encode_chunked=True,
                               headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    status, answer = post_chunked([body[:20], body[20:]])
    assert status == 200 and answer["s"] == "visit-0001"
    status, answer = post_chunked([b" " * 3000, b" " * 3000, body])
    assert status == 413 and "4096" in answer["error"]


def test_200_concurrent_lease_requests_against_a_pool_of_50(live_server, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="pool",
                 pool=[f"p{n}@shop.example" for n in range(50)], fallback_address="fb@shop.example")
    live_server.app.config.update(API_RATE_PER_IP="1000 per minute")
    key = site.key

    def request(n):
        body = json.dumps({"k": key, "v": f"visitor-{n:04d}", "s": f"visit-{n:04d}",
                           "u": "https://shop.example/"}).encode()
        req = Request(f"{live_server.url}/api/v1/hit", data=body, method="POST",
                      headers={"Origin": ORIGIN, "User-Agent": BROWSER, "Content-Type": "text/plain"})
        with urlopen(req, timeout=60) as response:
            return json.loads(response.read())["b"][0]["t"]

    with ThreadPoolExecutor(max_workers=16) as executor:
        answers = list(executor.map(request, range(200)))
    leased = [a for a in answers if a != "fb@shop.example"]
    assert len(leased) == 50 and len(set(leased)) == 50
    assert answers.count("fb@shop.example") == 150
    written()
    kinds = db.session.execute(select(Assignment.kind, func.count()).group_by(Assignment.kind)).all()
    assert dict(kinds) == {"pool": 50, "fallback": 150}


def test_rule_page_shows_pool_usage(logged_in, user, factory):
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site])
    rule = factory.rule(user.account, blocks=[block], mode="pool", pool=["p1@shop.example"],
                        fallback_address="fb@shop.example")
    for n in range(3):
        hit(logged_in, site, visit=f"visit-{n:04d}")
    page = logged_in.get(f"/rules/{rule.id}").get_data(as_text=True)
    assert "1 leased now; peak 1 of 1 addresses; 2 page views found the pool full" in page


def test_a_deleted_site_is_403_and_its_queued_page_views_are_dropped(
        app, logged_in, user, factory, written):
    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    factory.rule(user.account, blocks=[block], address="ads@shop.example")
    app.config["SITE_SETUP_CACHE_SECONDS"] = 0  # no per-process copy of the key
    assert hit(logged_in, site).status_code == 200  # cached in Redis, queued for the writer
    key = site.key
    assert logged_in.post(f"/sites/{site.id}/delete").status_code == 302
    response = logged_in.post("/api/v1/hit", data=json.dumps(
        {"k": key, "v": "visitor-001", "s": "visit-0002", "u": "https://shop.example/"}),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain", "User-Agent": BROWSER})
    assert response.status_code == 403 and response.json == {"error": "unknown site key"}
    assert written() == 1  # the entry is read and dropped: its site is gone
    assert db.session.scalar(select(func.count()).select_from(Visit)) == 0


def test_writer_drops_links_to_rules_deleted_meanwhile(client, shop, factory, written):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    address = hit(client, site).json["b"][0]["t"]
    db.session.delete(rule)
    db.session.commit()
    written()
    assignment = db.session.scalar(select(Assignment))
    assert (assignment.address, assignment.rule_id, assignment.kind) == (address, None, "subaddress")


def test_the_writer_writes_each_entry_once(client, shop, factory, written, monkeypatch):
    """A writer that dies after its commit, before trimming the stream, writes nothing twice."""
    from tracker import visitstate
    from tracker.extensions import redis_client

    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    for n in range(3):
        hit(client, site, visit=f"visit-{n:04d}")
    hit(client, site, visit="visit-0000", url="https://shop.example/2")
    redis = redis_client()
    with monkeypatch.context() as patch:
        patch.setattr(redis, "xtrim", lambda *args, **kwargs: 0)  # dies before the trim
        assert written() == 4
    assert redis.xlen(visitstate.STREAM) == 4
    assert written() == 0  # the cursor says they are written
    hit(client, site, visit="visit-0001", url="https://shop.example/3")
    assert written() == 1
    visits = db.session.execute(select(Visit.client_visit_id, Visit.page_views)
                                .order_by(Visit.client_visit_id)).all()
    assert visits == [("visit-0000", 2), ("visit-0001", 2), ("visit-0002", 1)]
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 3
    assert redis.xlen(visitstate.STREAM) <= 1


def test_concurrent_page_views_of_one_visit_all_count(live_server, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    key = site.key

    def request(n):
        body = json.dumps({"k": key, "v": "visitor-001", "s": "visit-0001",
                           "u": f"https://shop.example/page{n}"}).encode()
        req = Request(f"{live_server.url}/api/v1/hit", data=body, method="POST",
                      headers={"Origin": ORIGIN, "User-Agent": BROWSER, "Content-Type": "text/plain"})
        with urlopen(req, timeout=60) as response:
            return json.loads(response.read())["b"][0]["t"]

    with ThreadPoolExecutor(max_workers=8) as executor:
        answers = set(executor.map(request, range(24)))
    assert len(answers) == 1  # one address for the visit, however its pages race
    written()
    visit = db.session.scalar(select(Visit))
    assert visit.page_views == 24
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_blocks_and_rules_are_cached_per_process_for_a_few_seconds(app, client, shop, factory):
    account, site, block = shop
    rule = factory.rule(account, blocks=[block], address="first@shop.example")
    app.config["SITE_SETUP_CACHE_SECONDS"] = 60
    assert hit(client, site, visit="visit-0001").json["b"][0]["t"] == "first@shop.example"
    rule.static_address = "second@shop.example"
    db.session.commit()
    assert hit(client, site, visit="visit-0002").json["b"][0]["t"] == "first@shop.example"
    app.config["SITE_SETUP_CACHE_SECONDS"] = 0  # no cache: every page view reads them
    assert hit(client, site, visit="visit-0003").json["b"][0]["t"] == "second@shop.example"


def test_the_first_page_flag_is_a_hint_not_trusted(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    first = hit(client, site, n=True).json["b"][0]["t"]
    # The script says "first page" again for the same visit (two tabs, a lost answer):
    again = hit(client, site, n=True, url="https://shop.example/contacts").json["b"][0]["t"]
    later = hit(client, site, n=False, url="https://shop.example/about").json["b"][0]["t"]
    assert first == again == later
    assert hit(client, site, n="yes").status_code == 400
    written()
    visit = db.session.scalar(select(Visit))
    assert visit.page_views == 3 and visit.landing_url == "https://shop.example/"
    assert db.session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_a_visit_that_redis_forgot_is_started_again_and_kept_in_one_row(
        client, shop, factory, written):
    from tracker import visitstate
    from tracker.extensions import redis_client

    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    first = hit(client, site, n=True).json["b"][0]["t"]
    written()
    redis_client().delete(visitstate.visit_key(site.id, "visit-0001"))  # expired, or a new Redis
    again = hit(client, site, url="https://shop.example/contacts").json["b"][0]["t"]
    assert again != first and again.startswith("info+")  # a new token from here on
    written()
    visit = db.session.scalar(select(Visit))
    assert db.session.scalar(select(func.count()).select_from(Visit)) == 1
    assert visit.page_views == 2
    tokens = db.session.scalars(select(Assignment.address).order_by(Assignment.id)).all()
    assert tokens == [first, again]


def test_a_lease_renewed_by_later_page_views_is_written(client, shop, factory, written):
    account, site, block = shop
    factory.rule(account, blocks=[block], mode="pool", pool=["p1@shop.example", "p2@shop.example"],
                 fallback_address="fb@shop.example", reservation_minutes=30)
    assert hit(client, site, n=True).json["b"][0]["t"] == "p1@shop.example"
    written()
    first_expiry = db.session.scalar(select(Assignment.expires_at))
    time.sleep(0.02)
    assert hit(client, site).json["b"][0]["t"] == "p1@shop.example"
    written()
    leases = db.session.execute(select(Assignment.kind, Assignment.expires_at)).all()
    assert len(leases) == 1 and leases[0][0] == "pool" and leases[0][1] > first_expiry
    assert hit(client, site, visit="visit-0002", n=True).json["b"][0]["t"] == "p2@shop.example"


def test_a_token_drawn_twice_keeps_the_address_with_the_first_visit(
        client, shop, factory, written, monkeypatch, caplog):
    from tracker import attribution, pageviews

    account, site, block = shop
    factory.rule(account, blocks=[block], mode="subaddress", base_address="info@shop.example")
    monkeypatch.setattr(pageviews, "random_token", lambda: "abcdefghjk")
    first = hit(client, site, visit="visit-0001", n=True).json["b"][0]["t"]
    written()
    second = hit(client, site, visit="visit-0002", n=True).json["b"][0]["t"]
    assert first == second == "info+abcdefghjk@shop.example"
    written()
    assert "drawn twice" in caplog.text
    rows = db.session.execute(select(Assignment.visit_id, Assignment.token)
                              .order_by(Assignment.id)).all()
    visits = db.session.scalars(select(Visit.id).order_by(Visit.id)).all()
    assert rows == [(visits[0], "abcdefghjk"), (visits[1], None)]
    found = attribution.attribute(account.id, [first], datetime.now(UTC).replace(tzinfo=None))
    assert found.visit_id == visits[0]


def test_an_unreadable_queue_entry_is_skipped_not_retried_forever(client, shop, factory, written,
                                                                  caplog):
    from tracker import visitstate
    from tracker.extensions import redis_client

    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    hit(client, site, visit="visit-0001", n=True)
    redis_client().xadd(visitstate.STREAM, {"t": "v", "s": str(site.id), "c": "visit-bad",
                                            "m": "1", "v": "{not json"})
    hit(client, site, visit="visit-0002", n=True)
    assert written() == 3
    assert "set aside: unreadable" in caplog.text
    assert db.session.scalars(select(Visit.client_visit_id).order_by(Visit.id)).all() == [
        "visit-0001", "visit-0002"]


def test_page_views_survive_a_flushed_script_cache_and_a_dropped_connection(client, shop, factory):
    from tracker.extensions import redis_client

    account, site, block = shop
    factory.rule(account, blocks=[block], address="ads@shop.example")
    assert hit(client, site, visit="visit-0001", n=True).status_code == 200
    admin = redis_client()
    admin.script_flush()  # as after a Redis restart: the scripts must be loaded again
    assert hit(client, site, visit="visit-0002", n=True).json["b"][0]["t"] == "ads@shop.example"
    # Every other connection is dropped, the API's own among them: it connects again.
    admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert hit(client, site, visit="visit-0003", n=True).json["b"][0]["t"] == "ads@shop.example"
