"""Sign-in, throttling, CSRF, cookies, security headers and the users CLI."""

import re

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tracker.extensions import db
from tracker.models import Site, User


def test_login_and_logout(client, user):
    client.get("/login")
    response = client.post("/login", data={"email": user.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/sites/").status_code == 200
    response = client.post("/logout")
    assert response.status_code == 302
    assert client.get("/sites/").status_code == 302


def test_wrong_password_is_an_inline_message(client, user):
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": "nope"})
    assert response.status_code == 422
    assert "Wrong email or password." in response.get_data(as_text=True)
    response = client.post("/login", data={"email": "nobody@example.com", "password": "nope"})
    assert "Wrong email or password." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "", "password": "x"}, "Enter your email address."),
        ({"email": "not-an-email", "password": "x"}, "Enter a valid email address."),
        ({"email": "a@example.com", "password": ""}, "Enter your password."),
        ({"email": "a@example.com" * 30, "password": "x"}, "Enter a valid email address."),
    ],
)
def test_login_bad_input(client, data, message):
    client.get("/login")
    response = client.post("/login", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_inactive_user_cannot_sign_in(client, factory):
    user = factory.user()
    user.active = False
    db.session.commit()
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 422


def test_next_is_followed_only_to_local_paths(client, user):
    client.get("/login")
    ok = client.post("/login?next=/sites/new", data={"email": user.email, "password": PASSWORD})
    assert ok.headers["Location"] == "/sites/new"
    client.post("/logout")
    client.get("/login")
    evil = client.post("/login?next=//evil.example/", data={"email": user.email, "password": PASSWORD})
    assert evil.headers["Location"] == "/"


def test_failed_logins_are_throttled_per_email(client, factory, app):
    victim = factory.user()
    client.get("/login")
    for _ in range(5):
        client.post("/login", data={"email": victim.email, "password": "guess"})
    response = client.post("/login", data={"email": victim.email, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    # Another email from the same IP is still allowed (the per-IP limit is higher).
    other = factory.user()
    response = client.post("/login", data={"email": other.email, "password": PASSWORD})
    assert response.status_code == 302


def test_failed_logins_are_throttled_per_ip(client, factory, app):
    app.config["LOGIN_ATTEMPTS_PER_IP"] = "3 per 15 minutes"
    users = [factory.user() for _ in range(4)]
    client.get("/login")
    for u in users[:3]:
        client.post("/login", data={"email": u.email, "password": "guess"})
    response = client.post("/login", data={"email": users[3].email, "password": PASSWORD})
    assert response.status_code == 429


def test_successful_logins_are_not_counted(client, user):
    for _ in range(8):
        client.get("/login")
        assert client.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
        client.post("/logout")


def test_post_without_csrf_token_is_rejected_and_changes_nothing(logged_in, user):
    logged_in.csrf_token = None
    response = logged_in.post("/sites/new", data={"name": "Sneaky", "domains": "sneaky.example"})
    assert response.status_code == 400
    assert db.session.scalars(select(Site)).all() == []
    response = logged_in.post("/sites/new", data={"name": "Sneaky", "domains": "x.example"},
                              headers={"X-CSRFToken": "forged"})
    assert response.status_code == 400
    logged_in.csrf_token = None
    assert logged_in.post("/logout").status_code == 400


def test_htmx_sends_csrf_token_from_body(logged_in):
    page = logged_in.get("/sites/").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert f"hx-headers='{{\"X-CSRFToken\": \"{token}\"}}'" in page


def test_security_headers_on_admin_pages(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "<script>" not in response.get_data(as_text=True)


def test_remember_cookie_flags(client, user):
    client.get("/login")
    response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                           "remember": "y"})
    cookies = {c.split("=", 1)[0]: c for c in response.headers.getlist("Set-Cookie")}
    for name in ("remember_token", "session"):
        assert "HttpOnly" in cookies[name]
        assert "SameSite=Lax" in cookies[name]
        assert "Secure" not in cookies[name]


def test_cookies_are_secure_over_https(app, user):
    client = app.test_client()
    client.get("/login", base_url="https://localhost")
    response = client.post("/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/login"},
                           data={"email": user.email, "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all("Secure" in c for c in cookies)
    assert "Strict-Transport-Security" in response.headers


def test_error_pages(logged_in):
    response = logged_in.get("/no/such/page")
    assert response.status_code == 404
    assert "This page does not exist" in response.get_data(as_text=True)
    assert logged_in.get("/logout").status_code == 405


def test_500_page(app, client):
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    response = client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.get_data(as_text=True)


def test_cli_create_user_with_generated_password(runner, client, ctx):
    result = runner.invoke(args=["users", "create", "Owner@Example.com", "--generate"])
    assert result.exit_code == 0, result.output
    password = re.search(r"Password \(shown once\): (\S+)", result.output).group(1)
    user = db.session.scalar(select(User).where(User.email == "owner@example.com"))
    assert user.account.name == "example.com"
    client.get("/login")
    assert client.post("/login", data={"email": "owner@example.com",
                                       "password": password}).status_code == 302


def test_cli_create_user_with_prompted_password(runner, ctx):
    result = runner.invoke(args=["users", "create", "p@example.com", "--account", "Shop"],
                           input="long enough pw\nlong enough pw\n")
    assert result.exit_code == 0, result.output
    assert "long enough pw" not in result.output
    user = db.session.scalar(select(User).where(User.email == "p@example.com"))
    assert user.check_password("long enough pw") and user.account.name == "Shop"
    again = runner.invoke(args=["users", "create", "p@example.com", "--generate"])
    assert again.exit_code != 0 and "already exists" in again.output
    bad = runner.invoke(args=["users", "create", "not-an-email", "--generate"])
    assert bad.exit_code != 0


def test_cli_ensure_first_creates_once(runner, ctx):
    first = runner.invoke(args=["users", "ensure-first"])
    assert "First login created. Email: admin@example.com" in first.output
    second = runner.invoke(args=["users", "ensure-first"])
    assert second.output == ""
    assert len(db.session.scalars(select(User)).all()) == 1
