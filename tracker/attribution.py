"""Attribution: which rule and visit produced an email, from the address it was sent to."""

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select

from tracker.addresses import canonical_address
from tracker.extensions import db
from tracker.models import Assignment, Email, PoolAddress, Rule, Visit

# A pool address no longer leased still points at its last holder for this long.
ATTRIBUTION_WINDOW = timedelta(days=7)


@dataclass
class Attribution:
    """The outcome for one email: tracked or not, and by what."""

    address: str | None = None  # the tracked recipient that decided it
    rule_id: int | None = None
    visit_id: int | None = None
    kind: str | None = None  # static, subaddress, catchall, pool, fallback
    source: dict = field(default_factory=dict)

    @property
    def tracked(self):
        return self.rule_id is not None


def _token_assignment(account_id, address):
    """A sub-address or catch-all address handed to exactly one visit."""
    return db.session.scalar(
        select(Assignment).where(
            Assignment.account_id == account_id,
            Assignment.address == address,
            Assignment.token.is_not(None),
        ).limit(1)
    )


def _pool_holder(account_id, address, at, window):
    """The visit that held a pool address at `at`, else the last one before, within window."""
    holding = db.session.scalar(
        select(Assignment).where(
            Assignment.account_id == account_id,
            Assignment.address == address,
            Assignment.kind == "pool",
            Assignment.assigned_at <= at,
            or_(Assignment.expires_at.is_(None), Assignment.expires_at >= at),
        ).order_by(Assignment.assigned_at.desc()).limit(1)
    )
    if holding is not None:
        return holding
    return db.session.scalar(
        select(Assignment).where(
            Assignment.account_id == account_id,
            Assignment.address == address,
            Assignment.kind == "pool",
            Assignment.assigned_at <= at,
            Assignment.assigned_at >= at - window,
        ).order_by(Assignment.assigned_at.desc()).limit(1)
    )


def _static_rule(account_id, address):
    """A rule that shows this address to everybody in its segment (static or fallback)."""
    return db.session.scalar(
        select(Rule).where(
            Rule.account_id == account_id,
            or_(Rule.static_address == address, Rule.fallback_address == address),
        ).order_by(Rule.priority, Rule.id).limit(1)
    )


def _is_pool_address(account_id, address):
    return db.session.scalar(
        select(PoolAddress.id).where(PoolAddress.account_id == account_id,
                                     PoolAddress.address == address)
    ) is not None


def _from_assignment(assignment, address):
    visit = db.session.get(Visit, assignment.visit_id)
    return Attribution(
        address=address, rule_id=assignment.rule_id, visit_id=assignment.visit_id,
        kind=assignment.kind, source=visit.source() if visit else {},
    )


def attribute(account_id, recipients, at, window=ATTRIBUTION_WINDOW):
    """Attribute an email sent at `at` (naive UTC) to its recipients' rule and visit.

    Each recipient is tried in header order: a dynamic token, then a pool address,
    then a static (or fallback) address; the first tracked one decides. An email to
    no tracked address is "not tracked" (an empty Attribution).
    """
    for raw in recipients:
        address = canonical_address(raw)
        if not address:
            continue
        assignment = _token_assignment(account_id, address)
        if assignment is not None:
            return _from_assignment(assignment, address)
        if _is_pool_address(account_id, address):
            holder = _pool_holder(account_id, address, at, window)
            if holder is not None:
                return _from_assignment(holder, address)
            pool_rule = db.session.scalar(
                select(PoolAddress.rule_id).where(PoolAddress.account_id == account_id,
                                                  PoolAddress.address == address)
            )
            return Attribution(address=address, rule_id=pool_rule, kind="pool")
        rule = _static_rule(account_id, address)
        if rule is not None:
            kind = "static" if rule.static_address == address else "fallback"
            return Attribution(address=address, rule_id=rule.id, kind=kind)
        rule = _dynamic_rule(account_id, address)
        if rule is not None:
            # A token we never issued (or a typo): the rule is known, the visit is not.
            return Attribution(address=address, rule_id=rule.id, kind=rule.dynamic_mode)
    return Attribution()


def _dynamic_rule(account_id, address):
    """The sub-address rule of local+tag@domain, or the catch-all rule of the domain."""
    local, _, domain = address.rpartition("@")
    base = local.split("+", 1)[0] + "@" + domain
    candidates = db.session.scalars(
        select(Rule).where(
            Rule.account_id == account_id,
            or_(Rule.base_address == base, Rule.catchall_domain.is_not(None)),
        ).order_by(Rule.priority, Rule.id)
    )
    for rule in candidates:
        if rule.dynamic_mode == "subaddress" and "+" in local and rule.base_address == base:
            return rule
        if rule.dynamic_mode == "catchall" and canonical_address(f"x@{rule.catchall_domain}") == f"x@{domain}":
            return rule
    return None


def attribute_emails(email_ids):
    """Attribute freshly stored emails (called inside the sync's batch transaction)."""
    emails = db.session.scalars(select(Email).where(Email.id.in_(email_ids))).all()
    for email in emails:
        result = attribute(email.account_id, email.recipients or [], email.internaldate)
        email.rule_id, email.visit_id = result.rule_id, result.visit_id
        email.tracked_address, email.attribution = result.address, result.kind
        email.source = result.source or None


def on_emails_stored(app, mailbox, email_ids):
    """The sync's emails_stored signal: attribute each batch as it is stored."""
    attribute_emails(email_ids)
