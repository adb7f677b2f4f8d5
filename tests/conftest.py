"""Fixtures: the app on a fresh database per test, real Redis, Dovecot and Chromium."""

import contextvars
import itertools
import os
import re
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask.testing import FlaskClient
from jinja2 import BytecodeCache
from redis import Redis
from werkzeug.serving import make_server

from tests.factories import Factory
from tests.services.browser import launch_chromium
from tests.services.dovecot import DovecotServer
from tests.services.redis_server import RedisServer
from tracker import create_app
from tracker.extensions import db

_imap_users = itertools.count(1)
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
PASSWORD = "correct horse battery"


class Client(FlaskClient):
    """A test client that sends the page's CSRF token with every state-changing request."""

    csrf_token = None

    def open(self, *args, **kwargs):
        method = (kwargs.get("method") or "GET").upper()
        if self.csrf_token and method not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token)
            kwargs["headers"] = headers
        # Run the request in an empty contextvars context: it then gets its own app
        # context (and `g`), as in production, even while the test body holds one.
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if response.mimetype == "text/html":
            found = CSRF_META.search(response.get_data(as_text=True))
            if found:
                self.csrf_token = found.group(1)
        return response

    def login(self, user, password=PASSWORD):
        """Sign in through the real login form."""
        self.get("/login")
        response = self.post("/login", data={"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        self.get("/")
        return response


class _CompiledTemplates(BytecodeCache):
    """Templates compiled once per test process, not once per test's new app (the
    templates do not change during a run; Jinja checks their source's checksum)."""

    def __init__(self):
        self.compiled = {}

    def load_bytecode(self, bucket):
        code = self.compiled.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket):
        self.compiled[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _CompiledTemplates()


@pytest.fixture
def smtp():
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
    from tests.services.smtpserver import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def pytest_addoption(parser):
    parser.addoption(
        "--db", choices=("sqlite", "postgresql"), default=None,
        help="the database the tests run on (default: $TEST_DATABASE, else sqlite); "
             "postgresql starts a throw-away cluster (Debian's postgresql package)")


def database_backend(config):
    return config.getoption("--db") or os.environ.get("TEST_DATABASE") or "sqlite"


def pytest_report_header(config):
    return f"database: {database_backend(config)}"


@pytest.fixture(scope="session")
def backend(request):
    """'sqlite' or 'postgresql': what this run's tests are stored in (see --db)."""
    return database_backend(request.config)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory, backend):
    """A throw-away PostgreSQL cluster of this test process (--db=postgresql only)."""
    if backend != "postgresql":
        pytest.skip("runs on PostgreSQL only (--db=postgresql)")
    from tests.services.postgres import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def postgres_template(postgres):
    """A database holding the models' schema, copied by each test's fresh database."""
    from sqlalchemy import create_engine

    import tracker.models  # noqa: F401  (every table on db.metadata)

    name = postgres.create_database(name="schema_template")
    engine = create_engine(postgres.url(name))
    db.metadata.create_all(engine)
    engine.dispose()
    return name


@pytest.fixture
def database_url(request, backend, tmp_path):
    """DATABASE_URL of a fresh database holding the models' schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    postgres = request.getfixturevalue("postgres")
    name = postgres.create_database(template=request.getfixturevalue("postgres_template"))
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture
def empty_database_url(request, backend, tmp_path):
    """DATABASE_URL of a fresh database without any table (for migrations)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    postgres = request.getfixturevalue("postgres")
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory):
    """A real Dovecot IMAP server on loopback: plain `port`, TLS `tls_port`, `ca_path`."""
    server = DovecotServer(tmp_path_factory.mktemp("dovecot"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def imap4d(tmp_path_factory):
    """A real GNU imap4d on loopback, a second server besides Dovecot: plain `port`, TLS
    `tls_port`, `ca_path`. Skips (saying why) where it is not installed or cannot run."""
    from tests.services.imap4d import Imap4dMissing, Imap4dServer

    server = Imap4dServer(tmp_path_factory.mktemp("imap4d"))
    try:
        server.start()
    except Imap4dMissing as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def courier(tmp_path_factory):
    """A real Courier-IMAP on loopback (no UIDNEXT in EXAMINE), unpacked by
    scripts/courier-unpack.sh: plain `port`, TLS `tls_port`, `ca_path`. Skips (saying
    why) where it is not unpacked or cannot run."""
    from tests.services.courier import CourierMissing, CourierServer

    server = CourierServer(tmp_path_factory.mktemp("courier"))
    try:
        server.start()
    except CourierMissing as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot):
    """A fresh mail user on the Dovecot server: (login, password)."""
    n = next(_imap_users)
    login, password = f"box{n}@mail.example", f"imap-password-{n}"
    dovecot.add_user(login, password)
    return login, password


@pytest.fixture(scope="session")
def fernet_keys():
    return Fernet.generate_key().decode()


@pytest.fixture
def app_config(tmp_path, redis_server, fernet_keys, database_url):
    """The settings of the test app; a test may change them before using `app`."""
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_server.url,
        "SECRET_KEY": "test-secret-key-of-sufficient-length",
        "FERNET_KEYS": fernet_keys,
        # scrypt at 1/8 of its default cost: a sign-in takes milliseconds, not a fifth of
        # a second, in a suite that signs in over a thousand times.
        "PASSWORD_HASH_METHOD": "scrypt:4096:8:1",
    }


@pytest.fixture(autouse=True)
def _engines_closed():
    """Close the database connections of every app a test made (tests make apps of their
    own besides `app`): an app dropped with its pool open leaves connections for the
    garbage collector, which PostgreSQL's driver reports as a ResourceWarning in
    whichever test runs then."""
    yield
    for engines in list(db._app_engines.values()):
        for engine in engines.values():
            engine.dispose()


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.jinja_env.bytecode_cache = TEMPLATES
    app.test_client_class = Client
    redis = Redis.from_url(app.config["REDIS_URL"])
    redis.flushdb()
    redis.close()
    if app.config["DATABASE_URL"].startswith("sqlite"):  # PostgreSQL's copies the template
        with app.app_context():
            db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app):
    """An app context for the test body (database queries, config)."""
    with app.app_context():
        yield


@pytest.fixture
def worker_env(app, tmp_path):
    """The environment of an `rq worker` process started by a test: the test's database
    and Redis, and this checkout's package (whatever the virtualenv's editable install
    points at); keyword arguments add settings."""
    def make(**extra):
        return {
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": app.config["DATABASE_URL"],
            "REDIS_URL": app.config["REDIS_URL"],
            "SECRET_KEY": app.config["SECRET_KEY"],
            "FERNET_KEYS": ",".join(app.config["FERNET_KEYS"]),
            "INSTANCE_PATH": str(tmp_path / "worker-instance"),
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            **extra,
        }

    return make


@pytest.fixture
def written(ctx):
    """Write the page views queued in Redis to the database, as the RQ writer job does.

    Runs in the test's app context and commits, so the test's next query sees them.
    """
    from tracker import ingest
    from tracker.extensions import redis_client

    return lambda: ingest.flush(redis_client())


@pytest.fixture
def factory(ctx):
    return Factory(password=PASSWORD)


@pytest.fixture
def user(factory):
    return factory.user()


@pytest.fixture
def logged_in(client, user):
    """A client signed in as `user` (of its own account)."""
    client.login(user)
    return client


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture(scope="session")
def playwright():
    """Playwright's driver, once per session (two at a time cannot coexist)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright):
    """Debian's Chromium, headless, shared by the session; tests open their own contexts."""
    chromium = launch_chromium(playwright)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page; page errors fail the test."""
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(exc))
    page.set_default_timeout(10_000)
    yield page
    context.close()
    assert not errors, errors
