"""Accounts (tenants) and their users."""

import secrets
import time
from datetime import datetime

from flask import current_app
from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint, event
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
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
        back_populates="home_account", cascade="all, delete-orphan", passive_deletes=True
    )
    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )


# Roles of a member in an account, most powerful first (see tracker.roles).
OWNER, EDITOR, VIEWER = "owner", "editor", "viewer"
ROLES = (OWNER, EDITOR, VIEWER)


class User(UserMixin, db.Model):
    """A person who signs in to the admin; a member of one or more accounts.

    The column account_id is the home account (the one the user was created with,
    the default after sign-in). On an instance, `account_id`, `account` and `role`
    are those of the account this session works in (tracker.security.load_user
    chooses it among the user's memberships), else the home account.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    home_account_id: Mapped[int] = mapped_column(
        "account_id", ForeignKey("account.id", ondelete="CASCADE"), index=True, nullable=False
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

    home_account: Mapped[Account] = relationship(back_populates="users")
    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Membership.id",
    )

    # The membership this request works in (set by tracker.security.load_user).
    _membership = None

    @hybrid_property
    def account_id(self):
        membership = self._membership
        return membership.account_id if membership is not None else self.home_account_id

    @account_id.inplace.setter
    def _account_id_setter(self, value):
        self.home_account_id = value

    @account_id.inplace.expression
    @classmethod
    def _account_id_expression(cls):
        return cls.home_account_id

    @property
    def account(self):
        membership = self._membership
        return membership.account if membership is not None else self.home_account

    @account.setter
    def account(self, value):
        self.home_account = value

    @property
    def role(self):
        """The role in the current account; None when the user is no member of it."""
        membership = self._membership
        return membership.role if membership is not None else None

    def use_membership(self, membership):
        self._membership = membership

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
        self.password_hash = generate_password_hash(
            password, method=current_app.config["PASSWORD_HASH_METHOD"])

    def check_password(self, password):
        return check_password_hash(self.password_hash, password)


class Membership(db.Model):
    """A user's role in one account. Every account keeps at least one owner."""

    __table_args__ = (UniqueConstraint("account_id", "user_id", name="uq_membership_account_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user.id", ondelete="CASCADE"), index=True, nullable=False
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    account: Mapped[Account] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")


class Invitation(db.Model):
    """An owner's invitation of an email address to the account, with a role.

    The link carries a random token; only its SHA-256 is stored. One use, until
    expires_at (tracker.team)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("account.id", ondelete="CASCADE"), index=True, nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    invited_by: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    accepted_at: Mapped[datetime | None]
    accepted_by: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, nullable=False)

    account: Mapped[Account] = relationship()

    @property
    def expired(self):
        return self.expires_at <= utcnow()


@event.listens_for(Session, "before_flush")
def _owner_of_new_account(session, flush_context, instances):
    """A new user without a membership (`flask users create`, the demo) becomes the
    owner of the account it is created with; invited users get theirs explicitly."""
    for obj in list(session.new):
        if isinstance(obj, User) and not obj.memberships:
            account = obj.home_account
            if account is None and obj.home_account_id is not None:
                account = session.get(Account, obj.home_account_id)
            if account is not None:
                session.add(Membership(account=account, user=obj, role=OWNER))
