"""Why an email counted or not, and why it has its source: the evidence behind the report.

The verdicts themselves were made by tracker.counting and tracker.attribution when
the email was stored; this module finds the rows they rested on (the previous
counted email of the pair, the assignment or lease, the rule) so the email's page
can say it in words.
"""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from tracker.attribution import ATTRIBUTION_WINDOW, INTERNALDATE_PRECISION, rule_source
from tracker.extensions import db
from tracker.models import Assignment, Email, Mailbox, Rule, Visit
from tracker.models.emails import BOT_VISIT


@dataclass
class Counting:
    """Why the email is a new request or a repeat.

    reason: no_sender, no_period, first, period_passed, repeat, thread (a reply in
    the thread of an earlier email), copy (the same message is stored before) or spam
    (sent to an address given to a bot's visit).
    """

    reason: str
    period: timedelta
    previous: Email | None = None  # the last counted email of the pair before this one
    since: timedelta | None = None  # how long before this email it arrived
    # thread: the earlier email it answers; copy: the first stored copy of the message.
    earlier: Email | None = None


@dataclass
class Source:
    """How the email got its rule and visit.

    reason: untracked, token, token_unknown, pool_held, pool_ended, pool_nobody,
    static, fallback.
    """

    reason: str
    rule: Rule | None = None
    visit: Visit | None = None
    assignment: Assignment | None = None
    # pool_ended: how long after the lease ended the email arrived.
    late_by: timedelta | None = None
    window: timedelta = ATTRIBUTION_WINDOW
    # static and fallback: the source the rule's segment pins down.
    pinned: dict = field(default_factory=dict)
    # The mark attribution stored (Email.uncertain), e.g. "lease_ended"; None when none.
    uncertain: str | None = None
    # A thread reply without a tracked recipient of its own: the earlier email of the
    # thread whose attribution it took.
    thread: Email | None = None

    @property
    def weak(self):
        """True when the evidence is a guess rather than a match."""
        return self.uncertain is not None or self.reason in ("pool_ended", "token_unknown")


@dataclass
class Explanation:
    recipients: list  # [(header or None, address, is the tracked one)]
    counting: Counting
    source: Source


def explain(email):
    """The evidence for an email's counting and attribution (rows of its own account)."""
    return Explanation(_recipients(email), _counting(email), _source(email))


def _recipients(email):
    pairs = email.recipient_fields or [[None, address] for address in email.recipients or []]
    return [(header, address, address == email.tracked_address) for header, address in pairs]


def _counting(email):
    mailbox = db.session.get(Mailbox, email.mailbox_id)
    period = timedelta(seconds=mailbox.repeat_period_seconds if mailbox else 0)
    if email.uncertain == BOT_VISIT and not email.counted:
        return Counting("spam", period)
    if not email.from_address:
        return Counting("no_sender", period)
    previous = db.session.scalar(
        select(Email).where(
            Email.mailbox_id == email.mailbox_id, Email.from_address == email.from_address,
            Email.recipient == email.recipient if email.recipient else Email.recipient.is_(None),
            Email.counted.is_(True), Email.id != email.id,
            Email.internaldate <= email.internaldate,
        ).order_by(Email.internaldate.desc(), Email.id.desc()).limit(1)
    )
    since = email.internaldate - previous.internaldate if previous else None
    if not email.counted:
        parent = _owned(Email, email.thread_of, email.account_id)
        if parent is not None:
            return Counting("thread", period, previous, since, earlier=parent)
        first = _first_copy(email)
        if first is not None:
            return Counting("copy", period, previous, since, earlier=first)
        return Counting("repeat", period, previous, since)
    if not period:
        return Counting("no_period", period, previous, since)
    if previous is None:
        return Counting("first", period)
    return Counting("period_passed", period, previous, since)


def _first_copy(email):
    """The account's first copy of this message (same Message-ID and INTERNALDATE) by
    (mailbox, folder, UID) when it is not this email, else None: tracker.repeats."""
    if not email.message_id:
        return None
    copies = db.session.scalars(
        select(Email).where(Email.account_id == email.account_id,
                            Email.message_id == email.message_id,
                            Email.internaldate == email.internaldate)
    ).all()
    first = min(copies, key=lambda e: ((e.mailbox_id, e.folder, e.uid), str(e.id)))
    return first if first.id != email.id else None


def _owned(model, row_id, account_id):
    if row_id is None:
        return None
    row = db.session.get(model, row_id)
    return row if row is not None and row.account_id == account_id else None


def _source(email):
    source = _own_source(email)
    if email.thread_of is not None and email.attribution is not None \
            and email.tracked_address not in (email.recipients or []):
        source.thread = _owned(Email, email.thread_of, email.account_id)
    return source


def _own_source(email):
    if email.attribution is None:
        return Source("untracked")
    rule = _owned(Rule, email.rule_id, email.account_id)
    visit = _owned(Visit, email.visit_id, email.account_id)
    kind = email.attribution
    if kind in ("static", "fallback"):
        return Source(kind, rule=rule, pinned=rule_source(rule) if rule else {},
                      uncertain=email.uncertain)
    if kind in ("subaddress", "catchall"):
        if visit is None:
            return Source("token_unknown", rule=rule, uncertain=email.uncertain)
        assignment = _assignment(email, visit, token=True)
        return Source("token", rule=rule, visit=visit, assignment=assignment,
                      uncertain=email.uncertain)
    if visit is None:
        return Source("pool_nobody", rule=rule, uncertain=email.uncertain)
    assignment = _assignment(email, visit, token=False)
    ends = assignment.expires_at if assignment else None
    late_by = email.internaldate - ends if ends is not None and email.internaldate > ends \
        else None
    # The stored mark decides where attribution left one; emails attributed before
    # the mark existed are judged from the lease.
    if email.uncertain == "lease_ended" or (email.uncertain is None and late_by is not None):
        return Source("pool_ended", rule=rule, visit=visit, assignment=assignment,
                      late_by=late_by, uncertain=email.uncertain or "lease_ended")
    return Source("pool_held", rule=rule, visit=visit, assignment=assignment,
                  uncertain=email.uncertain)


def _assignment(email, visit, token):
    """The assignment of the tracked address to the visit that the attribution rested on."""
    query = select(Assignment).where(Assignment.account_id == email.account_id,
                                     Assignment.visit_id == visit.id,
                                     Assignment.address == email.tracked_address)
    if token:
        return db.session.scalar(query.where(Assignment.token.is_not(None))
                                 .order_by(Assignment.id).limit(1))
    # The lease that began last before the email arrived.
    return db.session.scalar(query.where(Assignment.kind == "pool",
                                         Assignment.assigned_at
                                         < email.internaldate + INTERNALDATE_PRECISION)
                             .order_by(Assignment.assigned_at.desc()).limit(1))
