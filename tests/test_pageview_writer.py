"""Text from outside is cleaned at the door, and one bad entry never blocks the writer."""

import json
import threading
import time

import orjson
import pytest
from sqlalchemy import select

from tracker import ingest, textclean, visitstate
from tracker.extensions import db, redis_client
from tracker.models import Display, IngestCursor, Visit

ORIGIN = "https://shop.example"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126 Safari/537.36"


@pytest.fixture
def shop(factory):
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    factory.rule(account, blocks=[block], address="ads@shop.example")
    return account, site, block


def hit(client, site, visit, url="https://shop.example/", referrer="", agent=BROWSER):
    body = {"k": site.key, "v": "visitor-001", "s": visit, "u": url, "r": referrer}
    headers = {"Content-Type": "text/plain", "User-Agent": agent, "Origin": ORIGIN}
    response = client.post("/api/v1/hit", data=json.dumps(body), headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def queue_visit(site, visit, **row):
    """A visit's first page view written straight to the stream, as the API's script
    would queue it, but without the API's checks."""
    fields = {"t": "v", "s": site.id, "c": visit, "m": int(time.time() * 1000),
              "v": orjson.dumps({"visitor_id": "visitor-001",
                                 "landing_url": "https://shop.example/", **row})}
    return redis_client().xadd(visitstate.STREAM, fields)


def stored(visit):
    return db.session.scalar(select(Visit).where(Visit.client_visit_id == visit))


def test_the_api_removes_control_characters_from_what_it_stores(client, shop, written):
    _, site, block = shop
    hit(client, site, "visit-0001",
        url="https://shop.example/?utm_source=%00goo%01gle&utm_medium=c%7Fp%C2%9Fc"
            "&utm_campaign=%ED%A0%80spring\u0000",
        referrer="https://ya.ru/\u0000search?\u0007q=1", agent=BROWSER + "\x01\x1f")
    assert written() == 1
    visit = stored("visit-0001")
    assert (visit.utm_source, visit.utm_medium) == ("google", "cpc")
    assert visit.utm_campaign == "\ufffd" * 3 + "spring"  # undecodable bytes, no surrogate
    assert visit.landing_url == ("https://shop.example/?utm_source=%00goo%01gle&utm_medium="
                                 "c%7Fp%C2%9Fc&utm_campaign=%ED%A0%80spring")
    assert visit.referrer == "https://ya.ru/search?q=1"
    assert visit.user_agent == BROWSER
    response = client.post("/api/v1/display", data=json.dumps(
        {"k": site.key, "s": "visit-0001", "d": [[block.id, "ads@shop.example\u0000", 1]]}),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN})
    assert response.json == {"stored": 1}
    assert written() == 1
    assert db.session.scalar(select(Display.address)) == "ads@shop.example"


def test_an_address_of_control_characters_only_is_refused(client, shop):
    _, site, block = shop
    hit(client, site, "visit-0001")
    response = client.post("/api/v1/display", data=json.dumps(
        {"k": site.key, "s": "visit-0001", "d": [[block.id, "\u0000\u0001", 1]]}),
        headers={"Content-Type": "text/plain", "Origin": ORIGIN})
    assert response.status_code == 400
    assert response.json == {"error": "an entry of d is out of range"}


def test_an_unreadable_entry_is_set_aside_and_the_rest_written(client, shop, written, runner):
    _, site, _ = shop
    hit(client, site, "visit-0001")
    bad = redis_client().xadd(visitstate.STREAM,
                              {"t": "zz", "s": site.id, "c": "x\x1b[2J", "m": 1})
    hit(client, site, "visit-0002")
    assert written() == 3
    assert stored("visit-0001") and stored("visit-0002")
    assert ingest.rejected_count() == 1
    [entry] = ingest.rejected()
    assert (entry["id"], entry["reason"]) == (bad.decode(), "unreadable: unexpected shape")
    assert entry["fields"] == {"t": "zz", "s": str(site.id), "c": "x\x1b[2J", "m": "1"}
    result = runner.invoke(args=["pageviews", "rejected"])
    assert result.exit_code == 0, result.output
    assert "1 page-view entries set aside" in result.output
    assert f"{bad.decode()}  queued" in result.output
    assert "reason: unreadable: unexpected shape" in result.output
    assert "c='x\\x1b[2J'" in result.output and "\x1b" not in result.output  # escaped
    assert written() == 0
    assert redis_client().xlen(visitstate.STREAM) == 1  # trimmed up to the cursor


def test_postgresql_refuses_a_nul_and_the_writer_sets_that_entry_aside(
        postgres, client, shop, written, runner):
    """A NUL that passed the door (here: queued straight to the stream) blocks nothing."""
    _, site, _ = shop
    hit(client, site, "visit-0001")
    bad = queue_visit(site, "visit-0002", utm_source="google\u0000", referrer="\u0000")
    hit(client, site, "visit-0003")
    hit(client, site, "visit-0003")
    assert written() == 4
    assert stored("visit-0001").page_views == 1
    assert stored("visit-0002") is None
    assert stored("visit-0003").page_views == 2
    assert ingest.rejected_count() == 1
    [entry] = ingest.rejected()
    assert entry["id"] == bad.decode()
    assert "NUL" in entry["reason"]
    assert orjson.loads(entry["fields"]["v"])["utm_source"] == "google\u0000"
    cursor = db.session.scalar(select(IngestCursor.last_id))
    assert cursor == redis_client().xrevrange(visitstate.STREAM, count=1)[0][0].decode()
    assert "NUL" in runner.invoke(args=["pageviews", "rejected"]).output
    # The next page views are written at once, and nothing is set aside twice.
    hit(client, site, "visit-0004")
    assert written() == 1
    assert stored("visit-0004") is not None
    assert ingest.rejected_count() == 1


def test_a_writer_that_dies_before_its_commit_sets_an_entry_aside_once(
        postgres, client, shop, ctx):
    _, site, _ = shop
    bad = queue_visit(site, "visit-0001", utm_source="\u0000")
    redis = redis_client()
    raw = redis.xrange(visitstate.STREAM)
    ingest.set_aside(redis, raw, [(bad, "first try")])
    db.session.rollback()  # the writer died: the cursor never moved
    assert ingest.flush(redis) == 1
    assert ingest.rejected_count() == 1
    assert ingest.rejected()[0]["reason"] == "first try"


def test_postgresql_away_sets_nothing_aside_and_restarted_under_the_writer_loses_nothing(
        postgres, client, shop, written):
    """While the database is down the writer fails and keeps everything queued; after a
    restart (an immediate stop, as after a crash) every page view is written once."""
    _, site, _ = shop
    for n in range(3):
        hit(client, site, f"visit-000{n}")
    assert written() == 3
    hit(client, site, "visit-0000")
    hit(client, site, "visit-0009")
    hit(client, site, "visit-0009")
    postgres.stop(mode="immediate")
    try:
        with pytest.raises(ingest.OperationalError):
            written()
    finally:
        postgres.start()
    assert redis_client().exists(ingest.REJECTED) == 0
    db.session.rollback()
    db.engine.dispose()  # the pool's connections died with the server
    assert written() == 3
    assert ingest.rejected_count() == 0
    views = dict(db.session.execute(select(Visit.client_visit_id, Visit.page_views)).all())
    assert views == {"visit-0000": 2, "visit-0001": 1, "visit-0002": 1, "visit-0009": 2}


def test_postgresql_restarted_in_the_middle_of_writing_loses_and_doubles_nothing(
        postgres, app, shop, ctx):
    """2,000 page views (200 visits of 10) written in batches of 100 by a writer thread
    while PostgreSQL is stopped at once and started again: whatever batch it hits,
    each visit ends with exactly its 10 page views."""
    _, site, _ = shop
    redis = redis_client()
    row = orjson.dumps({"visitor_id": "visitor-001", "landing_url": "https://shop.example/"})
    now = int(time.time() * 1000)
    pipe = redis.pipeline(transaction=False)
    for view in range(10):
        for visit in range(200):
            fields = {"t": "v" if view == 0 else "p", "s": site.id, "c": f"visit-{visit:04d}",
                      "m": now + view}
            if view == 0:
                fields["v"] = row
            pipe.xadd(visitstate.STREAM, fields)
    pipe.execute()
    db.session.rollback()  # the test's own connection goes back to the pool
    first_batch, done, errors = threading.Event(), threading.Event(), []

    def writer():
        with app.app_context():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if ingest.write_batch(redis_client(), 100) == 0:
                        done.set()
                        return
                    first_batch.set()
                except ingest.OperationalError as exc:
                    errors.append(exc)
                    db.session.rollback()
                    time.sleep(0.05)
            db.session.remove()

    thread = threading.Thread(target=writer)
    thread.start()
    assert first_batch.wait(30)
    postgres.restart()
    thread.join(90)
    assert done.is_set()
    assert errors, "the restart came after the writer had finished: nothing was tested"
    views = db.session.execute(select(Visit.client_visit_id, Visit.page_views)).all()
    assert len(views) == 200
    assert {count for _, count in views} == {10}
    assert ingest.rejected_count() == 0


@pytest.mark.parametrize(("text", "clean"), [
    ("google", "google"),
    ("a\x00b\tc\nd\r\x1b[2J\x7fe\x85f\x9f", "abcd[2Jef"),
    ("x\ud800y\udfffz", "xyz"),  # lone surrogates
    ("Прайс 😀 ok", "Прайс 😀 ok"),  # letters, emoji and spaces stay
])
def test_one_line_removes_control_characters_and_lone_surrogates(text, clean):
    assert textclean.one_line(text) == clean


def test_a_number_too_large_for_the_database_blocks_nothing(client, shop, written):
    """A rule id of 2**64 - 1 (never made by the API) is refused by either database (its
    driver); the page views after it are written."""
    _, site, _ = shop
    fields = {"t": "v", "s": site.id, "c": "visit-huge", "m": int(time.time() * 1000),
              "v": orjson.dumps({"visitor_id": "visitor-001"}),
              "a": b'[{"r": 18446744073709551615, "k": "static", "a": "x@shop.example"}]'}
    redis_client().xadd(visitstate.STREAM, fields)
    hit(client, site, "visit-0001")
    hit(client, site, "visit-0001")
    assert written() == 3
    assert stored("visit-0001").page_views == 2
    assert stored("visit-huge") is None
    [entry] = ingest.rejected()
    assert "too large" in entry["reason"] or "out of range" in entry["reason"]
