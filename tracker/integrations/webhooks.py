"""Webhooks: each stored email, signed and posted to the account's URLs (no RQ here).

- Events: "email.new_request" (a counted email) goes to every URL; "email.repeat"
  only to URLs that want every email. "test" is the "Send test" button's.
- The body is JSON of at most MAX_BODY bytes: the event id (the receiver's
  idempotency key, the same on every attempt), its type and the email
  (tracker.integrations.payload). Long fields are cut to fit and named in
  "truncated".
- Each attempt is signed: X-Tracker-Signature is "v1=" and the hex HMAC-SHA256,
  under the URL's secret, of the X-Tracker-Timestamp value (Unix seconds), a
  "." and the body bytes.
- The URL goes through the mailbox hosts' guard (tracker.imap.resolve): resolved
  once, private, loopback, link-local and reserved addresses refused unless
  ALLOW_PRIVATE_IMAP_HOSTS, and the connection goes to the address checked (the
  name is sent as Host and TLS SNI, and the certificate is verified against it).
  Redirects are not followed: only a 2xx answer delivers.
- Every attempt is bounded by WEBHOOK_TIMEOUT_SECONDS in all (connect, send and
  the answer), by a watchdog that shuts the socket down.
- Failures are retried with exponential back-off (WEBHOOK_RETRY_BASE_SECONDS,
  doubling up to WEBHOOK_RETRY_MAX_SECONDS) for WEBHOOK_RETRY_FOR_SECONDS after
  the event; a URL with no 2xx for WEBHOOK_PAUSE_AFTER_SECONDS is paused, and
  its owner sees why.

tracker.jobs.webhooks runs `attempt` in RQ jobs and schedules the retries.
"""

import hashlib
import hmac
import http.client
import logging
import secrets
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import idna
import orjson
from flask import current_app
from sqlalchemy import select, update

from tracker import crypto, imap
from tracker.extensions import db
from tracker.integrations.payload import email_payload, iso
from tracker.models import Email, Webhook, WebhookAttempt, WebhookDelivery, utcnow
from tracker.reports.text import visible

logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_URL = 2000
EXCERPT = 300
# Bytes of the answer read for the log excerpt; the rest is never read.
READ_LIMIT = 1024
USER_AGENT = "email-tracker-webhooks/1"
SIGNATURE_HEADER = "X-Tracker-Signature"
TIMESTAMP_HEADER = "X-Tracker-Timestamp"
EVENT_HEADER = "X-Tracker-Event"
EVENT_ID_HEADER = "X-Tracker-Event-Id"
ATTEMPT_HEADER = "X-Tracker-Attempt"
SECRET_PREFIX = "whsec_"

DEFAULTS = {
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    "WEBHOOK_RETRY_BASE_SECONDS": 30,
    "WEBHOOK_RETRY_MAX_SECONDS": 4 * 3600,
    "WEBHOOK_RETRY_FOR_SECONDS": 24 * 3600,
    "WEBHOOK_PAUSE_AFTER_SECONDS": 24 * 3600,
}


def setting(name):
    """A webhook setting from the app config, or its default."""
    value = current_app.config.get(name)
    return float(value) if value is not None else DEFAULTS[name]


def allow_private():
    """The operator's switch for private addresses: the one mailbox hosts use."""
    return bool(current_app.config.get("ALLOW_PRIVATE_IMAP_HOSTS"))


# ------------------------------------------------------------------ URLs


class WebhookUrlError(ValueError):
    """A URL that cannot be used: `code` and `params` say why."""

    def __init__(self, code, **params):
        super().__init__(code, params)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url):
    """Check a webhook URL's form (no network); return its Target or raise WebhookUrlError."""
    url = (url or "").strip()
    if not url:
        raise WebhookUrlError("bad_url")
    if len(url) > MAX_URL:
        raise WebhookUrlError("url_too_long", max=MAX_URL)
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise WebhookUrlError("bad_url")
    try:
        parts = urlsplit(url)
        port = parts.port
        hostname = parts.hostname
    except ValueError:
        raise WebhookUrlError("bad_url") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("bad_scheme")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("userinfo")
    if not hostname:
        raise WebhookUrlError("bad_url")
    hostname = hostname.rstrip(".")
    if not imap._literal(hostname):
        try:
            hostname = idna.encode(hostname, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError):
            raise WebhookUrlError("bad_url") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # Non-ASCII in the path or query: percent-encoded by the user, or refused.
    if not path.isascii():
        raise WebhookUrlError("bad_url")
    return Target(parts.scheme, hostname, port or (443 if parts.scheme == "https" else 80), path)


def check_url(url, *, timeout=None):
    """Check a URL as a delivery would (form, then the address guard); return its Target.

    Raises WebhookUrlError with the guard's code (blocked_address, host_not_found).
    """
    target = parse_url(url)
    resolve(target, timeout=timeout)
    return target


def resolve(target, *, timeout=None):
    """The target's addresses, each checked by the mailbox hosts' guard."""
    timeout = timeout or setting("WEBHOOK_TIMEOUT_SECONDS")
    try:
        return imap.resolve(target.host, target.port, allow_private=allow_private(),
                            timeout=timeout)
    except imap.BlockedAddress as exc:
        raise WebhookUrlError("blocked_address", **exc.args[1]) from None
    except imap.DeadlineExceeded:
        raise WebhookUrlError("timeout", host=target.host) from None
    except (imap.ImapError, OSError, UnicodeError):
        raise WebhookUrlError("host_not_found", host=target.host) from None


# ------------------------------------------------------------------ signing and bodies


def new_secret():
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret, timestamp, body):
    """The signature header's value for body (bytes) sent at timestamp (Unix seconds)."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return "v1=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _dump(document):
    return orjson.dumps(document)


def _shrink(value, limit, path, cut):
    """value with strings over `limit` characters and lists over `limit // 20` items cut."""
    if isinstance(value, str):
        if len(value) > limit:
            cut.add(path)
            return value[:limit]
        return value
    if isinstance(value, list):
        keep = max(limit // 20, 1)
        if len(value) > keep:
            cut.add(path)
            value = value[:keep]
        return [_shrink(item, limit, path, cut) for item in value]
    if isinstance(value, dict):
        return {key: _shrink(item, limit, f"{path}.{key}", cut) for key, item in value.items()}
    return value


def build_body(event_id, event, webhook, email, created_at):
    """The JSON body (bytes, at most MAX_BODY) of an event for a webhook."""
    document = {
        "id": event_id,
        "type": event,
        "created_at": iso(created_at),
        "webhook_id": webhook.id,
        "account_id": webhook.account_id,
        "truncated": [],
        "email": email,
    }
    body = _dump(document)
    limit = 2000
    while len(body) > MAX_BODY and limit >= 20:
        cut = set()
        document["email"] = _shrink(email, limit, "email", cut)
        document["truncated"] = sorted(cut)
        body = _dump(document)
        limit //= 4
    if len(body) > MAX_BODY:  # cannot happen with the email's bounded fields
        document["email"] = None
        document["truncated"] = ["email"]
        body = _dump(document)
    return body


# ------------------------------------------------------------------ events


def event_for(email):
    return "email.new_request" if email.counted else "email.repeat"


def wants(webhook, event):
    return event == "test" or webhook.events == "all" or event == "email.new_request"


def create_deliveries(account_id, email_ids, now=None):
    """Add a pending delivery per email and per active webhook that wants it; return them.

    Works in the caller's transaction (does not commit).
    """
    webhooks = db.session.scalars(
        select(Webhook).where(Webhook.account_id == account_id, Webhook.active.is_(True))
        .order_by(Webhook.id)
    ).all()
    if not webhooks or not email_ids:
        return []
    now = now or utcnow()
    emails = db.session.scalars(
        select(Email).where(Email.account_id == account_id, Email.id.in_(list(email_ids)))
        .order_by(Email.internaldate, Email.id)
    ).all()
    done = set(db.session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.email_id).where(
            WebhookDelivery.account_id == account_id,
            WebhookDelivery.email_id.in_([e.id for e in emails]))
    ).all()) if emails else set()
    created = []
    for email in emails:
        event = event_for(email)
        payload = None
        for webhook in webhooks:
            if not wants(webhook, event) or (webhook.id, email.id) in done:
                continue
            payload = payload if payload is not None else email_payload(email)
            created.append(_delivery(webhook, event, email.id, payload, now))
    db.session.add_all(created)
    db.session.flush()
    return created


def create_test_delivery(webhook, now=None):
    """A "test" event for the webhook, carrying the account's latest email if it has one."""
    now = now or utcnow()
    email = db.session.scalar(
        select(Email).where(Email.account_id == webhook.account_id)
        .order_by(Email.internaldate.desc(), Email.id.desc()).limit(1)
    )
    delivery = _delivery(webhook, "test", None, email_payload(email) if email else None, now)
    db.session.add(delivery)
    db.session.flush()
    return delivery


def _delivery(webhook, event, email_id, payload, now):
    event_id = str(uuid.uuid4())
    body = build_body(event_id, event, webhook, payload, now)
    return WebhookDelivery(account_id=webhook.account_id, webhook_id=webhook.id,
                           event_id=event_id, event=event, email_id=email_id,
                           body=body.decode("utf-8"), state="pending", attempts=0,
                           next_attempt_at=now, created_at=now)


def pause(webhook, reason, now=None):
    """Pause a webhook: no new events, and its pending deliveries are cancelled."""
    webhook.active = False
    webhook.paused_reason = reason
    webhook.paused_at = now or utcnow()
    db.session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook.id, WebhookDelivery.state == "pending")
        .values(state="cancelled", next_attempt_at=None)
    )


def resume(webhook):
    webhook.active = True
    webhook.paused_reason = None
    webhook.paused_at = None
    webhook.failing_since = None


# ------------------------------------------------------------------ HTTP


@dataclass
class Answer:
    """What one attempt got: a status code, or an error code; and the answer's start."""

    status_code: int | None = None
    error: str | None = None
    excerpt: str = ""
    duration_ms: int | None = None

    @property
    def ok(self):
        return self.status_code is not None and 200 <= self.status_code < 300

    def describe(self):
        if self.status_code is not None:
            return f"HTTP {self.status_code}"
        return self.error or "error"


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP(S) over a socket already connected to a checked address.

    `host` stays the URL's name: it is the Host header, the TLS SNI and the name the
    certificate is verified against.
    """

    def __init__(self, target, sock, timeout, tls_context=None):
        super().__init__(target.host, target.port, timeout=timeout)
        self._pinned, self._tls_context = sock, tls_context

    def connect(self):
        sock, self._pinned = self._pinned, None
        if sock is None:
            raise http.client.HTTPException("the pinned socket is used once")
        if self._tls_context is not None:
            try:
                sock = self._tls_context.wrap_socket(sock, server_hostname=self.host)
            except BaseException:
                sock.close()
                raise
        self.sock = sock


def _excerpt(raw):
    text = raw.decode("utf-8", errors="replace")
    return visible(text).strip()[:EXCERPT]


def post(url, body, headers, *, timeout=None):
    """POST body to url through the guard, within `timeout` seconds in all; return an Answer.

    Never raises for what the network or the receiver do: the Answer says it.
    """
    timeout = timeout or setting("WEBHOOK_TIMEOUT_SECONDS")
    started = time.monotonic()
    deadline = started + timeout

    def done(**fields):
        return Answer(duration_ms=int((time.monotonic() - started) * 1000), **fields)

    try:
        target = parse_url(url)
        addresses = resolve(target, timeout=timeout)
    except WebhookUrlError as exc:
        detail = exc.params.get("address") or exc.params.get("host") or ""
        return done(error=exc.code, excerpt=str(detail)[:EXCERPT])
    # The whole attempt ends at the deadline: the watchdog shuts the socket down, so
    # a receiver that trickles its answer cannot hold the worker either.
    watchdog = imap._Watchdog(deadline - time.monotonic())
    try:
        try:
            sock = imap._open_socket(addresses, deadline)
        except OSError as exc:
            late = isinstance(exc, TimeoutError) or time.monotonic() >= deadline
            return done(error="timeout" if late else "connect_failed",
                        excerpt=visible(str(exc))[:EXCERPT])
        watchdog.watch(sock)
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        context = imap.ssl_context(current_app.config.get("IMAP_CA_FILE")) \
            if target.scheme == "https" else None
        conn = _PinnedHTTP(target, sock, timeout, context)
        stage = "connect"
        try:
            conn.connect()
            stage = "send"
            conn.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
            for name, value in {"Host": target.host_header,
                                "Content-Type": "application/json",
                                "Content-Length": str(len(body)),
                                "User-Agent": USER_AGENT, **headers}.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            stage = "answer"
            response = conn.getresponse()
            raw = response.read(READ_LIMIT)
            return done(status_code=response.status, excerpt=_excerpt(raw))
        except (http.client.HTTPException, OSError) as exc:
            # ssl.SSLError is an OSError: a failed handshake, or a cut connection.
            if watchdog.expired or isinstance(exc, TimeoutError):
                return done(error="timeout", excerpt=stage)
            if isinstance(exc, ssl.SSLError) and stage == "connect":
                return done(error="tls_failed", excerpt=visible(str(exc))[:EXCERPT])
            if stage == "connect":
                return done(error="connect_failed", excerpt=visible(str(exc))[:EXCERPT])
            return done(error="bad_response",
                        excerpt=visible(str(exc) or type(exc).__name__)[:EXCERPT])
        finally:
            conn.close()
    finally:
        watchdog.stop()


# ------------------------------------------------------------------ one attempt


def _retry_delay(attempts):
    base = setting("WEBHOOK_RETRY_BASE_SECONDS")
    return min(base * 2 ** max(attempts - 1, 0), setting("WEBHOOK_RETRY_MAX_SECONDS"))


def due(delivery, now):
    """True when the delivery is pending and its time has come."""
    return delivery.state == "pending" and (
        delivery.next_attempt_at is None or delivery.next_attempt_at <= now + timedelta(seconds=1))


def attempt(delivery_id):
    """Send one delivery once, if it is due; log it. Returns the seconds until the retry.

    None when nothing is left to do (delivered, given up, cancelled, or not due). The
    attempt is recorded before the request goes out, so a worker killed meanwhile
    leaves a pending delivery that the sweep sends again (at least once).
    """
    delivery = db.session.get(WebhookDelivery, delivery_id)
    now = utcnow()
    if delivery is None or not due(delivery, now):
        return None
    webhook = db.session.get(Webhook, delivery.webhook_id)
    # A test goes out even while the URL is paused: it is how the owner sees it work again.
    if webhook is None or (not webhook.active and delivery.event != "test"):
        delivery.state, delivery.next_attempt_at = "cancelled", None
        db.session.commit()
        return None
    timeout = setting("WEBHOOK_TIMEOUT_SECONDS")
    delivery.attempts += 1
    # Until this attempt ends, the sweep leaves it alone.
    delivery.next_attempt_at = now + timedelta(seconds=timeout + 60)
    db.session.commit()

    body = delivery.body.encode("utf-8")
    timestamp = int(time.time())
    try:
        secret = webhook.secret
    except crypto.InvalidToken:  # FERNET_KEYS lost the key it was made with
        secret = None
    if secret is None:
        answer = Answer(error="secret_unreadable")
    else:
        headers = {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_HEADER: delivery.event,
            EVENT_ID_HEADER: delivery.event_id,
            ATTEMPT_HEADER: str(delivery.attempts),
        }
        answer = post(webhook.url, body, headers, timeout=timeout)
    return _record(delivery, webhook, answer)


def _record(delivery, webhook, answer):
    now = utcnow()
    db.session.add(WebhookAttempt(
        account_id=delivery.account_id, webhook_id=webhook.id, delivery_id=delivery.id,
        at=now, attempt=delivery.attempts, status_code=answer.status_code,
        error=answer.error, excerpt=answer.excerpt or "", duration_ms=answer.duration_ms,
        created_at=now,
    ))
    if answer.ok:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
        webhook.last_success_at, webhook.failing_since, webhook.last_error = now, None, None
        db.session.commit()
        return None
    webhook.last_error = answer.describe()[:300]
    webhook.failing_since = webhook.failing_since or now
    failing_for = (now - webhook.failing_since).total_seconds()
    if webhook.active and failing_for >= setting("WEBHOOK_PAUSE_AFTER_SECONDS"):
        delivery.state, delivery.next_attempt_at = "failed", None
        pause(webhook, "failing", now)
        logger.info("Webhook %s paused: failing since %s (%s)", webhook.id,
                    webhook.failing_since, webhook.last_error)
        db.session.commit()
        return None
    delay = _retry_delay(delivery.attempts)
    ends = delivery.created_at + timedelta(seconds=setting("WEBHOOK_RETRY_FOR_SECONDS"))
    if delivery.event == "test" or now + timedelta(seconds=delay) > ends:
        # A test is tried once: its answer is what the user wants to see.
        delivery.state, delivery.next_attempt_at = "failed", None
        db.session.commit()
        return None
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    db.session.commit()
    return delay


def pending_overdue(now, grace_seconds=60, limit=500):
    """Ids of pending deliveries of active webhooks whose time passed `grace_seconds` ago.

    Their job was lost (Redis restarted, a worker killed): the sweep queues them again.
    """
    cutoff = now - timedelta(seconds=grace_seconds)
    return list(db.session.scalars(
        select(WebhookDelivery.id)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= cutoff,
               Webhook.active.is_(True))
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)
    ))
