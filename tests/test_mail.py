"""Outgoing mail: send_mail() stores and queues, a real RQ worker sends it to a real SMTP
server on loopback (aiosmtpd); failures are retried, then shown to the account's owners."""

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import select

from tests.services.smtpserver import SmtpServer
from tracker import create_app, mailer
from tracker.extensions import db
from tracker.models import Membership, OutgoingMail
from tracker.models.mail import OutgoingMail as Mail


@pytest.fixture
def mail_config(app_config, smtp):
    app_config.update(SMTP_URL=smtp.url(), MAIL_FROM="Tracker <noreply@tracker.test>",
                      BASE_URL="http://tracker.test", MAIL_RETRY_INTERVALS="0,0")
    return app_config


@pytest.fixture
def redis(app):
    connection = Redis.from_url(app.config["REDIS_URL"])
    yield connection
    connection.close()


def work(redis):
    """Run a real RQ worker (burst, with its scheduler) over the queue until it is empty."""
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(
        burst=True, with_scheduler=True)
    db.session.rollback()  # see what the worker committed


def test_a_queued_message_reaches_the_smtp_server(mail_config, smtp, ctx, factory, redis):
    account = factory.account()
    mail = mailer.send_mail("anna@example.org", "Привет <b>", "Line one\nСтрока два",
                            account_id=account.id)
    assert mail.state == "pending" and mail.body_token  # stored before it is sent
    assert "Строка" not in mail.body_token  # and only encrypted
    work(redis)
    received = smtp.wait_for(1)[0]
    assert received["rcpt_tos"] == ["anna@example.org"]
    assert received["mail_from"] == "noreply@tracker.test"
    message = received["message"]
    assert message["Subject"] == "Привет <b>"
    assert message["From"] == "Tracker <noreply@tracker.test>"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content().replace("\r\n", "\n") == "Line one\nСтрока два\n"
    mail = db.session.get(OutgoingMail, mail.id)
    assert (mail.state, mail.attempts, mail.body_token) == ("sent", 1, None)
    assert mail.sent_at is not None


def test_without_smtp_url_nothing_is_stored_or_sent(app, ctx):
    assert not mailer.configured()
    assert mailer.send_mail("anna@example.org", "Hi", "text") is None
    assert db.session.scalars(select(OutgoingMail)).all() == []


def test_smtp_auth_from_the_url(app_config, ctx_free_app_factory):
    server = SmtpServer(login="sender@tracker.test", password="p@ss:word/1").start()
    try:
        url = server.url().replace("p@ss:word/1", "p%40ss%3Aword%2F1")
        app = ctx_free_app_factory(SMTP_URL=url)
        with app.app_context():
            assert app.config["MAIL_FROM"] == "sender@tracker.test"  # the login by default
            mailer.send_mail("bob@example.org", "Subject", "Body")
            work(Redis.from_url(app.config["REDIS_URL"]))
            received = server.wait_for(1)[0]
            assert received["authenticated"] and received["rcpt_tos"] == ["bob@example.org"]
    finally:
        server.stop()


def test_starttls_checked_against_smtp_ca_file(tmp_path, ctx_free_app_factory):
    from tests.services.imapserver import _make_certificates

    ca, cert, key = _make_certificates(tmp_path / "certs")
    server = SmtpServer(login="u", password="secret", certificate=(cert, key)).start()
    try:
        app = ctx_free_app_factory(SMTP_URL=server.url("smtp", "starttls=1"),
                                   SMTP_CA_FILE=str(ca), MAIL_FROM="a@tracker.test")
        with app.app_context():
            mailer.send_mail("bob@example.org", "Over TLS", "Body")
            work(Redis.from_url(app.config["REDIS_URL"]))
            received = server.wait_for(1)[0]
            assert received["tls"] and received["authenticated"]
            # Without the CA the certificate is refused: not sent, retried, then failed.
        app = ctx_free_app_factory(SMTP_URL=server.url("smtp", "starttls=1"),
                                   MAIL_FROM="a@tracker.test")
        with app.app_context():
            mail = mailer.send_mail("carl@example.org", "Over TLS", "Body")
            work(Redis.from_url(app.config["REDIS_URL"]))
            mail = db.session.get(Mail, mail.id)
            assert mail.state == "failed" and "CERTIFICATE_VERIFY_FAILED" in mail.last_error
            assert len(server.messages) == 1
    finally:
        server.stop()


def test_smtps_connects_with_tls_from_the_start(tmp_path, ctx_free_app_factory):
    from tests.services.imapserver import _make_certificates

    ca, cert, key = _make_certificates(tmp_path / "certs")
    server = SmtpServer(login="u", password="secret", certificate=(cert, key),
                        implicit_tls=True).start()
    try:
        app = ctx_free_app_factory(SMTP_URL=server.url("smtps"), SMTP_CA_FILE=str(ca),
                                   MAIL_FROM="a@tracker.test")
        with app.app_context():
            mail = mailer.send_mail("bob@example.org", "Implicit TLS", "Body")
            work(Redis.from_url(app.config["REDIS_URL"]))
            received = server.wait_for(1)[0]
            assert received["authenticated"] and received["message"]["Subject"] == "Implicit TLS"
            assert db.session.get(Mail, mail.id).state == "sent"
    finally:
        server.stop()


@pytest.fixture
def ctx_free_app_factory(app_config, redis_server):
    """Apps with extra settings on the test's database (no app context held)."""
    made = []

    def make(**settings):
        app = create_app({**app_config, "BASE_URL": "http://tracker.test",
                          "MAIL_RETRY_INTERVALS": "0,0", **settings})
        if app.config["DATABASE_URL"].startswith("sqlite"):
            with app.app_context():
                db.create_all()
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_a_server_that_is_down_is_retried_then_shown_to_the_owner(mail_config, smtp, app,
                                                                 factory, client, redis):
    with app.app_context():
        owner = factory.user()
        account = owner.home_account
        viewer = factory.user(account=account)
        db.session.scalars(select(Membership).where(Membership.user_id == viewer.id)).one().role \
            = "viewer"
        db.session.commit()
        other_owner = factory.user()
        smtp.stop()  # nothing listens on the port any more
        mail = mailer.send_mail("lost@example.org", "Invitation <script>", "text",
                                account_id=account.id)
        work(redis)
        mail = db.session.get(OutgoingMail, mail.id)
        # The first attempt and the two retries of MAIL_RETRY_INTERVALS=0,0.
        assert (mail.state, mail.attempts) == ("failed", 3)
        assert "ConnectionRefusedError" in mail.last_error
        assert mail.body_token is None and mail.failed_at is not None
        people = {name: SimpleNamespace(email=user.email)
                  for name, user in [("owner", owner), ("viewer", viewer), ("other", other_owner)]}

    client.login(people["owner"])
    page = client.get("/settings/activity/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "lost@example.org" in html and "ConnectionRefusedError" in html
    assert "Invitation &lt;script&gt;" in html and "Invitation <script>" not in html
    settings = client.get("/settings").get_data(as_text=True)
    assert "1 email of this account could not be sent." in settings
    assert 'href="/settings/activity/#mail-failures"' in settings

    other = app.test_client()
    other.login(people["other"])
    page = other.get("/settings/activity/")
    assert page.status_code == 200 and "lost@example.org" not in page.get_data(as_text=True)
    viewer_client = app.test_client()
    viewer_client.login(people["viewer"])
    assert viewer_client.get("/settings/activity/").status_code == 403
    assert "could not be sent" not in viewer_client.get("/settings").get_data(as_text=True)


def test_a_refused_recipient_fails_at_once(mail_config, smtp, ctx, factory, redis):
    smtp.refuse.add("nobody@example.org")
    account = factory.account()
    mail = mailer.send_mail("nobody@example.org", "Hi", "text", account_id=account.id)
    work(redis)
    mail = db.session.get(OutgoingMail, mail.id)
    assert (mail.state, mail.attempts) == ("failed", 1)
    assert "550" in mail.last_error
    assert smtp.messages == []


def test_a_server_back_before_the_last_retry_gets_the_message(app_config, ctx_free_app_factory):
    """One refused connection, then the server is up: the retry delivers (with a real
    `rq worker --with-scheduler` process and a retry delay of a second)."""
    server = SmtpServer()
    app = ctx_free_app_factory(SMTP_URL=server.url(), MAIL_FROM="a@tracker.test",
                               MAIL_RETRY_INTERVALS="2")
    with app.app_context():
        mail = mailer.send_mail("dora@example.org", "Second try", "Body")
        env = {
            "PATH": "/usr/bin:/bin", "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"], "SECRET_KEY": app.config["SECRET_KEY"],
            "FERNET_KEYS": ",".join(app.config["FERNET_KEYS"]), "SMTP_URL": server.url(),
            "BASE_URL": "http://tracker.test", "MAIL_FROM": "a@tracker.test",
            "MAIL_RETRY_INTERVALS": "2", "INSTANCE_PATH": app.config.get("INSTANCE_PATH", ""),
        }
        rq = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--with-scheduler",
              "--worker-class", "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"],
              "default"]
        done = subprocess.run(rq, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        db.session.rollback()
        assert db.session.get(Mail, mail.id).attempts == 1  # refused: nothing listened
        server.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                done = subprocess.run(rq, env=env, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, done.stderr
                db.session.rollback()
                if db.session.get(Mail, mail.id).state != "pending":
                    break
                time.sleep(0.5)
            mail = db.session.get(Mail, mail.id)
            assert (mail.state, mail.attempts) == ("sent", 2)
            assert server.wait_for(1)[0]["message"]["Subject"] == "Second try"
        finally:
            server.stop()


@pytest.mark.parametrize("settings, message", [
    ({"SMTP_URL": "http://mail.example"}, "SMTP_URL"),
    ({"SMTP_URL": "smtp://mail.example:99999"}, "SMTP_URL"),
    ({"SMTP_URL": "smtp://mail.example", "BASE_URL": ""}, "BASE_URL"),
    ({"SMTP_URL": "smtp://mail.example", "MAIL_FROM": "no address"}, "MAIL_FROM"),
    ({"MAIL_RETRY_INTERVALS": "1,x"}, "MAIL_RETRY_INTERVALS"),
    ({"SMTP_CA_FILE": "/no/such/file"}, "SMTP_CA_FILE"),
])
def test_bad_mail_settings_name_the_variable(app_config, settings, message):
    with pytest.raises(SystemExit, match=f"Configuration error: {message}"):
        create_app({**app_config, "BASE_URL": "http://tracker.test", **settings})


def test_smtp_url_forms():
    plain = mailer.SmtpSettings("smtp://mail.example")
    assert (plain.host, plain.port, plain.ssl, plain.starttls, plain.username) == \
        ("mail.example", 25, False, False, None)
    tls = mailer.SmtpSettings("smtps://u%40x.org:p%3Aw@mail.example")
    assert (tls.port, tls.ssl, tls.username, tls.password) == (465, True, "u@x.org", "p:w")
    submission = mailer.SmtpSettings("smtp+starttls://mail.example")
    assert (submission.port, submission.starttls) == (587, True)
    assert mailer.SmtpSettings("smtp://mail.example:2525?starttls=1").starttls


def test_a_message_whose_job_was_lost_is_shown_as_failed(mail_config, ctx, factory):
    """No worker ever ran it (Redis lost the job): the sweep marks it failed, once it is
    long past its last retry; a recent one is left alone."""
    from datetime import timedelta

    from tracker.jobs.mail import sweep
    from tracker.models import utcnow

    account = factory.account()
    old = mailer.send_mail("old@example.org", "Old", "text", account_id=account.id)
    new = mailer.send_mail("new@example.org", "New", "text", account_id=account.id)
    old.created_at = utcnow() - timedelta(hours=2)
    db.session.commit()
    old_id, new_id = old.id, new.id
    assert sweep() == [old_id]
    db.session.expire_all()
    old, new = db.session.get(Mail, old_id), db.session.get(Mail, new_id)
    assert (old.state, old.body_token) == ("failed", None) and "lost" in old.last_error
    assert new.state == "pending" and new.body_token
