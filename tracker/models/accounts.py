"""Accounts (tenants) and their users."""

import secrets
import time
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from tracker.extensions import db
from tracker.models.base import utcnow


def new_session_token():
    return secrets.token_urlsafe(24)


class Account(db.Model):
    """A tenant: every other object belongs to exactly one account."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # IANA zone name: the account's days in reports and the times on its pages.
    timezone: Mapped[str] = mapped_column(
        String(64), default="UTC", server_default="UTC", nullable=False
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    users: Mapped[list["User"]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )


class User(UserMixin, db.Model):
    """A person who signs in to the admin of one account."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True, nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    # None: follow the browser's Accept-Language.
    locale: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)
    # The session generation: part of the id in the session and the remember-me
    # cookie (get_id), checked on every request; a new one ends every session.
    session_token: Mapped[str] = mapped_column(
        String(64), default=new_session_token, nullable=False
    )

    account: Mapped[Account] = relationship(back_populates="users")

    @property
    def is_active(self):
        return self.active

    def get_id(self):
        """The id Flask-Login keeps in the session and the remember-me cookie at sign-in:
        "<id>:<session token>:<sign-in time>" (checked by tracker.security.load_user)."""
        if not self.session_token:
            self.session_token = new_session_token()
        return f"{self.id}:{self.session_token}:{int(time.time())}"

    def set_password(self, password):
        self.password_hash = generate_password_hash(password)

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)
