"""Webhooks: signed JSON posted to a real HTTP receiver on loopback by real RQ workers."""

import hashlib
import hmac
import json
import threading
import time
from collections import defaultdict
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from tracker import sync
from tracker.extensions import db
from tracker.integrations import webhooks
from tracker.jobs import webhooks as webhook_jobs
from tracker.models import Webhook, WebhookAttempt, WebhookDelivery, utcnow

TIMEOUT = 1.0


class Receiver:
    """A real HTTP server on loopback that checks every signature and answers by plan.

    plan: the answers per event id, in attempt order: a status code, or "sleep" (answer
    200 after sleeping past the sender's time-out); after the plan, 200.
    """

    def __init__(self, plan=(), body=b"ok", tls=None):
        self.plan = list(plan)
        self.body = body
        self.secret = None
        self.requests = []  # dicts: event_id, status, valid, body, headers, at
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                timestamp = self.headers.get("X-Tracker-Timestamp", "")
                expected = "v1=" + hmac.new(
                    (receiver.secret or "").encode(), timestamp.encode() + b"." + body,
                    hashlib.sha256).hexdigest()
                valid = hmac.compare_digest(expected,
                                            self.headers.get("X-Tracker-Signature", ""))
                event_id = json.loads(body)["id"]
                with receiver.lock:
                    seen = sum(1 for r in receiver.requests if r["event_id"] == event_id)
                    answer = receiver.plan[seen] if seen < len(receiver.plan) else 200
                    receiver.requests.append({
                        "event_id": event_id, "status": answer, "valid": valid, "body": body,
                        "headers": dict(self.headers), "path": self.path, "at": time.time()})
                if answer == "sleep":
                    time.sleep(TIMEOUT + 1.5)
                    answer = 200
                if answer == "trickle":  # the status line a byte every 0.2 s: each read
                    try:                     # is quick, the whole answer too slow
                        for byte in b"HTTP/1.1 200 OK\r\n\r\n":
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.2)
                    except OSError:
                        pass
                    return
                try:
                    self.send_response(answer)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(receiver.body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # (certificate, key): HTTPS
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.server.server_address[1]}/hooks/email?x=1"

    def successes(self):
        counts = defaultdict(int)
        for r in self.requests:
            if r["status"] in (200, "sleep"):
                counts[r["event_id"]] += 0 if r["status"] == "sleep" else 1
        return counts

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_config(app_config):
    # The receiver is on loopback: the operator's switch lets it through.
    return dict(app_config, ALLOW_PRIVATE_IMAP_HOSTS=True, WEBHOOK_TIMEOUT_SECONDS=TIMEOUT,
                WEBHOOK_RETRY_BASE_SECONDS=1, WEBHOOK_RETRY_MAX_SECONDS=2)


@pytest.fixture
def receiver():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def redis(app):
    connection = Redis.from_url(app.config["REDIS_URL"])
    yield connection
    connection.close()


def run_workers(redis, until, seconds=30):
    """Real RQ workers (burst, with the scheduler) until `until()` holds; returns rounds."""
    queue = Queue("default", connection=redis)
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        SimpleWorker([queue], connection=redis).work(burst=True, with_scheduler=True)
        rounds += 1
        db.session.rollback()
        if until():
            return rounds
        time.sleep(0.2)
    raise AssertionError("the deliveries did not finish in time")


def add_webhook(account, url, events="all"):
    webhook = Webhook(account_id=account.id, url=url, events=events)
    secret = webhooks.new_secret()
    webhook.secret = secret
    db.session.add(webhook)
    db.session.commit()
    return webhook, secret


def headers(n, sender="lead@example.org", to="info@shop.example", subject=None):
    return (f"Message-ID: <{n}@example.org>\r\nFrom: Lead <{sender}>\r\nTo: {to}\r\n"
            f"Subject: {subject or f'Request {n}'}\r\n\r\n").encode()


def store(mailbox, uids, **kwargs):
    """Store messages the way a sync does (counting, attribution, the committed signal)."""
    at = utcnow().replace(microsecond=0) - timedelta(hours=5)
    messages = [(uid, at + timedelta(minutes=uid), headers(uid, **kwargs)) for uid in uids]
    return sync.store_messages(mailbox, mailbox.folders[0], messages, 7)


def pending():
    return db.session.scalar(select(func.count()).select_from(WebhookDelivery)
                             .where(WebhookDelivery.state == "pending"))


def test_retries_after_500_and_a_timeout_then_one_success_per_event(factory, receiver, redis):
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver(plan=[500, "sleep"])
    webhook, r.secret = add_webhook(account, r.url)
    assert store(mailbox, [1, 2]) == 2  # the same sender and recipient: new, then repeat

    started = time.monotonic()
    run_workers(redis, lambda: pending() == 0)
    elapsed = time.monotonic() - started

    deliveries = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    assert [(d.event, d.state, d.attempts) for d in deliveries] == [
        ("email.new_request", "delivered", 3), ("email.repeat", "delivered", 3)]
    assert all(request["valid"] for request in r.requests)
    # Every event: 500, then the time-out, then one 200; never again after it.
    assert dict(r.successes()) == {d.event_id: 1 for d in deliveries}
    by_event = defaultdict(list)
    for request in r.requests:
        by_event[request["event_id"]].append(request)
    for delivery in deliveries:
        tries = by_event[delivery.event_id]
        assert [t["status"] for t in tries] == [500, "sleep", 200]
        assert len({t["body"] for t in tries}) == 1  # the same body every time
        assert [t["headers"]["X-Tracker-Attempt"] for t in tries] == ["1", "2", "3"]
        assert tries[0]["headers"]["X-Tracker-Event-Id"] == delivery.event_id
        assert tries[0]["path"] == "/hooks/email?x=1"
        # Retried later, never at once (the back-off's figures: test_retry_delay_doubles;
        # rq's scheduler keeps a job's time in whole seconds, so a 1 s delay may be 0.3 s).
        assert tries[0]["at"] < tries[1]["at"] < tries[2]["at"]
    body = json.loads(by_event[deliveries[0].event_id][0]["body"])
    assert body["type"] == "email.new_request"
    assert body["email"]["subject"] == "Request 1"
    assert body["email"]["new_request"] is True
    assert body["email"]["sender"] == {"address": "lead@example.org", "name": "Lead"}
    assert body["truncated"] == []
    log = db.session.scalars(select(WebhookAttempt).where(
        WebhookAttempt.delivery_id == deliveries[0].id).order_by(WebhookAttempt.id)).all()
    assert [(a.attempt, a.status_code, a.error) for a in log] == [
        (1, 500, None), (2, None, "timeout"), (3, 200, None)]
    assert log[1].duration_ms < (TIMEOUT + 0.5) * 1000  # the time-out held
    assert log[2].excerpt == "ok"
    db.session.refresh(webhook)
    assert webhook.failing_since is None and webhook.last_success_at is not None
    print(f"\nwebhooks: 2 events x 3 attempts delivered in {elapsed:.1f} s")


def test_new_request_urls_get_counted_emails_only(factory, receiver, redis):
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver()
    webhook, r.secret = add_webhook(account, r.url, events="new_request")
    other, _secret = add_webhook(factory.account(), r.url, events="all")
    assert store(mailbox, [1, 2, 3]) == 3
    run_workers(redis, lambda: pending() == 0)
    bodies = [json.loads(request["body"]) for request in r.requests]
    assert [(b["type"], b["email"]["subject"], b["webhook_id"]) for b in bodies] == [
        ("email.new_request", "Request 1", webhook.id)]  # never another account's URL
    assert all(request["valid"] for request in r.requests)


def test_private_address_refused_unless_the_operator_allows_it(app, factory, receiver, redis):
    app.config["ALLOW_PRIVATE_IMAP_HOSTS"] = False
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver()
    webhook, r.secret = add_webhook(account, r.url)  # added while it was allowed
    with pytest.raises(webhooks.WebhookUrlError) as refused:
        webhooks.check_url(r.url)
    assert refused.value.code == "blocked_address"
    for url in ("http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]:8080/",
                "http://0.0.0.0/", "http://localhost/"):
        with pytest.raises(webhooks.WebhookUrlError):
            webhooks.check_url(url)
    store(mailbox, [1])
    run_workers(redis, lambda: db.session.scalar(
        select(func.count()).select_from(WebhookAttempt)) >= 1)
    attempt = db.session.scalars(select(WebhookAttempt)).one()
    assert (attempt.status_code, attempt.error, attempt.excerpt) == (
        None, "blocked_address", "127.0.0.1")
    assert r.requests == []  # nothing reached the receiver


def test_urls_that_are_not_usable_are_refused():
    for url, code in (("ftp://example.com/", "bad_scheme"), ("https://u:p@example.com/",
                                                              "userinfo"),
                      ("example.com/hook", "bad_scheme"), ("https://", "bad_url"),
                      ("https://exa mple.com/", "bad_url"), ("https://x.com/" + "a" * 2000,
                                                             "url_too_long")):
        with pytest.raises(webhooks.WebhookUrlError) as refused:
            webhooks.parse_url(url)
        assert refused.value.code == code, url
    target = webhooks.parse_url("https://Пример.рф:8443/hook?a=1")
    assert (target.host, target.port, target.path, target.host_header) == (
        "xn--e1afmkfd.xn--p1ai", 8443, "/hook?a=1", "xn--e1afmkfd.xn--p1ai:8443")


def test_redirects_are_not_followed(factory, receiver, redis):
    account = factory.account()
    mailbox = factory.mailbox(account)
    target = receiver()
    r = receiver(plan=[302] * 20, body=target.url.encode())
    webhook, r.secret = add_webhook(account, r.url)
    store(mailbox, [1])
    run_workers(redis, lambda: db.session.scalar(
        select(func.count()).select_from(WebhookAttempt)) >= 1)
    attempt = db.session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).first()
    assert attempt.status_code == 302
    assert target.requests == []


def test_body_is_at_most_64_kb_and_says_what_was_cut(factory, ctx):
    account = factory.account()
    mailbox = factory.mailbox(account)
    many = [f"person{n:05d}@very-long-domain-name.example.com" for n in range(3000)]
    email = factory.email(mailbox, subject="S" * 1000)
    email.recipients = many
    db.session.commit()
    webhook, _secret = add_webhook(account, "https://crm.example.com/hook")
    delivery, = webhooks.create_deliveries(account.id, [email.id])
    body = delivery.body.encode()
    assert len(body) <= webhooks.MAX_BODY
    document = json.loads(body)
    assert "email.recipients" in document["truncated"]
    assert document["email"]["recipients"][0] == many[0]
    assert document["email"]["subject"].startswith("SSS")
    assert document["id"] == delivery.event_id


def test_signature_covers_timestamp_and_body():
    signature = webhooks.sign("whsec_x", 1700000000, b'{"a":1}')
    expected = hmac.new(b"whsec_x", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert signature == "v1=" + expected
    assert webhooks.sign("whsec_x", 1700000001, b'{"a":1}') != signature


def test_a_url_failing_for_a_day_is_paused_and_says_why(factory, receiver, redis, client, user):
    account = user.account
    mailbox = factory.mailbox(account)
    r = receiver(plan=[503] * 10, body=b"<b>down</b>")
    webhook, r.secret = add_webhook(account, r.url)
    webhook.failing_since = utcnow() - timedelta(hours=25)
    db.session.commit()
    store(mailbox, [1], sender="a@example.org")
    store(mailbox, [2], sender="b@example.org")
    run_workers(redis, lambda: pending() == 0)
    db.session.refresh(webhook)
    assert not webhook.active and webhook.paused_reason == "failing"
    assert webhook.last_error == "HTTP 503"
    states = db.session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id))
    assert list(states) == ["failed", "cancelled"]
    assert len(r.requests) == 1
    # A paused URL gets no new events.
    store(mailbox, [3], sender="c@example.org")
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 2
    client.login(user)
    page = client.get(f"/webhooks/{webhook.id}").get_data(as_text=True)
    assert 'id="paused-why"' in page and "HTTP 503" in page
    assert "&lt;b&gt;down&lt;/b&gt;" in page and "<b>down</b>" not in page  # escaped excerpt


def test_lost_jobs_are_sent_by_the_sweep(factory, receiver, redis, ctx):
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver()
    webhook, r.secret = add_webhook(account, r.url)
    email = factory.email(mailbox)
    delivery, = webhooks.create_deliveries(account.id, [email.id])  # never queued
    delivery.next_attempt_at = utcnow() - timedelta(minutes=5)
    db.session.commit()
    assert webhook_jobs.sweep() == [delivery.id]
    run_workers(redis, lambda: pending() == 0)
    assert [q["valid"] for q in r.requests] == [True]
    assert webhook_jobs.sweep() == []  # delivered: nothing more to send


def test_the_same_delivery_queued_twice_is_sent_once(factory, receiver, redis, ctx):
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver()
    webhook, r.secret = add_webhook(account, r.url)
    email = factory.email(mailbox)
    delivery, = webhooks.create_deliveries(account.id, [email.id])
    db.session.commit()
    webhook_jobs.enqueue_delivery(delivery.id)
    webhook_jobs.enqueue_delivery(delivery.id)
    run_workers(redis, lambda: pending() == 0)
    assert len(r.requests) == 1


# ------------------------------------------------------------------ pages


def test_adding_a_url_shows_the_secret_once_and_stores_it_encrypted(client, user, receiver):
    client.login(user)
    r = receiver()
    answer = client.post("/webhooks/new", data={"url": r.url, "events": "new_request"})
    assert answer.status_code == 201
    page = answer.get_data(as_text=True)
    webhook = db.session.scalars(select(Webhook)).one()
    secret = webhook.secret
    assert secret.startswith("whsec_") and secret in page
    assert secret not in webhook.secret_token
    assert answer.headers["Cache-Control"] == "no-store"
    again = client.get(f"/webhooks/{webhook.id}").get_data(as_text=True)
    assert secret not in again
    assert r.url.replace("&", "&amp;") in client.get("/webhooks/").get_data(as_text=True)


def test_form_refuses_a_private_address_when_not_allowed(app, client, user):
    app.config["ALLOW_PRIVATE_IMAP_HOSTS"] = False
    client.login(user)
    answer = client.post("/webhooks/new", data={"url": "http://127.0.0.1:9/x",
                                                "events": "all"})
    assert answer.status_code == 422
    assert "private or reserved address" in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Webhook)) == 0


def test_send_test_pause_and_resume(client, user, receiver, redis):
    client.login(user)
    r = receiver(body=b"<script>alert(1)</script>")
    webhook, r.secret = add_webhook(user.account, r.url)
    queued = client.post(f"/webhooks/{webhook.id}/test", headers={"HX-Request": "true"})
    assert queued.status_code == 200  # htmx: the log alone, with the waiting event
    assert "1 event waiting to be delivered." in queued.get_data(as_text=True)
    assert "<html" not in queued.get_data(as_text=True)
    run_workers(redis, lambda: pending() == 0)
    assert json.loads(r.requests[0]["body"])["type"] == "test"
    log = client.get(f"/webhooks/{webhook.id}/log", headers={"HX-Request": "true"})
    html = log.get_data(as_text=True)
    assert "HTTP 200" in html and "<html" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert client.post(f"/webhooks/{webhook.id}/pause").status_code == 302
    db.session.refresh(webhook)
    assert not webhook.active and webhook.paused_reason == "manual"
    # A test goes out while paused too (the way to see a fixed receiver work again).
    assert client.post(f"/webhooks/{webhook.id}/test").status_code == 302
    run_workers(redis, lambda: pending() == 0)
    assert [json.loads(q["body"])["type"] for q in r.requests] == ["test", "test"]
    assert client.post(f"/webhooks/{webhook.id}/resume").status_code == 302
    db.session.refresh(webhook)
    assert webhook.active and webhook.paused_reason is None


def test_other_accounts_webhooks_are_404(client, user, factory):
    theirs, _secret = add_webhook(factory.account(), "https://crm.example.com/hook")
    client.login(user)
    for path in ("", "/log", "/edit", "/delete"):
        assert client.get(f"/webhooks/{theirs.id}{path}").status_code == 404, path
    for path in ("/edit", "/test", "/pause", "/resume", "/delete"):
        assert client.post(f"/webhooks/{theirs.id}{path}",
                           data={"url": "https://x.example.com/", "events": "all"}
                           ).status_code == 404, path
    db.session.refresh(theirs)
    assert theirs.active and theirs.url == "https://crm.example.com/hook"
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert "crm.example.com" not in client.get("/webhooks/").get_data(as_text=True)


def test_forms_need_the_csrf_token(client, user):
    webhook, _secret = add_webhook(user.account, "https://crm.example.com/hook")
    client.login(user)
    for path in ("/new", f"/{webhook.id}/pause", f"/{webhook.id}/delete"):
        client.csrf_token = None  # (each answer's page carries a fresh one)
        assert client.post(f"/webhooks{path}", data={"url": "https://a.example.com/"},
                           ).status_code == 400
    db.session.refresh(webhook)
    assert webhook.active


def test_settings_are_checked(app_config):
    from tracker import create_app

    for name, value in (("WEBHOOK_TIMEOUT_SECONDS", "0"), ("WEBHOOK_TIMEOUT_SECONDS", "ten"),
                        ("WEBHOOK_PAUSE_AFTER_SECONDS", "5")):
        with pytest.raises(SystemExit, match=name):
            create_app(dict(app_config, **{name: value}))


def test_cron_runs_the_sweep():
    from rq import cron

    import tracker.jobs.cron  # noqa: F401  (registers on import, as `rq cron` loads it)

    names = [f"{d['func'].__module__}.{d['func'].__name__}" for d in cron._job_data_registry]
    assert "tracker.jobs.webhooks.sweep" in names


def test_the_readme_receiver_snippet_verifies_our_signature():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code, = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S)
             if "def verify" in block]
    namespace = {}
    exec(code, namespace)  # noqa: S102  (our own README)
    verify = namespace["verify"]
    body, now = b'{"id":"e1","type":"test"}', int(time.time())
    headers = {"X-Tracker-Timestamp": str(now),
               "X-Tracker-Signature": webhooks.sign("whsec_abc", now, body)}
    assert verify("whsec_abc", headers, body)
    assert not verify("whsec_other", headers, body)
    assert not verify("whsec_abc", headers, body + b" ")
    old = {"X-Tracker-Timestamp": str(now - 3600),
           "X-Tracker-Signature": webhooks.sign("whsec_abc", now - 3600, body)}
    assert not verify("whsec_abc", old, body)


def test_a_real_worker_process_delivers_and_retries(app, factory, receiver, redis, worker_env,
                                                    tmp_path):
    """`rq worker --with-scheduler` processes of our worker class, settings from the env."""
    import subprocess
    import sys

    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver(plan=[500])
    webhook, r.secret = add_webhook(account, r.url, events="new_request")
    store(mailbox, [1])
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", WEBHOOK_TIMEOUT_SECONDS="2",
                     WEBHOOK_RETRY_BASE_SECONDS="1")
    rq = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--with-scheduler",
          "--worker-class", "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"],
          "default"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = subprocess.run(rq, env=env, capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        db.session.rollback()
        if pending() == 0:
            break
        time.sleep(0.5)
    delivery = db.session.scalars(select(WebhookDelivery)).one()
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert [q["status"] for q in r.requests] == [500, 200]
    assert all(q["valid"] for q in r.requests)


def test_https_is_verified_against_the_url_name(app, factory, receiver, redis, tmp_path):
    """TLS to the checked address, with the URL's name as SNI and for the certificate."""
    from tests.services.imapserver import _make_certificates

    ca, cert, key = _make_certificates(tmp_path / "certs")  # for localhost and 127.0.0.1
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver(tls=(cert, key))
    webhook, r.secret = add_webhook(account, r.url)
    assert r.url.startswith("https://localhost:")
    store(mailbox, [1])  # not trusted yet: the test CA is unknown
    run_workers(redis, lambda: db.session.scalar(
        select(func.count()).select_from(WebhookAttempt)) >= 1)
    first = db.session.scalars(select(WebhookAttempt)).one()
    assert first.error == "tls_failed" and "CERTIFICATE_VERIFY_FAILED" in first.excerpt
    assert r.requests == []
    app.config["IMAP_CA_FILE"] = str(ca)  # the operator trusts the CA
    run_workers(redis, lambda: pending() == 0)
    assert [(q["status"], q["valid"]) for q in r.requests] == [(200, True)]
    assert r.requests[0]["headers"]["Host"] == f"localhost:{r.server.server_address[1]}"


def test_webhook_pages_in_russian(client, factory):
    user = factory.user(locale="ru")
    webhook, _secret = add_webhook(user.account, "https://crm.example.com/hook")
    webhooks.pause(webhook, "failing")
    webhook.failing_since, webhook.last_error = utcnow() - timedelta(days=1), "HTTP 500"
    db.session.commit()
    client.login(user)
    listing = client.get("/webhooks/").get_data(as_text=True)
    assert "Вебхуки" in listing and "Приостановлен: ошибки" in listing
    page = client.get(f"/webhooks/{webhook.id}").get_data(as_text=True)
    assert "Автоматически приостановлен" in page and "Журнал доставки" in page
    assert "Send test" not in page and "Отправить тест" in page
    form = client.get("/webhooks/new").get_data(as_text=True)
    assert "Только новые обращения" in form
    refused = client.post("/webhooks/new", data={"url": "ftp://x", "events": "all"})
    assert "URL должен начинаться с https://" in refused.get_data(as_text=True)


def test_a_receiver_that_trickles_its_answer_times_out(factory, receiver, redis, ctx):
    account = factory.account()
    mailbox = factory.mailbox(account)
    r = receiver(plan=["trickle"])
    webhook, r.secret = add_webhook(account, r.url)
    email = factory.email(mailbox)
    delivery, = webhooks.create_deliveries(account.id, [email.id])
    db.session.commit()
    started = time.monotonic()
    assert webhooks.attempt(delivery.id) == 1  # retried in a second
    assert time.monotonic() - started < TIMEOUT + 1
    attempt = db.session.scalars(select(WebhookAttempt)).one()
    assert (attempt.status_code, attempt.error) == (None, "timeout")


def test_retry_delay_doubles_up_to_its_cap(app, ctx):
    app.config.update(WEBHOOK_RETRY_BASE_SECONDS=30, WEBHOOK_RETRY_MAX_SECONDS=4 * 3600)
    delays = [webhooks._retry_delay(n) for n in range(1, 12)]
    assert delays[:4] == [30, 60, 120, 240]
    assert max(delays) == delays[-1] == 4 * 3600
