"""Sign-in, throttling, CSRF, cookies, security headers and the users CLI."""

import html
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
    assert "Too many failed sign-in attempts. Wait 15 minutes and try again." in (
        response.get_data(as_text=True))
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


# ?next= values that must never take the browser off the site (each is sent as the
# decoded value; RAW_NEXT are raw query strings, decoded once by the app).
HOSTILE_NEXT = [
    "/\t/evil.example/x", "/\n/evil.example/x", "/\r/evil.example/x", "/\r\n/evil.example",
    "\t//evil.example", " //evil.example", "/ /evil.example", "/\x00/evil.example",
    "/\x0b/evil.example", "/\x0c/evil.example", "/\x1f/evil.example", "/\x7f/evil.example",
    "//evil.example", "///evil.example", "////evil.example/x", "/\\evil.example",
    "/\\/evil.example", "\\\\evil.example", "\\/evil.example", "/\\\\evil.example",
    "https:evil.example", "https://evil.example", "http:/evil.example", "HTTPS://evil.example",
    "javascript:alert(1)", "data:text/html,<script>alert(1)</script>", "evil.example",
    "//evil.example@site", "/\u3000/evil.example", "/\u2028/evil.example",
    "\uff0f\uff0fevil.example", "/\uff0fevil.example", "/\u0130/evil.example",
    "//\u0435vil.example", "/..//evil.example", "/.//evil.example", "/%2F/evil.example",
    "/x" * 2000,
]
RAW_NEXT = [
    "next=/%09/evil.example/x", "next=/%0a/evil.example/x", "next=/%0d/evil.example/x",
    "next=%2F%2Fevil.example", "next=/%5Cevil.example", "next=%5C%5Cevil.example",
    "next=%2F%09%2Fevil.example", "next=/%E3%80%80/evil.example", "next=/%C0%AF/evil.example",
    "next=/%ff/evil.example", "next=https%3A%2F%2Fevil.example", "next=%00",
    "next=/&next=//evil.example", "next=/%2509/evil.example",
]


def browser_target(location, base="http://localhost/login"):
    """Where a browser goes for a Location header (WHATWG: tabs and newlines are
    removed, backslashes are slashes, leading spaces and controls are trimmed)."""
    from urllib.parse import urljoin, urlsplit

    cleaned = "".join(c for c in location if c not in "\t\n\r").replace("\\", "/")
    cleaned = cleaned.lstrip("".join(map(chr, range(0x21))))
    return urlsplit(urljoin(base, cleaned))


def assert_stays_on_site(location):
    assert location, "no redirect target"
    assert not any(ord(c) < 0x21 or ord(c) == 0x7f or c == "\\" for c in location), location
    assert location.startswith("/") and not location.startswith("//"), location
    target = browser_target(location)
    assert target.netloc == "localhost" and target.scheme == "http", location


def test_the_safe_next_check_refuses_every_hostile_value(ctx):
    from tracker.security import safe_local_url

    for value in HOSTILE_NEXT:
        kept = safe_local_url(value)
        if kept is not None:
            assert_stays_on_site(kept)
    for refused in ("/\t/evil.example/x", "/\n/x", "//evil.example", "/\\evil.example",
                    "https:evil.example", "javascript:alert(1)", " /sites/", "/sites/\x00"):
        assert safe_local_url(refused) is None, refused
    for kept in ("/", "/sites/new", "/reports/emails?q=a%20b&page=2", "/rules/#x",
                 "/%2F/x", "/\u043f\u0443\u0442\u044c"):
        assert safe_local_url(kept) == kept
    assert safe_local_url("/sites/new", "/rules/") is None
    assert safe_local_url("/rules/3/edit", "/rules/") == "/rules/3/edit"
    for not_text in (None, 7, b"/sites/", ["/sites/"]):
        assert safe_local_url(not_text) is None


@pytest.mark.parametrize("htmx", [False, True])
def test_sign_in_never_redirects_off_site(client, user, htmx):
    from urllib.parse import urlencode

    queries = RAW_NEXT
    if not htmx:  # htmx's answer is built by the same redirect_to: the raw list suffices
        queries = [urlencode({"next": value}) for value in HOSTILE_NEXT] + RAW_NEXT
    headers = {"HX-Request": "true"} if htmx else {}
    for query in queries:
        page = client.get(f"/login?{query}")
        assert page.status_code == 200, query
        response = client.post(f"/login?{query}", headers=headers,
                               data={"email": user.email, "password": PASSWORD})
        if htmx:
            assert response.status_code == 204, query
            location = response.headers["HX-Redirect"]
        else:
            assert response.status_code == 302, query
            location = response.headers["Location"]
        assert_stays_on_site(location)
        client.post("/logout")
    # A local page is still followed.
    client.get("/login")
    response = client.post("/login?next=/sites/new%3Fx%3D1",
                           data={"email": user.email, "password": PASSWORD})
    assert response.headers["Location"] == "/sites/new?x=1"


def test_the_login_form_posts_back_only_a_safe_next(client):
    page = client.get("/login?next=/%09/evil.example/x").get_data(as_text=True)
    assert 'action="/login"' in page
    page = client.get("/login?next=/sites/new").get_data(as_text=True)
    assert 'action="/login?next=/sites/new"' in page


def test_cancel_links_and_htmx_redirects_stay_on_site(logged_in):
    from urllib.parse import urlencode

    for value in HOSTILE_NEXT:
        query = urlencode({"next": value})
        for url in (f"/credentials/new?{query}", f"/blocks/new?{query}"):
            response = logged_in.get(url)
            assert response.status_code == 200, url
            cancel = re.findall(r'<a href="([^"]*)"[^>]*>\s*Cancel',
                                response.get_data(as_text=True))
            assert len(cancel) == 1, url
            assert_stays_on_site(html.unescape(cancel[0]))


class HashCalls:
    """Counts the real password-hash checks (the function runs as usual)."""

    def __init__(self, monkeypatch):
        import werkzeug.security

        self.hashes = []
        original = werkzeug.security.check_password_hash

        def counted(pwhash, password):
            self.hashes.append(pwhash)
            return original(pwhash, password)

        monkeypatch.setattr(werkzeug.security, "check_password_hash", counted)


def test_thirty_parallel_wrong_passwords_are_evaluated_at_most_the_limit(
        app, live_server, factory, monkeypatch):
    import http.client
    import threading
    from urllib.parse import urlencode, urlsplit

    victim = factory.user()
    calls = HashCalls(monkeypatch)
    host = urlsplit(live_server.url)
    # One browser's session cookie and CSRF token, shared by 30 simultaneous tries.
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    conn.request("GET", "/login")
    page = conn.getresponse()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      page.read().decode()).group(1)
    cookie = page.getheader("Set-Cookie").split(";")[0]
    conn.close()
    body = urlencode({"csrf_token": token, "email": victim.email, "password": "guess"})
    start = threading.Barrier(30)
    statuses = []

    def attempt():
        one = http.client.HTTPConnection(host.hostname, host.port, timeout=60)
        start.wait()
        one.request("POST", "/login", body=body, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        statuses.append(one.getresponse().status)
        one.close()

    threads = [threading.Thread(target=attempt) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == 30
    assert statuses.count(422) == 5  # LOGIN_ATTEMPTS_PER_IP_EMAIL: 5 per 15 minutes
    assert statuses.count(429) == 25
    assert len(calls.hashes) == 5
    # The owner, from another IP, signs in at once.
    owner = app.test_client()
    owner.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.7"})
    response = owner.post("/login", environ_base={"REMOTE_ADDR": "198.51.100.7"},
                          data={"email": victim.email, "password": PASSWORD})
    assert response.status_code == 302


def tries(client, ip, email, password="guess"):
    client.get("/login", environ_base={"REMOTE_ADDR": ip})
    return client.post("/login", environ_base={"REMOTE_ADDR": ip},
                       data={"email": email, "password": password})


def test_many_ips_failing_on_an_account_only_slow_browsers_that_never_signed_in(
        app, client, factory):
    app.config["LOGIN_ATTEMPTS_PER_EMAIL"] = "6 per minute"
    victim = factory.user()
    # The owner's own browser, used before from home.
    assert tries(client, "192.0.2.1", victim.email, PASSWORD).status_code == 302
    client.post("/logout", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    # Strangers from three IPs spend the account's allowance (each IP stays under its own).
    attacker = app.test_client()
    for n in range(6):
        assert tries(attacker, f"203.0.113.{n % 3}", victim.email).status_code == 422
    assert tries(attacker, "203.0.113.9", victim.email).status_code == 429
    # A new browser is asked to wait; its correct password is not even checked.
    stranger = tries(app.test_client(), "198.51.100.1", victim.email, PASSWORD)
    assert stranger.status_code == 429
    # Up to a minute, in seconds or "1 minute" (how long the test took so far decides).
    assert re.search(r"Wait \d+ (seconds?|minute) and try again",
                     stranger.get_data(as_text=True))
    russian = app.test_client()
    russian.get("/login", environ_base={"REMOTE_ADDR": "198.51.100.4"},
                headers={"Accept-Language": "ru"})
    page = russian.post("/login", environ_base={"REMOTE_ADDR": "198.51.100.4"},
                        headers={"Accept-Language": "ru"},
                        data={"email": victim.email, "password": PASSWORD})
    assert page.status_code == 429
    assert re.search(r"Подождите \d+ (секунд[уы]?|минуту) и попробуйте снова",
                     page.get_data(as_text=True))
    # The owner's browser signs in from a new IP.
    assert tries(client, "198.51.100.2", victim.email, PASSWORD).status_code == 302
    # Another account is untouched.
    assert tries(app.test_client(), "203.0.113.9", factory.user().email,
                 PASSWORD).status_code == 302


def test_a_forged_device_cookie_is_no_exemption(app, client, factory):
    app.config["LOGIN_ATTEMPTS_PER_EMAIL"] = "2 per minute"
    victim = factory.user()
    for n in range(2):
        tries(app.test_client(), f"203.0.113.{n}", victim.email)
    for forged in ("[%d]" % victim.id, "x", ""):
        client.set_cookie("tracker_device", forged)
        assert tries(client, "198.51.100.3", victim.email, PASSWORD).status_code == 429


def test_throttled_and_evaluated_tries_leave_successes_uncounted(app, client, user):
    app.config["LOGIN_ATTEMPTS_PER_IP_EMAIL"] = "3 per 15 minutes"
    for _ in range(2):
        assert tries(client, "192.0.2.5", user.email).status_code == 422
    for _ in range(5):  # successes give their attempt back
        assert tries(client, "192.0.2.5", user.email, PASSWORD).status_code == 302
        client.post("/logout", environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert tries(client, "192.0.2.5", user.email).status_code == 422
    assert tries(client, "192.0.2.5", user.email, PASSWORD).status_code == 429


def test_sign_in_hashes_the_password_once_whether_or_not_the_email_exists(
        app, client, factory, monkeypatch):
    from werkzeug.security import generate_password_hash

    user = factory.user()
    inactive = factory.user()
    inactive.active = False
    db.session.commit()
    calls = HashCalls(monkeypatch)
    method = generate_password_hash(  # e.g. scrypt:32768:8:1
        "x", method=app.config["PASSWORD_HASH_METHOD"]).split("$")[0]
    client.get("/login")
    for email in ("nobody@example.com", user.email, inactive.email):
        calls.hashes.clear()
        response = client.post("/login", data={"email": email, "password": "guess"})
        assert response.status_code == 422
        assert len(calls.hashes) == 1, email
        assert calls.hashes[0].split("$")[0] == method, email
    assert calls.hashes[0] == inactive.password_hash
    # The unknown email was checked against a hash of its own, not a user's.
    calls.hashes.clear()
    client.post("/login", data={"email": "nobody@example.com", "password": "guess"})
    assert calls.hashes[0] not in {user.password_hash, inactive.password_hash}


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_instance_folder_database_and_secrets_are_private(app_config, tmp_path, umask):
    import os
    import stat

    from tracker import create_app
    from tracker.models import Account

    config = dict(app_config, INSTANCE_PATH=str(tmp_path / "fresh" / "instance"))
    for generated in ("DATABASE_URL", "SECRET_KEY", "FERNET_KEYS"):
        config.pop(generated)
    instance = tmp_path / "fresh" / "instance"
    previous = os.umask(umask)
    try:
        app = create_app(config)
        with app.app_context():
            db.create_all()
            db.session.add(User(account=Account(name="A"), email="a@example.com",
                                password_hash="x"))
            db.session.commit()
            # The write-ahead log and its index exist while the database is open.
            names = {p.name for p in instance.iterdir()}
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in instance.iterdir()}
            db.session.remove()
            db.engine.dispose()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert {"tracker.sqlite3", "tracker.sqlite3-wal", "secret_key", "fernet_keys"} <= names
    assert modes == {name: 0o600 for name in names}
