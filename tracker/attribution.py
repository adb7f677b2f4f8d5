"""Attribution: which rule and visit produced an email, from the address it was sent to."""

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain

from sqlalchemy import bindparam, or_, select, update

from tracker.addresses import canonical_address
from tracker.channels import derive_channel
from tracker.extensions import db
from tracker.models import Assignment, Email, PoolAddress, Rule, Visit
from tracker.models.visits import UTM_FIELDS

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
    site_id: int | None = None  # the visit's site, or the one site a rule without a visit serves

    @property
    def tracked(self):
        return self.rule_id is not None


class Lookup:
    """What attribution needs to know about a set of recipient addresses of one account.

    A few queries for a whole batch of emails instead of several per email: the
    token assignments, pool addresses and static/fallback rules of these addresses,
    and the account's dynamic rules. Who held a pool address depends on the email's
    time, so that is asked per email (pool addresses are few).
    """

    def __init__(self, account_id, addresses):
        self.account_id = account_id
        addresses = sorted({a for a in addresses if a})
        self.tokens, self.pools, self.static = {}, {}, {}
        for start in range(0, len(addresses), 500):
            chunk = addresses[start:start + 500]
            for assignment in db.session.scalars(
                select(Assignment).where(Assignment.account_id == account_id,
                                         Assignment.address.in_(chunk),
                                         Assignment.token.is_not(None))
                .order_by(Assignment.id)
            ):
                self.tokens.setdefault(assignment.address, assignment)
            self.pools.update(db.session.execute(
                select(PoolAddress.address, PoolAddress.rule_id).where(
                    PoolAddress.account_id == account_id, PoolAddress.address.in_(chunk))
            ).all())
            for rule in db.session.scalars(
                select(Rule).where(Rule.account_id == account_id,
                                   or_(Rule.static_address.in_(chunk),
                                       Rule.fallback_address.in_(chunk)))
                .order_by(Rule.priority, Rule.id)
            ):
                for address in (rule.static_address, rule.fallback_address):
                    if address in chunk:
                        self.static.setdefault(address, rule)
        # Rules ordered as rules are; in Python, the first that makes the address its own.
        self.dynamic = db.session.scalars(
            select(Rule).where(Rule.account_id == account_id,
                               or_(Rule.base_address.is_not(None),
                                   Rule.catchall_domain.is_not(None)))
            .order_by(Rule.priority, Rule.id)
        ).all()

    def pool_holder(self, address, at, window):
        """The visit that held a pool address at `at`, else the last one before, within window."""
        account_id = self.account_id
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

    def dynamic_rule(self, address):
        """The sub-address rule of local+tag@domain, or the catch-all rule of the domain."""
        local, _, domain = address.rpartition("@")
        base = local.split("+", 1)[0] + "@" + domain
        for rule in self.dynamic:
            if rule.dynamic_mode == "subaddress" and "+" in local and rule.base_address == base:
                return rule
            if (rule.dynamic_mode == "catchall" and rule.catchall_domain
                    and canonical_address(f"x@{rule.catchall_domain}") == f"x@{domain}"):
                return rule
        return None


def _from_assignment(assignment, address):
    visit = db.session.get(Visit, assignment.visit_id)
    return Attribution(
        address=address, rule_id=assignment.rule_id, visit_id=assignment.visit_id,
        kind=assignment.kind, source=visit.source() if visit else {},
        site_id=visit.site_id if visit else assignment.site_id,
    )


# Segment fields whose "equals" value names the source of everyone a rule serves.
_SOURCE_FIELDS = (*UTM_FIELDS, "channel")


def rule_source(rule):
    """The source a rule's segment pins down, for emails to an address without a visit.

    A static rule for `utm_source equals google` and `utm_medium equals cpc` was shown
    to paid Google traffic only: {"utm_source": "google", "utm_medium": "cpc",
    "channel": "paid"}. A rule for all visitors tells nothing: {}.
    """
    if rule.match_all:
        return {}
    source = {}
    referrer = None
    for condition in rule.conditions:
        if condition.operator != "equals" or not condition.value:
            continue
        if condition.field in _SOURCE_FIELDS:
            source.setdefault(condition.field, condition.value)
        elif condition.field == "referrer_domain":
            referrer = f"https://{condition.value}/"
    if "channel" not in source and (source.get("utm_source") or source.get("utm_medium")
                                    or referrer):
        source["channel"] = derive_channel(utm_source=source.get("utm_source"),
                                           utm_medium=source.get("utm_medium"),
                                           referrer=referrer)
    return source


def _rule_site(rule):
    """The site of a rule whose blocks are all on one site, else None."""
    sites = {site.id for block in rule.blocks for site in block.sites}
    return sites.pop() if len(sites) == 1 else None


def _from_rule(rule, address, kind):
    return Attribution(address=address, rule_id=rule.id, kind=kind, source=rule_source(rule),
                       site_id=_rule_site(rule))


def attribute(account_id, recipients, at, window=ATTRIBUTION_WINDOW, lookup=None):
    """Attribute an email sent at `at` (naive UTC) to its recipients' rule and visit.

    Each recipient is tried in header order: a dynamic token, then a pool address,
    then a static (or fallback) address; the first tracked one decides. An email to
    no tracked address is "not tracked" (an empty Attribution). `lookup`: a Lookup
    covering these recipients (attribute_emails shares one per batch).
    """
    addresses = _canonical(recipients)
    if lookup is None:
        lookup = Lookup(account_id, addresses)
    return _attribute(addresses, at, window, lookup)


def _canonical(recipients):
    return [a for a in map(canonical_address, recipients or ()) if a]


def _attribute(addresses, at, window, lookup):
    """attribute() for recipients already in canonical form."""
    for address in addresses:
        assignment = lookup.tokens.get(address)
        if assignment is not None:
            return _from_assignment(assignment, address)
        if address in lookup.pools:
            holder = lookup.pool_holder(address, at, window)
            if holder is not None:
                return _from_assignment(holder, address)
            rule = db.session.get(Rule, lookup.pools[address])
            return _from_rule(rule, address, "pool")
        rule = lookup.static.get(address)
        if rule is not None:
            return _from_rule(rule, address,
                              "static" if rule.static_address == address else "fallback")
        rule = lookup.dynamic_rule(address)
        if rule is not None:
            # A token we never issued (or a typo): the rule is known, the visit is not.
            return _from_rule(rule, address, rule.dynamic_mode)
    return Attribution()


_EMAILS = Email.__table__
_SET_ATTRIBUTION = update(_EMAILS).where(_EMAILS.c.id == bindparam("email_id")).values(
    rule_id=bindparam("rule_id"), visit_id=bindparam("visit_id"),
    tracked_address=bindparam("tracked_address"), attribution=bindparam("kind"),
    source=bindparam("source"), channel=bindparam("channel"), utm_source=bindparam("utm_source"),
    site_id=bindparam("site_id"))


def attribute_emails(email_ids):
    """Attribute freshly stored emails (called inside the sync's batch transaction).

    Only emails to a tracked address are updated: the others keep their empty fields.
    """
    rows = db.session.execute(
        select(_EMAILS.c.id, _EMAILS.c.account_id, _EMAILS.c.recipients, _EMAILS.c.internaldate)
        .where(_EMAILS.c.id.in_(email_ids))
    ).all()
    by_account = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row)
    updates = []
    for account_id, emails in by_account.items():
        recipients = {email.id: _canonical(email.recipients) for email in emails}
        lookup = Lookup(account_id, chain.from_iterable(recipients.values()))
        for email in emails:
            result = _attribute(recipients[email.id], email.internaldate, ATTRIBUTION_WINDOW,
                                lookup)
            if result.address is not None:
                updates.append({"email_id": email.id, "rule_id": result.rule_id,
                                "visit_id": result.visit_id, "tracked_address": result.address,
                                "kind": result.kind, "source": result.source or None,
                                "channel": result.source.get("channel") or None,
                                "utm_source": (result.source.get("utm_source") or "")[:200]
                                or None,
                                "site_id": result.site_id})
    if updates:
        db.session.execute(_SET_ATTRIBUTION, updates)


def on_emails_stored(app, mailbox, email_ids):
    """The sync's emails_stored signal: attribute each batch as it is stored."""
    attribute_emails(email_ids)
