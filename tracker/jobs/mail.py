"""RQ job that sends one stored email (tracker.models.mail.OutgoingMail) over SMTP_URL.

A failure schedules the next attempt after the next of MAIL_RETRY_INTERVALS
(`enqueue_in`: the workers run with --with-scheduler); when they are used up the
message ends `failed` with its last error, listed to the account's owners. An
address the server refuses outright (5xx) is not retried.
"""

import logging
import smtplib
import socket
import ssl
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from flask import current_app
from rq import Queue

from tracker import crypto
from tracker.extensions import db
from tracker.jobs import app_context, redis_connection
from tracker.mailer import SmtpSettings, mark_failed
from tracker.models.base import utcnow

logger = logging.getLogger(__name__)

SMTP_TIMEOUT = 20


def enqueue(mail_id, delay=0):
    """Queue a sending attempt now, or in `delay` seconds."""
    queue = Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())
    options = {"job_timeout": SMTP_TIMEOUT * 3 + 30, "result_ttl": 600,
               "failure_ttl": 7 * 86400, "description": f"mail {mail_id}"}
    if delay and delay > 0:
        return queue.enqueue_in(timedelta(seconds=delay), send, mail_id, **options)
    return queue.enqueue(send, mail_id, **options)


def _message(mail, text, sender):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">") or None)
    message.set_content(text)
    return message


def _deliver(settings, message):
    context = ssl.create_default_context(cafile=current_app.config.get("SMTP_CA_FILE"))
    if settings.ssl:
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=SMTP_TIMEOUT,
                                context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=SMTP_TIMEOUT)
    with smtp:
        if settings.starttls:
            smtp.starttls(context=context)
        if settings.username:
            smtp.login(settings.username, settings.password or "")
        smtp.send_message(message)


def send(mail_id):
    """Job: one attempt at sending a stored message. Returns its outcome."""
    from tracker.models.mail import OutgoingMail

    with app_context():
        lock = redis_connection().lock(f"tracker:mail:{mail_id}", timeout=SMTP_TIMEOUT * 3 + 60)
        if not lock.acquire(blocking=False):
            return "busy"
        try:
            mail = db.session.get(OutgoingMail, mail_id)
            if mail is None:
                return "deleted"
            if mail.state != "pending":
                return mail.state
            return _attempt(mail)
        finally:
            try:
                lock.release()
            except Exception:  # expired meanwhile
                pass


def _attempt(mail):
    config = current_app.config
    mail.attempts += 1
    permanent = False
    try:
        if not config.get("SMTP_URL"):
            raise RuntimeError("SMTP_URL is not set")
        text = crypto.decrypt(mail.body_token or "")
        _deliver(SmtpSettings(config["SMTP_URL"]), _message(mail, text, config["MAIL_FROM"]))
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        error, permanent = _describe(exc), True
    except smtplib.SMTPResponseException as exc:
        error, permanent = _describe(exc), 500 <= exc.smtp_code < 600
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError, ValueError,
            RuntimeError, crypto.InvalidToken) as exc:
        error = _describe(exc)
    else:
        mail.state, mail.sent_at, mail.last_error, mail.body_token = "sent", utcnow(), None, None
        db.session.commit()
        return "sent"
    intervals = config["MAIL_RETRY_INTERVALS"]
    mail.last_error = error[:500]
    if permanent or mail.attempts > len(intervals):
        mark_failed(mail, error)
        db.session.commit()
        logger.warning("Mail %s to %s failed for good: %s", mail.id, mail.recipient, error)
        return "failed"
    delay = intervals[mail.attempts - 1]
    db.session.commit()
    enqueue(mail.id, delay)
    return f"retry in {delay} s"


def _describe(exc):
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [f"{code} {msg.decode(errors='replace')}" for code, msg in exc.recipients.values()]
        return "Recipient refused: " + "; ".join(codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        return f"{exc.smtp_code} {text}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def enqueue_reset_request(email, locale):
    """Queue the look-up behind a "forgot password" form: the request answers the same,
    as fast, whether or not the address has an account."""
    queue = Queue(current_app.config["RQ_QUEUE"], connection=redis_connection())
    return queue.enqueue(reset_requested, email, locale, job_timeout=60, result_ttl=60,
                         failure_ttl=7 * 86400, description="password reset request")


def reset_requested(email, locale):
    """Job: email a reset link when `email` belongs to an active user. Returns what it did."""
    from flask_babel import force_locale
    from flask_babel import gettext as _
    from sqlalchemy import func, select

    from tracker import passwords
    from tracker.mailer import send_mail
    from tracker.models import User

    with app_context():
        user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
        if user is None or not user.active:
            return "no such user"
        token = passwords.create_reset(user)
        minutes = current_app.config["PASSWORD_RESET_SECONDS"] // 60
        with force_locale(user.locale or locale or "en"):
            subject = _("Reset your password")
            text = _(
                "Someone, hopefully you, asked to reset the password of %(email)s.\n\n"
                "Open this link within %(minutes)d minutes to choose a new password:\n%(url)s\n\n"
                "The link works once. If you did not ask for it, ignore this email: your "
                "password stays as it is.",
                email=user.email, minutes=minutes, url=passwords.reset_url(token))
        send_mail(user.email, subject, text, account_id=user.home_account_id)
        return "sent"


def sweep():
    """rq cron, every 10 minutes: a message still pending long after its last retry was due
    (its job lost with Redis or a killed worker) is marked failed, so its owners see it.
    Returns the ids marked."""
    from sqlalchemy import select

    from tracker.models.mail import OutgoingMail

    with app_context():
        patience = sum(current_app.config["MAIL_RETRY_INTERVALS"]) + 3600
        cutoff = utcnow() - timedelta(seconds=patience)
        lost = db.session.scalars(select(OutgoingMail).where(
            OutgoingMail.state == "pending", OutgoingMail.created_at < cutoff)).all()
        for mail in lost:
            mark_failed(mail, mail.last_error or "The sending job was lost (no worker sent it).")
        db.session.commit()
        return [mail.id for mail in lost]
