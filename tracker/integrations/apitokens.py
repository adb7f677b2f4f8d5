"""Bearer tokens of the read API: made, stored as digests, checked, revoked.

A token is "et_" and 43 URL-safe characters (32 random bytes from `secrets`).
With that much entropy a fast digest is enough (no password hashing): the
database keeps only the hex SHA-256 of the token, which is also the key a
request looks its token up by, and the digest found is compared again with
`hmac.compare_digest`. The token itself is shown once, on creation.
"""

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update

from tracker.extensions import db
from tracker.models import ApiToken, utcnow

PREFIX = "et_"
# "et_" + base64url of 32 bytes (43 characters, no padding).
_SHAPE = re.compile(r"et_[A-Za-z0-9_-]{43}")
# last_used_at is written at most this often per token (one UPDATE a minute, not per call).
TOUCH_EVERY = timedelta(seconds=60)
# Characters of the token kept in clear to tell tokens apart in the list.
SHOWN = 10


def digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(account_id, name, user_id=None):
    """A new token of the account: (ApiToken row, the token in clear, to show once). Commits."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(account_id=account_id, name=name, token_hash=digest(token),
                   prefix=token[:SHOWN], created_by=user_id)
    db.session.add(row)
    db.session.commit()
    return row, token


def bearer(header):
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if _SHAPE.fullmatch(value) else None


def authenticate(token):
    """The active ApiToken of a token in clear, or None (unknown, revoked, malformed)."""
    if not token or not _SHAPE.fullmatch(token):
        return None
    wanted = digest(token)
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == wanted))
    if row is None or not hmac.compare_digest(row.token_hash, wanted):
        return None
    if row.revoked_at is not None:
        return None
    return row


def touch(row, now=None):
    """Record that the token was used (at most once per TOUCH_EVERY). Commits."""
    now = now or utcnow()
    if row.last_used_at is not None and now - row.last_used_at < TOUCH_EVERY:
        return
    db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
    db.session.commit()


def revoke(row):
    """Revoke a token for good (kept in the list, marked revoked). Commits."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.session.commit()
