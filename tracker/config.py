"""Configuration: defaults in code, overrides from the environment and `.env`."""

import os
import re
import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names the variable."""


def _bool(value):
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


# Variables read from the environment, with their parser.
ENV_VARS = {
    "DATABASE_URL": str,
    "REDIS_URL": str,
    "SECRET_KEY": str,
    "FERNET_KEYS": str,
    "BASE_URL": str,
    "SESSION_COOKIE_SECURE": _bool,
    "PASSWORD_HASH_METHOD": str,
    "LOGIN_ATTEMPTS_PER_EMAIL": str,
    "LOGIN_ATTEMPTS_PER_IP_EMAIL": str,
    "LOGIN_ATTEMPTS_PER_IP": str,
    "API_RATE_PER_IP": str,
    "API_RATE_PER_SITE": str,
    "API_TOKEN_RATE": str,
    "SITE_SETUP_CACHE_SECONDS": int,
    "RQ_QUEUE": str,
    "PROXY_COUNT": int,
    "ALLOW_PRIVATE_IMAP_HOSTS": _bool,
    "IMAP_ALLOWED_PORTS": str,
    "IMAP_CA_FILE": str,
    "IMAP_TIMEOUT_SECONDS": str,
    "SYNC_INTERVAL_SECONDS": str,
    "FIRST_SYNC_HOURS": str,
    "SYNC_BATCH_SIZE": str,
    "SYNC_JOB_TIMEOUT": str,
    "SYNC_RETRY_INTERVALS": str,
    "SYNC_LEASE_SECONDS": str,
    "OPERATOR_EMAILS": str,
    "SMTP_URL": str,
    "MAIL_FROM": str,
    "MAIL_RETRY_INTERVALS": str,
    "PASSWORD_RESET_SECONDS": str,
    "SMTP_CA_FILE": str,
    "WEBHOOK_TIMEOUT_SECONDS": str,
    "WEBHOOK_RETRY_BASE_SECONDS": str,
    "WEBHOOK_RETRY_MAX_SECONDS": str,
    "WEBHOOK_RETRY_FOR_SECONDS": str,
    "WEBHOOK_PAUSE_AFTER_SECONDS": str,
}

# A web request must never wait on IMAP for 15 seconds or more.
MAX_IMAP_TIMEOUT = 14


def private_dir(path):
    """Create a folder only its owner can open (0o700), if it is missing."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # whatever the umask


def private_file(path):
    """Create an empty file only its owner can read (0o600), if it is missing."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def _secret_file(instance_path, name, make):
    """Return the secret stored in instance/NAME, creating it once if missing."""
    path = Path(instance_path) / name
    if path.exists():
        return path.read_text().strip()
    private_dir(path.parent)
    value = make()
    # Created with owner-only permissions: these are secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def defaults(instance_path):
    """Settings that apply when nothing overrides them."""
    return {
        "DATABASE_URL": "sqlite:///" + str(Path(instance_path) / "tracker.sqlite3"),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "BASE_URL": "",
        "RQ_QUEUE": "default",
        # Failed sign-ins: per IP and email, per IP, and per account from browsers
        # that never signed in to it (a short window: it slows, it never locks out).
        "LOGIN_ATTEMPTS_PER_IP_EMAIL": "5 per 15 minutes",
        "LOGIN_ATTEMPTS_PER_EMAIL": "10 per minute",
        "LOGIN_ATTEMPTS_PER_IP": "20 per 15 minutes",
        "API_RATE_PER_IP": "120 per minute",
        "API_RATE_PER_SITE": "6000 per minute",
        # The read API (/api/v1/emails...), per token.
        "API_TOKEN_RATE": "120 per minute;5000 per hour",
        # Page views keep a site's blocks and rules this long per process.
        "SITE_SETUP_CACHE_SECONDS": 5,
        "SESSION_COOKIE_SECURE": False,
        "PAGE_SIZE": 20,
        "PROXY_COUNT": 0,
        "LANGUAGES": ["en", "ru"],
        # Outbound IMAP: the host is user input, so private networks are off limits.
        "ALLOW_PRIVATE_IMAP_HOSTS": False,
        "IMAP_ALLOWED_PORTS": "993,143",
        "IMAP_CA_FILE": "",
        "IMAP_TIMEOUT_SECONDS": 10,
        # Sync: how often a mailbox is read, how far back the first sync looks, how many
        # messages one transaction stores, how long one sync may take, and the backoff
        # (seconds) of the retries after a network error.
        "SYNC_INTERVAL_SECONDS": 600,
        "FIRST_SYNC_HOURS": 24,
        "SYNC_BATCH_SIZE": 500,
        "SYNC_JOB_TIMEOUT": 1800,
        "SYNC_RETRY_INTERVALS": "60,300,900",
        # How passwords are hashed (werkzeug's method string): scrypt at werkzeug's cost by
        # default; a cheaper scrypt ("scrypt:4096:8:1") only where sign-in speed matters
        # more than an offline attack, such as the test suite.
        "PASSWORD_HASH_METHOD": "scrypt",
        # A sync's lock lives this long unless renewed: how soon a mailbox whose worker
        # died syncs again.
        "SYNC_LEASE_SECONDS": 30,
        # Who may see the jobs page (/ops/jobs): comma-separated emails of users.
        "OPERATOR_EMAILS": "",
        # Webhooks: the time-out of one delivery attempt, the back-off of the retries
        # (doubling from BASE up to MAX), how long an event is retried, and after how long
        # without a 2xx answer a URL is paused.
        "WEBHOOK_TIMEOUT_SECONDS": 10,
        "WEBHOOK_RETRY_BASE_SECONDS": 30,
        "WEBHOOK_RETRY_MAX_SECONDS": 4 * 3600,
        "WEBHOOK_RETRY_FOR_SECONDS": 24 * 3600,
        "WEBHOOK_PAUSE_AFTER_SECONDS": 24 * 3600,
        # How many runs of each mailbox its sync log keeps.
        "SYNC_RUNS_KEPT": 50,
        # Outgoing mail (invitations, password resets): none is sent without SMTP_URL.
        # The retries of a failed message, in seconds, before it is shown as failed.
        "SMTP_URL": "",
        "MAIL_FROM": "",
        # A CA file to check the SMTP server's certificate against (instead of the system's).
        "SMTP_CA_FILE": "",
        "MAIL_RETRY_INTERVALS": "60,300,1800",
        # How long a password reset link works.
        "PASSWORD_RESET_SECONDS": 3600,
        # Reset emails per address (more requests answer the same and send nothing).
        "PASSWORD_RESETS_PER_EMAIL": "5 per hour",
    }


def from_environment():
    """The subset of ENV_VARS present in the environment, parsed."""
    found = {}
    for name, parse in ENV_VARS.items():
        if name in os.environ:
            try:
                found[name] = parse(os.environ[name])
            except ValueError:
                raise ConfigError(f"{name} has an unusable value: {os.environ[name]!r}.") from None
    return found


def finalize(config, instance_path):
    """Fill generated secrets, validate every value and derive dependent settings.

    Raises ConfigError with a one-line message naming the variable at fault.
    """
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _secret_file(
            instance_path, "secret_key", lambda: secrets.token_urlsafe(48)
        )
    if len(config["SECRET_KEY"]) < 16:
        raise ConfigError("SECRET_KEY is too short: use at least 16 characters.")
    if not re.fullmatch(r"scrypt(:\d+:\d+:\d+)?|pbkdf2(:sha256(:\d+)?)?",
                        config["PASSWORD_HASH_METHOD"]):
        raise ConfigError("PASSWORD_HASH_METHOD is not a method such as 'scrypt' or "
                          "'scrypt:32768:8:1'.")

    if not config.get("FERNET_KEYS"):
        config["FERNET_KEYS"] = _secret_file(
            instance_path, "fernet_keys", lambda: Fernet.generate_key().decode()
        )
    keys = [k.strip() for k in str(config["FERNET_KEYS"]).split(",") if k.strip()]
    try:
        if not keys:
            raise ValueError
        for key in keys:
            Fernet(key)
    except ValueError:
        raise ConfigError(
            "FERNET_KEYS is not a comma-separated list of Fernet keys "
            "(32 url-safe base64-encoded bytes each)."
        ) from None
    config["FERNET_KEYS"] = keys

    try:
        url = make_url(config["DATABASE_URL"])
    except ArgumentError:
        raise ConfigError(
            f"DATABASE_URL is not a database URL: {config['DATABASE_URL']!r}."
        ) from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL.")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.database.startswith("file:"):
        # The database and its folder are private to the user running the app: SQLite
        # creates the file with the umask's mode, so it is made here first (an empty
        # file is an empty database; its journals take the file's mode).
        private_dir(Path(url.database).parent)
        private_file(url.database)
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    if url.get_backend_name() == "postgresql":
        # A pooled connection may have died with a server restart: test it when taken
        # from the pool (one round trip) rather than fail the request that gets it.
        config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {}).setdefault("pool_pre_ping", True)

    redis_url = str(config["REDIS_URL"])
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL is not a redis:// URL: {redis_url!r}.")
    try:
        from redis.connection import parse_url

        parse_url(redis_url)
    except ValueError:
        raise ConfigError(f"REDIS_URL is not a usable Redis URL: {redis_url!r}.") from None

    base_url = str(config.get("BASE_URL") or "")
    if base_url and not base_url.startswith(("http://", "https://")):
        raise ConfigError("BASE_URL must start with http:// or https://.")
    config["BASE_URL"] = base_url.rstrip("/")

    for name in ("LOGIN_ATTEMPTS_PER_EMAIL", "LOGIN_ATTEMPTS_PER_IP", "API_RATE_PER_IP",
                 "LOGIN_ATTEMPTS_PER_IP_EMAIL",
                 "API_RATE_PER_SITE", "API_TOKEN_RATE"):
        from limits import parse_many

        try:
            parse_many(config[name])
        except ValueError:
            raise ConfigError(f"{name} is not a rate such as '5 per 15 minutes'.") from None

    if not 0 <= int(config["SITE_SETUP_CACHE_SECONDS"]) <= 3600:
        raise ConfigError("SITE_SETUP_CACHE_SECONDS must be between 0 and 3600.")

    _finalize_imap(config)
    _finalize_sync(config)
    _finalize_webhooks(config)
    _finalize_mail(config)

    # Cookies: explicit flags; Secure follows SESSION_COOKIE_SECURE or an https BASE_URL.
    secure = bool(config.get("SESSION_COOKIE_SECURE")) or base_url.startswith("https://")
    config.update(
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=60 * 60 * 24 * 30,
    )
    return config


def _finalize_imap(config):
    """Validate the outbound IMAP settings and parse them into their final types."""
    config["ALLOW_PRIVATE_IMAP_HOSTS"] = _bool(config.get("ALLOW_PRIVATE_IMAP_HOSTS"))

    ports = config.get("IMAP_ALLOWED_PORTS")
    if isinstance(ports, str):
        ports = [p.strip() for p in ports.split(",") if p.strip()]
    try:
        ports = sorted({int(p) for p in ports or ()})
        if not ports or not all(0 < p < 65536 for p in ports):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            "IMAP_ALLOWED_PORTS is not a comma-separated list of TCP ports such as '993,143'."
        ) from None
    config["IMAP_ALLOWED_PORTS"] = ports

    ca_file = str(config.get("IMAP_CA_FILE") or "").strip()
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"IMAP_CA_FILE does not name a readable file: {ca_file!r}.")
    config["IMAP_CA_FILE"] = ca_file or None

    try:
        timeout = float(config.get("IMAP_TIMEOUT_SECONDS"))
        if not 0 < timeout <= MAX_IMAP_TIMEOUT:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            f"IMAP_TIMEOUT_SECONDS must be a number of seconds above 0 and at most "
            f"{MAX_IMAP_TIMEOUT}."
        ) from None
    config["IMAP_TIMEOUT_SECONDS"] = timeout


def _positive_int(config, name, low, high, what):
    try:
        value = int(str(config.get(name)).strip())
        if not low <= value <= high:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {what} from {low} to {high}.") from None
    config[name] = value


def _finalize_sync(config):
    """Validate the sync settings and parse them into integers."""
    _positive_int(config, "SYNC_INTERVAL_SECONDS", 60, 7 * 86400, "a number of seconds")
    _positive_int(config, "FIRST_SYNC_HOURS", 1, 24 * 365, "a number of hours")
    _positive_int(config, "SYNC_BATCH_SIZE", 1, 5000, "a number of messages")
    _positive_int(config, "SYNC_JOB_TIMEOUT", 60, 86400, "a number of seconds")
    _positive_int(config, "SYNC_LEASE_SECONDS", 2, 600, "a number of seconds")
    _positive_int(config, "SYNC_RUNS_KEPT", 1, 10000, "a number of runs")
    intervals = config.get("SYNC_RETRY_INTERVALS")
    if isinstance(intervals, str):
        intervals = [p.strip() for p in intervals.split(",") if p.strip()]
    try:
        intervals = [int(i) for i in intervals or ()]
        if not 0 < len(intervals) <= 20 or not all(0 <= i <= 86400 for i in intervals):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            "SYNC_RETRY_INTERVALS is not a comma-separated list of seconds such as '60,300,900'."
        ) from None
    config["SYNC_RETRY_INTERVALS"] = intervals


def _finalize_webhooks(config):
    """Validate the webhook delivery settings (seconds) and parse them into numbers."""
    limits = {
        "WEBHOOK_TIMEOUT_SECONDS": (0.1, 60),
        "WEBHOOK_RETRY_BASE_SECONDS": (0, 86400),
        "WEBHOOK_RETRY_MAX_SECONDS": (0, 7 * 86400),
        "WEBHOOK_RETRY_FOR_SECONDS": (0, 7 * 86400),
        "WEBHOOK_PAUSE_AFTER_SECONDS": (60, 30 * 86400),
    }
    for name, (low, high) in limits.items():
        try:
            value = float(str(config.get(name)).strip())
            if not low <= value <= high:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number of seconds from {low:g} to "
                              f"{high:g}.") from None
        config[name] = value


def _finalize_mail(config):
    """Validate SMTP_URL, MAIL_FROM, MAIL_RETRY_INTERVALS and PASSWORD_RESET_SECONDS."""
    from tracker.mailer import SmtpSettings

    url = str(config.get("SMTP_URL") or "").strip()
    if url:
        try:
            settings = SmtpSettings(url)
        except ValueError:
            raise ConfigError(
                "SMTP_URL is not an SMTP URL such as smtp://user:password@host:587?starttls=1 "
                "or smtps://user:password@host:465."
            ) from None
    config["SMTP_URL"] = url
    if url and not config.get("BASE_URL"):
        # Links in emails must not take their host from a request's Host header.
        raise ConfigError("BASE_URL must be set when SMTP_URL is: links in emails point to it.")
    sender = str(config.get("MAIL_FROM") or "").strip()
    if url and not sender:
        sender = (settings.username if settings.username and "@" in settings.username
                  else f"tracker@{settings.host}")
    if sender and ("@" not in sender or any(c in sender for c in "\r\n")):
        raise ConfigError(f"MAIL_FROM is not an email address: {sender!r}.")
    config["MAIL_FROM"] = sender
    ca_file = str(config.get("SMTP_CA_FILE") or "").strip()
    if ca_file and not Path(ca_file).is_file():
        raise ConfigError(f"SMTP_CA_FILE does not name a readable file: {ca_file!r}.")
    config["SMTP_CA_FILE"] = ca_file or None
    intervals = config.get("MAIL_RETRY_INTERVALS")
    if isinstance(intervals, str):
        intervals = [p.strip() for p in intervals.split(",") if p.strip()]
    try:
        intervals = [int(i) for i in intervals or ()]
        if not len(intervals) <= 20 or not all(0 <= i <= 86400 for i in intervals):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(
            "MAIL_RETRY_INTERVALS is not a comma-separated list of seconds such as '60,300,1800'."
        ) from None
    config["MAIL_RETRY_INTERVALS"] = intervals
    _positive_int(config, "PASSWORD_RESET_SECONDS", 60, 7 * 86400, "a number of seconds")
