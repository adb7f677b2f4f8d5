"""Attribution: which rule and visit produced an email, from the address it was sent to."""

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import chain

from sqlalchemy import bindparam, or_, select, update

from tracker import counting
from tracker.addresses import canonical_address
from tracker.channels import derive_channel
from tracker.extensions import db
from tracker.models import Assignment, Credential, Email, Mailbox, PoolAddress, Rule, Visit
from tracker.models.emails import BOT_VISIT
from tracker.models.visits import UTM_FIELDS

# A pool address no longer leased still points at its last holder for this long.
ATTRIBUTION_WINDOW = timedelta(days=7)
# INTERNALDATE is whole seconds, a lease's start has milliseconds: an email stamped
# 12:00:10 may have arrived at 12:00:10.9, after a lease that began at 12:00:10.4.
INTERNALDATE_PRECISION = timedelta(seconds=1)


@dataclass
class Attribution:
    """The outcome for one email: tracked or not, and by what."""

    address: str | None = None  # the tracked recipient that decided it
    rule_id: int | None = None
    visit_id: int | None = None
    kind: str | None = None  # static, subaddress, catchall, pool, fallback
    source: dict = field(default_factory=dict)
    site_id: int | None = None  # the visit's site, or the one site a rule without a visit serves
    # Why the visit is a guess, or None when the evidence matches: "lease_ended" (the
    # pool address had been leased to this visit, but the lease had ended) or
    # "bot_visit" (the address was given to a visit recognised as a bot: suspected
    # spam, never a new request; see BOT_VISIT).
    uncertain: str | None = None

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
        self.tokens, self.pools, self.static, self.bot_visits = {}, {}, {}, set()
        owners, rules = {}, {}
        for start in range(0, len(addresses), 500):
            chunk = addresses[start:start + 500]
            for assignment in db.session.scalars(
                select(Assignment).where(Assignment.account_id == account_id,
                                         Assignment.address.in_(chunk),
                                         Assignment.token.is_not(None))
                .order_by(Assignment.id)
            ):
                self.tokens.setdefault(assignment.address, assignment)
            for address, rule_id, active, priority in db.session.execute(
                select(PoolAddress.address, Rule.id, Rule.active, Rule.priority)
                .join(Rule, Rule.id == PoolAddress.rule_id)
                .where(PoolAddress.account_id == account_id, PoolAddress.address.in_(chunk))
            ):
                owners.setdefault(address, []).append(((not active, priority, rule_id), "pool",
                                                       rule_id))
            for rule in db.session.scalars(
                select(Rule).where(Rule.account_id == account_id,
                                   or_(Rule.static_address.in_(chunk),
                                       Rule.fallback_address.in_(chunk)))
            ):
                rules[rule.id] = rule
                order = (not rule.active, rule.priority, rule.id)
                if rule.static_address in chunk:
                    owners.setdefault(rule.static_address, []).append((order, "static", rule.id))
                if rule.fallback_address in chunk and rule.fallback_address != rule.static_address:
                    owners.setdefault(rule.fallback_address, []).append(
                        (order, "fallback", rule.id))
        # Token holders that are bots: their tokens are the weakest evidence.
        visit_ids = sorted({a.visit_id for a in self.tokens.values()})
        for start in range(0, len(visit_ids), 500):
            self.bot_visits.update(db.session.scalars(
                select(Visit.id).where(Visit.id.in_(visit_ids[start:start + 500]),
                                       Visit.is_bot.is_(True))))
        # An address several rules use belongs to one of them, as the rule form's
        # warning says (tracker.rules.shared_addresses): the first active rule in
        # priority order, else the first inactive one.
        for address, candidates in owners.items():
            _order, kind, rule_id = min(candidates)
            if kind == "pool":
                self.pools[address] = rule_id
            else:
                self.static[address] = (rules[rule_id], kind)
        # Rules ordered as rules are; in Python, the first that makes the address its own.
        self.dynamic = db.session.scalars(
            select(Rule).where(Rule.account_id == account_id,
                               or_(Rule.base_address.is_not(None),
                                   Rule.catchall_domain.is_not(None)))
            .order_by(Rule.priority, Rule.id)
        ).all()

    def pool_holder(self, address, at, window):
        """(assignment, uncertain) of the visit that held a pool address at `at`.

        When no lease covers `at`: the last holder before it, within window, with
        uncertain "lease_ended"; (None, None) when nobody held it then.
        """
        account_id = self.account_id
        began_by = at + INTERNALDATE_PRECISION
        holding = db.session.scalar(
            select(Assignment).where(
                Assignment.account_id == account_id,
                Assignment.address == address,
                Assignment.kind == "pool",
                Assignment.assigned_at < began_by,
                or_(Assignment.expires_at.is_(None), Assignment.expires_at >= at),
            ).order_by(Assignment.assigned_at.desc()).limit(1)
        )
        if holding is not None:
            return holding, None
        last = db.session.scalar(
            select(Assignment).where(
                Assignment.account_id == account_id,
                Assignment.address == address,
                Assignment.kind == "pool",
                Assignment.assigned_at < began_by,
                Assignment.assigned_at >= at - window,
            ).order_by(Assignment.assigned_at.desc()).limit(1)
        )
        return (last, "lease_ended") if last is not None else (None, None)

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


def _from_assignment(assignment, address, uncertain=None):
    visit = db.session.get(Visit, assignment.visit_id)
    return Attribution(
        address=address, rule_id=assignment.rule_id, visit_id=assignment.visit_id,
        kind=assignment.kind, source=visit.source() if visit else {},
        site_id=visit.site_id if visit else assignment.site_id, uncertain=uncertain,
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


def attribute(account_id, recipients, at, window=ATTRIBUTION_WINDOW, lookup=None,
              own_address=None):
    """Attribute an email sent at `at` (naive UTC) to its recipients' rule and visit.

    The recipient that identifies a visit best decides, whatever the header order:
    a token with a known assignment (sub-address, catch-all), then a pool address,
    then a static address, then a fallback address, then a token-shaped address
    without a known visit, then a token given to a bot's visit (marked BOT_VISIT).
    Within a tier, header order. `own_address`, the mailbox's
    own address (its login), counts only when no other recipient is tracked: a
    mailbox whose address is also a rule's static or fallback address receives
    its aliases' mail too. An email to no tracked address is "not tracked" (an
    empty Attribution). `lookup`: a Lookup covering these recipients
    (attribute_emails shares one per batch).
    """
    addresses = _canonical(recipients)
    if lookup is None:
        lookup = Lookup(account_id, addresses)
    return _attribute(addresses, at, window, lookup, canonical_address(own_address or ""))


def _canonical(recipients):
    return [a for a in map(canonical_address, recipients or ()) if a]


# Tiers of evidence, best first.
_TOKEN, _POOL, _STATIC, _FALLBACK, _UNKNOWN_TOKEN, _BOT_TOKEN = range(6)


def _tier(address, lookup):
    """(tier, what) for a tracked address, or None: what the tier's attribution needs."""
    assignment = lookup.tokens.get(address)
    if assignment is not None:
        return (_BOT_TOKEN if assignment.visit_id in lookup.bot_visits else _TOKEN), assignment
    if address in lookup.pools:
        return _POOL, lookup.pools[address]
    owner = lookup.static.get(address)
    if owner is not None:
        rule, kind = owner
        return (_STATIC if kind == "static" else _FALLBACK), rule
    rule = lookup.dynamic_rule(address)
    if rule is not None:
        return _UNKNOWN_TOKEN, rule
    return None


def _attribute(addresses, at, window, lookup, own_address=None):
    """attribute() for recipients already in canonical form."""
    best = None
    own = None
    for position, address in enumerate(dict.fromkeys(addresses)):
        found = _tier(address, lookup)
        if found is None:
            continue
        candidate = (found[0], position, address, found[1])
        if own_address and address == own_address:
            own = candidate
        elif best is None or candidate[:2] < best[:2]:
            best = candidate
    best = best or own
    if best is None:
        return Attribution()
    tier, _position, address, what = best
    if tier in (_TOKEN, _BOT_TOKEN):
        return _from_assignment(what, address, BOT_VISIT if tier == _BOT_TOKEN else None)
    if tier == _POOL:
        holder, uncertain = lookup.pool_holder(address, at, window)
        if holder is not None:
            return _from_assignment(holder, address, uncertain)
        return _from_rule(db.session.get(Rule, what), address, "pool")
    if tier in (_STATIC, _FALLBACK):
        return _from_rule(what, address, "static" if tier == _STATIC else "fallback")
    # A token we never issued (or a typo): the rule is known, the visit is not.
    return _from_rule(what, address, what.dynamic_mode)


_EMAILS = Email.__table__
_SET_ATTRIBUTION = update(_EMAILS).where(_EMAILS.c.id == bindparam("email_id")).values(
    rule_id=bindparam("rule_id"), visit_id=bindparam("visit_id"),
    tracked_address=bindparam("tracked_address"), attribution=bindparam("kind"),
    source=bindparam("source"), channel=bindparam("channel"), utm_source=bindparam("utm_source"),
    site_id=bindparam("site_id"), uncertain=bindparam("uncertain"))


_SET_THREAD = update(_EMAILS).where(_EMAILS.c.id == bindparam("email_id")).values(
    thread_of=bindparam("thread_of"))
# What a thread reply copies from the email it answers.
_COPIED = ("rule_id", "visit_id", "tracked_address", "kind", "source", "channel", "utm_source",
           "site_id", "uncertain")
MESSAGE_IDS_PER_QUERY = 500


def _update(email_id, result):
    return {"email_id": email_id, "rule_id": result.rule_id, "visit_id": result.visit_id,
            "tracked_address": result.address, "kind": result.kind,
            "source": result.source or None,
            "channel": result.source.get("channel") or None,
            "utm_source": (result.source.get("utm_source") or "")[:200] or None,
            "site_id": result.site_id, "uncertain": result.uncertain}


def thread_ids(in_reply_to, references):
    """The Message-IDs an email's thread headers name, the nearest first."""
    ids = [in_reply_to] if in_reply_to else []
    ids += reversed(references or [])
    return list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))


def _thread_candidates(account_id, message_ids):
    """Stored emails of the account with these Message-IDs, by Message-ID."""
    message_ids = sorted(set(message_ids))
    found = {}
    for start in range(0, len(message_ids), MESSAGE_IDS_PER_QUERY):
        for row in db.session.execute(
            select(_EMAILS.c.id, _EMAILS.c.message_id, _EMAILS.c.internaldate,
                   _EMAILS.c.mailbox_id, _EMAILS.c.folder, _EMAILS.c.uid,
                   _EMAILS.c.rule_id, _EMAILS.c.visit_id, _EMAILS.c.tracked_address,
                   _EMAILS.c.attribution.label("kind"), _EMAILS.c.source, _EMAILS.c.channel,
                   _EMAILS.c.utm_source, _EMAILS.c.site_id, _EMAILS.c.uncertain)
            .where(_EMAILS.c.account_id == account_id,
                   _EMAILS.c.message_id.in_(message_ids[start:start + MESSAGE_IDS_PER_QUERY]))
        ):
            found.setdefault(row.message_id, []).append(row)
    for rows in found.values():
        rows.sort(key=lambda r: (r.internaldate, r.mailbox_id, r.folder, r.uid))
    return found


def _thread_parent(email, candidates, attributed):
    """(parent id, its attribution fields or None) of the email's thread, or None.

    The parent is a stored email that arrived before this one (or at the same second
    and was stored first) whose Message-ID the email's In-Reply-To or References
    names: the nearest tracked one, else the nearest one.
    """
    first = None
    for message_id in thread_ids(email.in_reply_to, email.reference_ids):
        if message_id == email.message_id:
            continue
        for row in candidates.get(message_id, ()):
            if row.id == email.id or (row.internaldate, row.id) >= (email.internaldate, email.id):
                continue
            fields = attributed.get(row.id)
            if fields is None and (row.rule_id is not None or row.kind is not None):
                fields = {name: getattr(row, name) for name in _COPIED}
            if fields is not None and fields.get("tracked_address") is not None:
                return row.id, fields
            if first is None:
                first = (row.id, None)
    return first


def attribute_emails(email_ids, mailbox_address=None, follow=True):
    """Attribute freshly stored emails (called inside the sync's batch transaction).

    mailbox_address: the own address of the mailbox the emails are in (its login),
    which decides only when no other recipient is tracked; looked up per mailbox
    when None. Only emails to a tracked address are updated: the others keep their
    empty fields.

    Threads: an email whose In-Reply-To or References names an earlier stored email
    of the account (this batch included) continues its thread: `thread_of` points at
    that email and the email is a repeat (its pair is recounted here). Without a
    tracked recipient of its own (a reply to the mailbox's plain address) it takes
    that email's attribution, which comes before the mailbox's own address.

    A reply stored before the email it answers (the answered email was in a folder
    synced later, or older than the first sync's window and stored afterwards) is
    linked when that email arrives: the stored emails whose In-Reply-To names one of
    these emails are attributed again (follow; not again for theirs).

    Suspected spam: an email attributed to a bot's visit (BOT_VISIT) is not a new
    request either; its pair is recounted here too.
    """
    rows = db.session.execute(
        select(_EMAILS.c.id, _EMAILS.c.account_id, _EMAILS.c.mailbox_id, _EMAILS.c.recipients,
               _EMAILS.c.internaldate, _EMAILS.c.message_id, _EMAILS.c.in_reply_to,
               _EMAILS.c.reference_ids, _EMAILS.c.from_address, _EMAILS.c.recipient)
        .where(_EMAILS.c.id.in_(email_ids))
    ).all()
    if mailbox_address is None:
        own = dict(db.session.execute(
            select(Mailbox.id, Credential.login)
            .join(Credential, Credential.id == Mailbox.credential_id)
            .where(Mailbox.id.in_({row.mailbox_id for row in rows}))
        ).all())
    else:
        own = {row.mailbox_id: mailbox_address for row in rows}
    own = {mailbox_id: canonical_address(login or "") for mailbox_id, login in own.items()}
    by_account = {}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row)
    updates, threads, recount = [], [], set()
    for account_id, emails in by_account.items():
        recipients = {email.id: _canonical(email.recipients) for email in emails}
        lookup = Lookup(account_id, chain.from_iterable(recipients.values()))
        candidates = _thread_candidates(account_id, chain.from_iterable(
            thread_ids(e.in_reply_to, e.reference_ids) for e in emails))
        attributed = {}  # email id -> the attribution fields it gets in this batch
        # Oldest first: a parent in this batch is attributed before its replies.
        for email in sorted(emails, key=lambda e: (e.internaldate, e.id)):
            own_address = own.get(email.mailbox_id)
            result = _attribute(recipients[email.id], email.internaldate, ATTRIBUTION_WINDOW,
                                lookup, own_address)
            fields = _update(email.id, result) if result.address is not None else None
            parent = _thread_parent(email, candidates, attributed) if candidates else None
            if parent is not None:
                parent_id, parent_fields = parent
                threads.append({"email_id": email.id, "thread_of": parent_id})
                recount.add((email.mailbox_id, email.from_address, email.recipient))
                by_own = result.address is not None and result.address == own_address
                if parent_fields is not None and (result.address is None or by_own):
                    fields = {"email_id": email.id,
                              **{name: parent_fields[name] for name in _COPIED}}
            if fields is not None:
                attributed[email.id] = {name: fields[name] for name in _COPIED}
                updates.append(fields)
                if fields["uncertain"] == BOT_VISIT:
                    recount.add((email.mailbox_id, email.from_address, email.recipient))
    if updates:
        db.session.execute(_SET_ATTRIBUTION, updates)
    if threads:
        db.session.execute(_SET_THREAD, threads)
    if recount:
        _recount(recount)
    if follow:
        replies = _earlier_replies(rows)
        if replies:
            attribute_emails(replies, follow=False)


def _earlier_replies(rows):
    """Ids of stored emails, not among rows, that answer one of rows (by In-Reply-To) and
    are not in a thread yet: replies that were stored before the email they answer."""
    ids = {row.id for row in rows}
    by_account = {}
    for row in rows:
        if row.message_id:
            by_account.setdefault(row.account_id, set()).add(row.message_id)
    found = []
    for account_id, message_ids in by_account.items():
        message_ids = sorted(message_ids)
        for start in range(0, len(message_ids), MESSAGE_IDS_PER_QUERY):
            found += db.session.scalars(
                select(_EMAILS.c.id).where(
                    _EMAILS.c.account_id == account_id,
                    _EMAILS.c.in_reply_to.in_(message_ids[start:start + MESSAGE_IDS_PER_QUERY]),
                    _EMAILS.c.thread_of.is_(None))
            ).all()
    return sorted(set(found) - ids)


def _recount(emails):
    """Recount the pairs of (mailbox id, sender, recipient): emails that just became thread
    replies or suspected spam (BOT_VISIT) are not new requests."""
    pairs = {}
    for mailbox_id, sender, recipient in emails:
        pairs.setdefault(mailbox_id, set()).add((sender, recipient))
    for mailbox_id, mailbox_pairs in sorted(pairs.items()):
        period = db.session.scalar(select(Mailbox.repeat_period_seconds)
                                   .where(Mailbox.id == mailbox_id))
        counting.recount_pairs(mailbox_id, period or 0, mailbox_pairs)


def on_emails_stored(app, mailbox, email_ids):
    """The sync's emails_stored signal: attribute each batch as it is stored."""
    credential = getattr(mailbox, "credential", None)
    attribute_emails(email_ids, mailbox_address=credential.login if credential else None)
