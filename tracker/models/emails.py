"""Emails read from mailboxes, and the log of sync runs."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tracker.extensions import db
from tracker.imap import describe
from tracker.models.base import AccountOwned


# Bytes of search_text kept: enough for any real subject and sender, and small enough
# for the report index's entries (PostgreSQL refuses B-tree entries over 2,704 bytes).
SEARCH_TEXT_BYTES = 600

# Email.uncertain of an email whose only tracked recipient was an address given to a
# bot's visit (a token issued before bots stopped getting them): spam sent to an
# address a crawler harvested. Kept, never a new request (tracker.repeats).
BOT_VISIT = "bot_visit"


def search_text(subject, from_name, from_address):
    """What the report's free-text search reads: subject and sender, case-folded."""
    text = "\n".join(part or "" for part in (subject, from_name, from_address)).casefold()
    return text.encode()[:SEARCH_TEXT_BYTES].decode(errors="ignore")


def _search_text_default(context):
    row = context.get_current_parameters()
    return search_text(row.get("subject"), row.get("from_name"), row.get("from_address"))


class Email(AccountOwned, db.Model):
    """One message seen in a folder of a mailbox (обращение): its headers and whether it counts.

    A row is identified by (mailbox, folder, UIDVALIDITY, UID), which is what makes a
    sync safe to repeat. `fingerprint` (the Message-ID, or a digest of Date, From, To
    and Subject) finds the row again when the server renumbers a folder.
    """

    __table_args__ = (
        UniqueConstraint("mailbox_id", "folder", "uidvalidity", "uid"),
        Index("ix_email_mailbox_id_fingerprint", "mailbox_id", "fingerprint"),
        Index("ix_email_mailbox_id_internaldate", "mailbox_id", "internaldate"),
        # The repeat rule reads the emails of one sender/recipient pair; an email's page
        # seeks the pair's last counted email before it.
        Index("ix_email_mailbox_id_pair", "mailbox_id", "from_address", "recipient",
              "internaldate"),
        # The emails report: newest first, keyset-paginated on (internaldate, id), and the
        # filters it narrows most often.
        # search_text is in it so that a search that matches little reads the index, not
        # every row (1M emails: about 0.15 s instead of 2 s on SQLite).
        Index("ix_email_account_time", "account_id", "internaldate", "id", "search_text"),
        Index("ix_email_account_channel_time", "account_id", "channel", "internaldate"),
        Index("ix_email_account_utm_source_time", "account_id", "utm_source", "internaldate"),
        Index("ix_email_site_time", "site_id", "internaldate"),
        # Threads (a reply's parent by Message-ID) and the count-once safety net (the
        # same Message-ID and INTERNALDATE stored twice in an account).
        Index("ix_email_account_message_id", "account_id", "message_id", "internaldate"),
        # The replies stored before the email they answer (tracker.attribution links them
        # when it arrives).
        Index("ix_email_account_in_reply_to", "account_id", "in_reply_to"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed by the composite indexes above, which all start with it.
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailbox.id", ondelete="CASCADE"), nullable=False
    )
    folder: Mapped[str] = mapped_column(String(500), nullable=False)
    # 32-bit unsigned on the wire: too large for a signed INTEGER on PostgreSQL.
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    message_id: Mapped[str | None] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(500), nullable=False)
    # When the server received the message (naive UTC): the email's time everywhere.
    internaldate: Mapped[datetime] = mapped_column(nullable=False)
    date_header: Mapped[datetime | None]
    from_address: Mapped[str | None] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(200), default="", nullable=False)
    # Canonical addresses from Delivered-To, X-Original-To, To and Cc, in that order.
    recipients: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    # Every recipient with the header it came from, in header order: [[header, address], ...]
    # (None for emails stored before this was kept).
    recipient_fields: Mapped[list | None] = mapped_column(JSON)
    # The address it was delivered to, as best the headers tell: for repeats and reports.
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(1000), default="", nullable=False)
    # search_text() of the row, filled on insert: one case-folded column for free-text
    # search, read from the report index (no function call per row, no row read).
    search_text: Mapped[str] = mapped_column(String(SEARCH_TEXT_BYTES),
                                             default=_search_text_default, server_default="",
                                             nullable=False)
    size: Mapped[int | None] = mapped_column(BigInteger)
    # A new request (True) or a repeat within the mailbox's repeat period (False).
    counted: Mapped[bool] = mapped_column(default=True, nullable=False)
    # Attribution (tracker.attribution): the rule and visit behind the tracked recipient,
    # and a snapshot of the visit's source, kept even if the visit is deleted later.
    # No rule: "not tracked".
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("rule.id", ondelete="SET NULL"), index=True
    )
    visit_id: Mapped[int | None] = mapped_column(
        ForeignKey("visit.id", ondelete="SET NULL"), index=True
    )
    tracked_address: Mapped[str | None] = mapped_column(String(320))
    attribution: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[dict | None] = mapped_column(JSON)
    # Copied from the attribution for the report's filters: the channel and utm_source of
    # the source, and the site of the visit (or the one site a static rule serves).
    channel: Mapped[str | None] = mapped_column(String(32))
    utm_source: Mapped[str | None] = mapped_column(String(200))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("site.id", ondelete="SET NULL"))
    # Why the attribution is a guess rather than a match, None when it matches:
    # "lease_ended" (the pool address had been leased to this visit, but the lease had
    # ended when the email arrived) or BOT_VISIT. tracker.attribution sets it.
    uncertain: Mapped[str | None] = mapped_column(String(32))
    # The thread (tracker.mailparse): the Message-ID this email answers (In-Reply-To) and
    # the References ids, oldest first, at most 20.
    in_reply_to: Mapped[str | None] = mapped_column(String(500))
    reference_ids: Mapped[list | None] = mapped_column(JSON)
    # The earlier stored email of the account whose thread this one continues: it is a
    # repeat, and without a tracked recipient of its own it took that email's attribution.
    thread_of: Mapped[int | None] = mapped_column(
        ForeignKey("email.id", ondelete="SET NULL"), index=True
    )

    @property
    def tracked(self):
        return self.rule_id is not None or self.attribution is not None


class SyncRun(db.Model):
    """One sync of a mailbox: when, how long, how many new emails, and what went wrong."""

    __table_args__ = (Index("ix_sync_run_mailbox_id_started_at", "mailbox_id", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed by the composite indexes above, which all start with it.
    mailbox_id: Mapped[int] = mapped_column(
        ForeignKey("mailbox.id", ondelete="CASCADE"), nullable=False
    )
    # "schedule" (rq cron) or "manual" (Sync now).
    trigger: Mapped[str] = mapped_column(String(16), default="schedule", nullable=False)
    started_at: Mapped[datetime] = mapped_column(nullable=False)
    finished_at: Mapped[datetime | None]
    new_emails: Mapped[int] = mapped_column(default=0, nullable=False)
    # "running", "ok", or a tracker.imap failure code.
    status: Mapped[str] = mapped_column(String(32), default="running", nullable=False)
    status_params: Mapped[dict | None] = mapped_column(JSON)
    # The server's own words, when it gave any (shown as they are, never translated).
    error: Mapped[str | None] = mapped_column(String(1000))
    # IMAP commands sent after LOGIN (LOGOUT excluded).
    commands: Mapped[int | None]
    # Events worth telling the user, e.g. a folder renumbered by the server: [{code, ...}].
    events: Mapped[list | None] = mapped_column(JSON)

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None

    @property
    def message(self):
        """The outcome in plain words, in the reader's language (None when all went well)."""
        if self.status in ("ok", "running"):
            return None
        return describe(self.status, self.status_params)
