"""Passwords: change (current password, other sessions end), "forgot password" by email
through a real SMTP server on loopback and a real RQ worker, reset links (single-use,
expiring, stored hashed) and the reset-password command."""

import re
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import select, update

from tests.conftest import PASSWORD
from tracker import passwords
from tracker.extensions import db
from tracker.models import User, utcnow
from tracker.models.passwords import PasswordReset

NEW = "a brand new passphrase"
LINK = re.compile(r"http://tracker\.test(/reset-password/[A-Za-z0-9_-]+)")


@pytest.fixture
def mail_config(app_config, smtp):
    app_config.update(SMTP_URL=smtp.url(), MAIL_FROM="noreply@tracker.test",
                      BASE_URL="http://tracker.test", MAIL_RETRY_INTERVALS="0")
    return app_config


def work(app):
    redis = Redis.from_url(app.config["REDIS_URL"])
    SimpleWorker([Queue("default", connection=redis)], connection=redis).work(
        burst=True, with_scheduler=True)
    redis.close()


def person(user):
    return SimpleNamespace(email=user.email)


def signed_in(client):
    return client.get("/settings").status_code == 200


def reset_form(client, path, password=NEW, confirm=None):
    client.get(path)
    return client.post(path, data={"new_password": password, "confirm": confirm or password})


def test_forgot_password_emails_a_link_that_works_once(mail_config, smtp, app, factory, client):
    with app.app_context():
        user = person(factory.user(email="Anna@Example.org"))
    other_browser = app.test_client()
    other_browser.login(user)

    client.get("/forgot-password")
    answer = client.post("/forgot-password", data={"email": "anna@example.org"})
    assert answer.status_code == 200
    assert "If anna@example.org belongs to an account" in answer.get_data(as_text=True)
    work(app)
    received = smtp.wait_for(1)[0]
    assert received["rcpt_tos"] == ["Anna@Example.org"]
    message = received["message"]
    assert message["Subject"] == "Reset your password"
    path = LINK.search(message.get_content()).group(1)

    page = client.get(path)
    assert page.status_code == 200 and "Anna@Example.org" in page.get_data(as_text=True)
    # Too short, or two different passwords: refused, the link still works.
    assert reset_form(client, path, "short").status_code == 422
    assert reset_form(client, path, NEW, NEW + "x").status_code == 422
    done = reset_form(client, path)
    assert done.status_code == 302 and urlsplit(done.location).path == "/login"

    assert not signed_in(other_browser)  # every old session ended
    assert client.get(path).status_code == 404  # used: never again
    assert reset_form(client, path, "another passphrase").status_code == 404
    client.get("/login")
    assert client.post("/login", data={"email": user.email, "password": PASSWORD}) \
        .status_code == 422
    client.login(user, password=NEW)


def test_the_forgot_form_answers_the_same_for_unknown_addresses(mail_config, smtp, app, factory):
    with app.app_context():
        factory.user(email="known@example.org")

    def ask(email):
        client = app.test_client()
        client.get("/forgot-password")
        response = client.post("/forgot-password", data={"email": email})
        body = response.get_data(as_text=True).replace(email, "EMAIL")
        body = re.sub(r'"X-CSRFToken": "[^"]+"|name="csrf-token" content="[^"]+"', "", body)
        return response.status_code, body, sorted(response.headers.getlist("Set-Cookie"))

    known, unknown = ask("known@example.org"), ask("nobody@example.org")
    assert known[0] == unknown[0] == 200
    assert known[1] == unknown[1]
    assert len(known[2]) == len(unknown[2])
    work(app)
    received = smtp.wait_for(1)
    assert [m["rcpt_tos"] for m in received] == [["known@example.org"]]
    with app.app_context():  # nothing stored for the unknown address
        assert len(db.session.scalars(select(PasswordReset)).all()) == 1


def test_a_bad_address_gets_a_form_error(mail_config, client):
    client.get("/forgot-password")
    answer = client.post("/forgot-password", data={"email": "not an address"})
    assert answer.status_code == 422
    assert "Enter a valid email address." in answer.get_data(as_text=True)


def test_requests_per_address_are_limited_quietly(mail_config, smtp, app, factory):
    app.config["PASSWORD_RESETS_PER_EMAIL"] = "2 per hour"
    with app.app_context():
        factory.user(email="often@example.org")
    for _ in range(4):
        client = app.test_client()
        client.get("/forgot-password")
        assert client.post("/forgot-password", data={"email": "often@example.org"}) \
            .status_code == 200
    work(app)
    assert len(smtp.wait_for(2)) == 2
    with app.app_context():
        assert len(db.session.scalars(select(PasswordReset)).all()) == 2


def test_without_smtp_the_form_points_to_the_command(client):
    page = client.get("/forgot-password").get_data(as_text=True)
    assert "flask --app wsgi users reset-password" in page
    assert 'name="email"' not in page


def test_an_expired_link_does_not_work(app, factory, client):
    with app.app_context():
        user = factory.user()
        token = passwords.create_reset(user)
        reset = db.session.scalars(select(PasswordReset)).one()
        assert reset.token_hash == passwords.digest(token) and token not in reset.token_hash
        assert reset.expires_at - reset.created_at == timedelta(hours=1)
        db.session.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    page = client.get(f"/reset-password/{token}")
    assert page.status_code == 404
    assert "it was already used, it expired" in page.get_data(as_text=True)
    assert client.post(f"/reset-password/{token}", data={"new_password": NEW, "confirm": NEW}) \
        .status_code in (400, 404)
    assert client.get("/reset-password/x").status_code == 404
    assert client.get("/reset-password/" + "A" * 43).status_code == 404


def test_the_command_prints_a_link_that_works_once(app, factory, runner, client):
    with app.app_context():
        user = person(factory.user(email="cli@example.org"))
    result = runner.invoke(args=["users", "reset-password", "CLI@example.org"])
    assert result.exit_code == 0, result.output
    link = re.search(r"http://127\.0\.0\.1:5000(/reset-password/\S+)", result.output).group(1)
    assert "works once, for 60 minutes" in result.output
    assert reset_form(client, link).status_code == 302
    client.login(user, password=NEW)
    other = app.test_client()
    assert reset_form(other, link, "yet another passphrase").status_code == 404

    missing = runner.invoke(args=["users", "reset-password", "nobody@example.org"])
    assert missing.exit_code != 0 and "No user nobody@example.org" in missing.output


def test_a_new_link_and_a_changed_password_end_older_links(app, factory, client):
    with app.app_context():
        user = factory.user()
        first, second = passwords.create_reset(user), passwords.create_reset(user)
    assert reset_form(client, f"/reset-password/{second}").status_code == 302
    assert client.get(f"/reset-password/{first}").status_code == 404


def test_change_password_needs_the_current_one_and_ends_other_sessions(app, factory, client):
    with app.app_context():
        user = person(factory.user())
    client.login(user)
    other = app.test_client()
    other.login(user)
    assert client.get("/settings/password").status_code == 200

    wrong = client.post("/settings/password", data={
        "current_password": "not it", "new_password": NEW, "confirm": NEW})
    assert wrong.status_code == 422 and "Wrong password." in wrong.get_data(as_text=True)
    assert signed_in(other)  # nothing changed
    missing = client.post("/settings/password", data={"new_password": NEW, "confirm": NEW})
    assert missing.status_code == 422

    done = client.post("/settings/password", data={
        "current_password": PASSWORD, "new_password": NEW, "confirm": NEW})
    assert done.status_code == 302
    assert signed_in(client)  # this browser stays signed in
    assert not signed_in(other)  # the other one is signed out
    with app.app_context():
        assert db.session.scalars(select(User)).one().check_password(NEW)


def test_change_password_needs_sign_in(client):
    answer = client.get("/settings/password")
    assert answer.status_code == 302 and "/login" in answer.location


def test_password_pages_in_russian(mail_config, app, factory):
    client = app.test_client()
    headers = {"Accept-Language": "ru"}
    assert "Забыли пароль?" in client.get("/login", headers=headers).get_data(as_text=True)
    page = client.get("/forgot-password", headers=headers).get_data(as_text=True)
    assert "Восстановление пароля" in page
    with app.app_context():
        user = factory.user(locale="ru")
        token = passwords.create_reset(user)
    page = client.get(f"/reset-password/{token}", headers=headers).get_data(as_text=True)
    assert "Новый пароль" in page


def test_the_reset_email_is_in_the_users_language(mail_config, smtp, app, factory):
    with app.app_context():
        factory.user(email="ru@example.org", locale="ru")
    client = app.test_client()
    client.get("/forgot-password")
    client.post("/forgot-password", data={"email": "ru@example.org"})
    work(app)
    message = smtp.wait_for(1)[0]["message"]
    assert message["Subject"] == "Сброс пароля"
    assert "Ссылка работает один раз" in message.get_content()


def test_of_simultaneous_uses_of_a_link_one_wins(app, factory):
    """Eight browsers post the same link at once: one sets its password, the others are told
    the link no longer works (a conditional UPDATE, not a read then a write)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    with app.app_context():
        user = factory.user()
        token = passwords.create_reset(user)
        user_id = user.id
    path = f"/reset-password/{token}"
    clients = [app.test_client() for _ in range(8)]
    for client in clients:
        assert client.get(path).status_code == 200
    start = threading.Barrier(len(clients))

    def use(n):
        start.wait()
        secret = f"passphrase number {n}"
        return clients[n].post(path, data={"new_password": secret, "confirm": secret}) \
            .status_code, secret

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(use, range(len(clients))))
    winners = [secret for status, secret in answers if status == 302]
    assert len(winners) == 1
    assert sorted(status for status, _ in answers) == [302] + [404] * 7
    with app.app_context():
        assert db.session.get(User, user_id).check_password(winners[0])
