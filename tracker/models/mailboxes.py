"""Credentials (how to sign in to a mail server) and the mailboxes read with them."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tracker import crypto
from tracker.extensions import db
from tracker.imap import ServerParams, describe
from tracker.mailservices import service_label
from tracker.models.base import AccountOwned

HOUR = 3600
DAY = 24 * HOUR
PERIOD_UNITS = {"hours": HOUR, "days": DAY}


class Credential(AccountOwned, db.Model):
    """A login to one real mailbox on one IMAP server; the password is kept encrypted.

    (host, login) is unique across all accounts: together with Mailbox.credential_id
    being unique, that is what lets one real mailbox be connected only once.
    """

    __table_args__ = (UniqueConstraint("host", "login"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    protocol: Mapped[str] = mapped_column(String(8), default="imap", nullable=False)
    # A key of tracker.mailservices.SERVICES, or "other" for a manual server.
    service: Mapped[str] = mapped_column(String(32), nullable=False)
    # Lowercase ASCII (IDNA) host name or IP address.
    host: Mapped[str] = mapped_column(String(253), nullable=False)
    port: Mapped[int] = mapped_column(nullable=False)
    security: Mapped[str] = mapped_column(String(16), nullable=False)
    # The mailbox's email address, lowercased.
    login: Mapped[str] = mapped_column(String(320), nullable=False)
    # A MultiFernet token (tracker.crypto); never the password itself.
    password_token: Mapped[str] = mapped_column(String(2000), nullable=False)
    # OAuth sign-in (tracker.oauth): the provider key (None: a password credential), the
    # refresh token and the current access token as MultiFernet tokens, the access
    # token's expiry, and when the provider refused the refresh token (sign in again).
    oauth_provider: Mapped[str | None] = mapped_column(String(32))
    refresh_token_token: Mapped[str | None] = mapped_column(Text)
    access_token_token: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    oauth_revoked_at: Mapped[datetime | None]

    mailbox: Mapped["Mailbox | None"] = relationship(
        back_populates="credential", passive_deletes=True
    )

    @property
    def service_label(self):
        return service_label(self.service)

    @property
    def password(self):
        """The decrypted password, for connecting; never for pages or logs."""
        return crypto.decrypt(self.password_token)

    @password.setter
    def password(self, value):
        self.password_token = crypto.encrypt(value)

    @property
    def is_oauth(self):
        return self.oauth_provider is not None

    @property
    def refresh_token(self):
        """The decrypted OAuth refresh token, for the token endpoint only."""
        return crypto.decrypt(self.refresh_token_token) if self.refresh_token_token else None

    @refresh_token.setter
    def refresh_token(self, value):
        self.refresh_token_token = crypto.encrypt(value) if value else None

    @property
    def access_token(self):
        return crypto.decrypt(self.access_token_token) if self.access_token_token else None

    @access_token.setter
    def access_token(self, value):
        self.access_token_token = crypto.encrypt(value) if value else None

    def valid_access_token(self, until):
        """The cached access token if it is still valid at `until`, else None."""
        if not self.access_token_token or self.access_token_expires_at is None:
            return None
        if self.access_token_expires_at <= until:
            return None
        try:
            return self.access_token
        except crypto.InvalidToken:
            return None

    def mark_withdrawn(self, at):
        """The provider refused the refresh token: forget the tokens, wait for a sign-in."""
        self.oauth_revoked_at = at
        self.refresh_token_token = None
        self.access_token_token = None
        self.access_token_expires_at = None

    def server_params(self):
        """What tracker.imap needs to connect with these credentials."""
        if self.is_oauth:
            from tracker.oauth import TokenSource, get_provider

            provider = get_provider(self.oauth_provider)
            return ServerParams(host=self.host, port=self.port, security=self.security,
                                login=self.login, password="", service=self.service,
                                mechanism=provider.mechanism if provider else "xoauth2",
                                token=TokenSource(self))
        return ServerParams(host=self.host, port=self.port, security=self.security,
                            login=self.login, password=self.password, service=self.service)


class Mailbox(AccountOwned, db.Model):
    """A real mailbox that the service reads: its credentials, folders and status."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: a real mailbox (one credential, one host + login) is connected once.
    credential_id: Mapped[int] = mapped_column(
        ForeignKey("credential.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    # An inactive mailbox is kept but never synced.
    active: Mapped[bool] = mapped_column(default=True, nullable=False)
    # 0: every email counts as a new request.
    repeat_period_seconds: Mapped[int] = mapped_column(default=DAY, nullable=False)
    # The unit the user chose, to show the period the way it was entered.
    repeat_period_unit: Mapped[str] = mapped_column(String(8), default="days", nullable=False)
    # None: never checked or synced; "ok"; or a tracker.imap failure code.
    status: Mapped[str | None] = mapped_column(String(32))
    # The parameters of the status message (host, folder, ...), rendered in the reader's language.
    status_params: Mapped[dict | None] = mapped_column(JSON)
    checked_at: Mapped[datetime | None]
    synced_at: Mapped[datetime | None]

    credential: Mapped[Credential] = relationship(back_populates="mailbox")
    folders: Mapped[list["MailboxFolder"]] = relationship(
        back_populates="mailbox",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="MailboxFolder.position",
    )

    @property
    def address(self):
        return self.credential.login

    @property
    def folder_names(self):
        return [f.name for f in self.folders]

    @property
    def repeat_period_value(self):
        return self.repeat_period_seconds // PERIOD_UNITS.get(self.repeat_period_unit, DAY)

    @property
    def status_message(self):
        return describe(self.status, self.status_params) if self.status else None

    def record(self, result, at):
        """Store the outcome of a connection check (a tracker.imap.CheckResult)."""
        self.status = result.code
        self.status_params = dict(result.params)
        self.checked_at = at


class MailboxFolder(db.Model):
    """A folder of a mailbox to read (INBOX by default)."""

    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailbox.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(500), nullable=False)
    position: Mapped[int] = mapped_column(default=0, nullable=False)
    # Sync state. The UIDVALIDITY the folder had at the last sync and the highest UID
    # read under it (None: never synced); both advance in the same transaction as the
    # emails they cover.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    synced_at: Mapped[datetime | None]
    # None: never synced; "ok"; or a tracker.imap failure code (e.g. folder_missing).
    status: Mapped[str | None] = mapped_column(String(32))
    # The server's own words about the last failure, if any.
    last_error: Mapped[str | None] = mapped_column(String(1000))

    mailbox: Mapped[Mailbox] = relationship(back_populates="folders")

    @property
    def status_message(self):
        if not self.status or self.status == "ok":
            return None
        return describe(self.status, {"folder": self.name, "detail": self.last_error or ""})


def email_count(mailbox):
    """How many emails of the mailbox are stored."""
    from tracker.models.emails import Email

    return db.session.scalar(
        select(func.count()).select_from(Email).where(Email.mailbox_id == mailbox.id)
    ) or 0
