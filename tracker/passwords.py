"""Password reset links and password changes.

A reset link is BASE_URL + /reset-password/<token>: 32 random bytes from
`secrets`; the database keeps only the token's SHA-256 (with that much entropy a
fast digest is enough), its expiry (PASSWORD_RESET_SECONDS, an hour by default)
and when it was used. A link works once: using it is one conditional UPDATE, so
of two simultaneous uses only one wins. A new password ends every session of the
user and every other reset link.
"""

import hashlib
import os
import secrets
from datetime import timedelta

from flask import current_app, has_request_context, request, url_for
from sqlalchemy import select, update

from tracker.extensions import db
from tracker.models import User, utcnow
from tracker.models.passwords import PasswordReset

MIN_LENGTH = 8
MAX_LENGTH = 1024


def digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_reset(user):
    """A new reset link for the user; returns the token (shown or sent once). Commits."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    seconds = current_app.config["PASSWORD_RESET_SECONDS"]
    db.session.add(PasswordReset(user_id=user.id, token_hash=digest(token), created_at=now,
                                 expires_at=now + timedelta(seconds=seconds)))
    db.session.commit()
    return token


def reset_url(token):
    """The full address of a reset link: under BASE_URL when set (always for email, see
    tracker.config), else this request's host, else the local `make run` address."""
    path = url_for("auth.reset_password", token=token) if has_request_context() \
        else "/reset-password/" + token
    base = current_app.config.get("BASE_URL")
    if base:
        return base + path
    if has_request_context():
        return request.host_url.rstrip("/") + path
    # A command without BASE_URL: the address `make run` serves on.
    return "http://{}:{}".format(os.environ.get("HOST", "127.0.0.1"),
                                 os.environ.get("WEB_PORT", "5000")) + path


def _valid(token):
    return (PasswordReset.token_hash == digest(token), PasswordReset.used_at.is_(None),
            PasswordReset.expires_at > utcnow())


def user_of(token):
    """The active user a still-valid link belongs to, or None (unknown, used or expired)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    reset = db.session.scalar(select(PasswordReset).where(*_valid(token)))
    if reset is None:
        return None
    user = db.session.get(User, reset.user_id)
    return user if user is not None and user.active else None


def use_reset(token, new_password):
    """Set a new password through a link; returns the user, or None when the link no
    longer works (nothing changed then). Ends every session of the user. Commits."""
    from tracker.security import end_all_sessions

    user = user_of(token)
    if user is None:
        return None
    used = db.session.execute(
        update(PasswordReset).where(*_valid(token)).values(used_at=utcnow())
        .execution_options(synchronize_session=False))
    if used.rowcount != 1:
        db.session.rollback()
        return None  # used by a simultaneous request
    user.set_password(new_password)
    end_all_sessions(user)
    _end_links(user)
    db.session.commit()
    return user


def _end_links(user):
    """Every unused link of the user stops working (after a new password)."""
    db.session.execute(update(PasswordReset).where(
        PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))


def change_password(user, new_password):
    """A new password chosen while signed in: other sessions and every reset link end;
    this browser stays signed in. Commits."""
    from tracker.security import end_other_sessions

    user.set_password(new_password)
    _end_links(user)
    end_other_sessions(user)  # commits
