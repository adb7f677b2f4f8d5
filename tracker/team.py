"""Teammates: invitations to an account, roles, and the one-owner-at-least rule.

An invitation link is /team/join/<token>: 32 random bytes from `secrets`; only
the token's SHA-256 is stored, with its expiry (INVITATION_DAYS, 7) and when it
was used. Using it is one conditional UPDATE, so of two simultaneous uses only one
wins. Every account keeps at least one owner: the last one can be neither removed
nor demoted (the check counts under a row lock on PostgreSQL).
"""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app, has_request_context, request, url_for
from sqlalchemy import func, select, update

from tracker.extensions import db
from tracker.models import Invitation, Membership, User, utcnow
from tracker.models.accounts import OWNER, ROLES

INVITATION_DAYS = 7


class TeamError(Exception):
    """A change the rules refuse (shown to the owner as is)."""


def digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite(account_id, email, role, invited_by=None):
    """A new invitation; returns (row, token). The token is not stored: shown or sent once.
    Commits."""
    if role not in ROLES:
        raise ValueError(role)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = Invitation(account_id=account_id, email=email.strip().lower(), role=role,
                     token_hash=digest(token), invited_by=invited_by, created_at=now,
                     expires_at=now + timedelta(days=INVITATION_DAYS))
    db.session.add(row)
    db.session.commit()
    return row, token


def invitation_url(token):
    """The full address of an invitation link (under BASE_URL when set)."""
    path = url_for("team.join", token=token) if has_request_context() else "/team/join/" + token
    base = current_app.config.get("BASE_URL")
    if base:
        return base.rstrip("/") + path
    if has_request_context():
        return request.host_url.rstrip("/") + path
    return "http://127.0.0.1:5000" + path


def find(token):
    """The invitation of a link, used or not, expired or not; None when there is none
    (a forged, mistyped or revoked link)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token_hash == digest(token)))


def _claim(invitation, user):
    """Mark the invitation used by user, if it still is unused and unexpired (one UPDATE,
    so of two simultaneous uses one wins); on failure roll back and return False."""
    now = utcnow()
    used = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None),
               Invitation.expires_at > now)
        .values(accepted_at=now, accepted_by=user.id)
        .execution_options(synchronize_session=False))
    if used.rowcount != 1:
        db.session.rollback()
        return False
    return True


def accept(invitation, user):
    """Use the invitation for user: they join its account with its role (a member already
    keeps the stronger of both roles). Returns the membership, or None when the link
    was used, or expired, meanwhile. Commits."""
    if not _claim(invitation, user):
        return None
    membership = db.session.scalar(select(Membership).where(
        Membership.account_id == invitation.account_id, Membership.user_id == user.id))
    if membership is None:
        membership = Membership(account_id=invitation.account_id, user=user, role=invitation.role)
        db.session.add(membership)
    elif ROLES.index(invitation.role) < ROLES.index(membership.role):
        membership.role = invitation.role
    db.session.commit()
    db.session.refresh(invitation)
    return membership


def sign_up(invitation, password, locale=None):
    """A new user of the invitation's email, a member of its account only, with its
    role; None when the link was used, or expired, meanwhile. Commits."""
    user = User(email=invitation.email, home_account_id=invitation.account_id, locale=locale)
    user.set_password(password)
    # Their membership comes from the invitation, not the owner default of new users.
    user.memberships.append(Membership(account_id=invitation.account_id, role=invitation.role))
    db.session.add(user)
    db.session.flush()
    if not _claim(invitation, user):
        return None
    db.session.commit()
    return user


def _owners(account_id):
    query = select(Membership.id).where(Membership.account_id == account_id,
                                        Membership.role == OWNER)
    if db.session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()  # two owners demoting each other take turns
    return db.session.scalars(query).all()


def change_role(membership, role):
    """Give the member another role; the last owner cannot be demoted. Commits."""
    if role not in ROLES:
        raise ValueError(role)
    if membership.role == OWNER and role != OWNER and _owners(membership.account_id) == [membership.id]:
        db.session.rollback()
        raise TeamError("last owner")
    membership.role = role
    db.session.commit()


def remove(membership):
    """Remove the member from the account; the last owner cannot be removed. Commits."""
    if membership.role == OWNER and _owners(membership.account_id) == [membership.id]:
        db.session.rollback()
        raise TeamError("last owner")
    db.session.delete(membership)
    db.session.commit()


def pending(account_id):
    """The account's invitations not used yet (expired ones too, marked so), newest first."""
    return db.session.scalars(
        select(Invitation).where(Invitation.account_id == account_id,
                                 Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())).all()


def members(account_id):
    """The account's memberships with their users, owners first, then by email."""
    order = {role: index for index, role in enumerate(ROLES)}
    rows = db.session.scalars(
        select(Membership).where(Membership.account_id == account_id)
        .join(User, User.id == Membership.user_id)
        .order_by(func.lower(User.email))).all()
    return sorted(rows, key=lambda m: order.get(m.role, len(order)))
