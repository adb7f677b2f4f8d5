"""Sending email: `send_mail(to, subject, text)` queues one plain-text message.

The message is stored first (tracker.models.mail.OutgoingMail, its text encrypted),
then an RQ job (tracker.jobs.mail.send) delivers it through SMTP_URL, retrying
after MAIL_RETRY_INTERVALS. A message that cannot be delivered ends `failed` with
its error, listed to the account's owners on the activity page.
"""

import logging
from urllib.parse import unquote, urlsplit

from flask import current_app
from redis.exceptions import RedisError

from tracker import crypto
from tracker.extensions import db
from tracker.models.base import utcnow

logger = logging.getLogger(__name__)

SCHEMES = {"smtp", "smtps", "smtp+starttls"}


class SmtpSettings:
    """SMTP_URL parsed: smtp://[user:pass@]host[:port][?starttls=1], smtps://..., or
    smtp+starttls://... (port defaults: 25, 465 and 587)."""

    def __init__(self, url):
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not parts.hostname:
            raise ValueError(url)
        query = dict(p.split("=", 1) if "=" in p else (p, "1")
                     for p in parts.query.split("&") if p)
        self.ssl = scheme == "smtps"
        self.starttls = (scheme == "smtp+starttls"
                         or query.get("starttls", "").lower() in {"1", "true", "yes"})
        self.host = parts.hostname
        port = parts.port  # raises ValueError when out of range
        self.port = port or (465 if self.ssl else 587 if self.starttls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None


def configured():
    """True when SMTP_URL is set: the app may send email."""
    return bool(current_app.config.get("SMTP_URL"))


def send_mail(to, subject, text, account_id=None):
    """Queue one plain-text email to `to`; returns its OutgoingMail row, or None when
    SMTP_URL is not set (the caller then shows the link instead).

    Commits the session (the worker must see the row). When the queue cannot be
    reached the message is marked failed at once, so it is shown, not lost.
    """
    from tracker.jobs.mail import enqueue
    from tracker.models.mail import OutgoingMail

    if not configured():
        return None
    mail = OutgoingMail(account_id=account_id, recipient=str(to)[:320],
                        subject=str(subject)[:300], body_token=crypto.encrypt(str(text)))
    db.session.add(mail)
    db.session.commit()
    try:
        enqueue(mail.id)
    except RedisError as exc:
        logger.warning("Mail %s not queued: %s", mail.id, exc)
        mark_failed(mail, f"The mail queue is unavailable: {exc}")
        db.session.commit()
    return mail


def mark_failed(mail, error):
    """Give up on a message: keep who and why, drop its text."""
    mail.state = "failed"
    mail.last_error = str(error)[:500]
    mail.failed_at = utcnow()
    mail.body_token = None


def failed_count(account_id):
    """How many of the account's emails could not be sent (listed on the activity page)."""
    from sqlalchemy import func, select

    from tracker.models.mail import OutgoingMail

    return db.session.scalar(select(func.count()).select_from(OutgoingMail).where(
        OutgoingMail.account_id == account_id, OutgoingMail.state == "failed"))
