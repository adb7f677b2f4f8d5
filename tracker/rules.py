"""Rules beyond their form: priority order, and warnings about addresses nobody reads
or that another rule uses too."""

from typing import NamedTuple

from sqlalchemy import String, cast, func, or_, select

from tracker.addresses import address_domain, unreceived
from tracker.domains import display_domain
from tracker.extensions import db
from tracker.models import Credential, Email, Mailbox, PoolAddress, Rule


class AddressWarning(NamedTuple):
    """Addresses of a rule on a domain that no mailbox of the account receives for."""

    domain: str  # for people: Unicode
    addresses: list


def received_domains(account_id, addresses=()):
    """The ASCII domains the account is known to receive mail for.

    A domain counts when a mailbox login of the account is on it, or, for the
    domains of `addresses` (those being asked about), when a stored email of the
    account was delivered to an address on it: a catch-all domain that the
    mailbox login does not name is still received when its emails are synced.
    Each such domain costs one EXISTS query that stops at the first email.
    """
    logins = db.session.scalars(
        select(Credential.login)
        .join(Mailbox, Mailbox.credential_id == Credential.id)
        .where(Mailbox.account_id == account_id)
    )
    domains = {address_domain(login) for login in logins} - {""}
    asked = {address_domain(a) for a in addresses if a} - {""} - domains
    for domain in sorted(asked):
        if _emails_seen_for(account_id, domain):
            domains.add(domain)
    return domains


def _emails_seen_for(account_id, domain):
    """True when a stored email of the account went to an address on `domain` (ASCII)."""
    # Stored addresses have Unicode domains (tracker.addresses.canonical_address):
    # look for both spellings of an IDN domain.
    spellings = {domain, display_domain(domain).lower()}
    matches = []
    for spelling in spellings:
        pattern = "%@" + spelling.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches += [Email.tracked_address.like(pattern, escape="\\"),
                    Email.recipient.like(pattern, escape="\\"),
                    # Every recipient (Cc, Delivered-To...), in the JSON list's text.
                    cast(Email.recipients, String).like(pattern + '"%', escape="\\")]
    found = db.session.scalar(
        select(Email.id).where(Email.account_id == account_id, or_(*matches)).limit(1)
    )
    return found is not None


def address_warnings(account_id, addresses, domains=None):
    """Warnings, one per domain, for the addresses that none of the account's mailboxes receives.

    domains: the received ASCII domains; looked up with received_domains() when None.
    """
    addresses = [a for a in addresses if a]
    if not addresses:
        return []
    if domains is None:
        domains = received_domains(account_id, addresses)
    by_domain = {}
    for address in unreceived(addresses, domains):
        by_domain.setdefault(address_domain(address), []).append(address)
    return [AddressWarning(display_domain(domain), found) for domain, found in by_domain.items()]


class SharedAddress(NamedTuple):
    """An address of a rule that another rule of the account uses too, and who gets its emails.

    Attribution (tracker.attribution.Lookup) credits an address that several rules use
    to the first active one in priority order (then the first inactive one): winner
    is that rule's name, or None when it is the rule being looked at.
    """

    address: str
    other: str  # the other rule's name
    other_id: int
    other_role: str  # what the address is to the other rule: static, pool or fallback
    winner: str | None


def owning_order(active, priority, rule_id):
    """The sort key that decides which rule an address of several rules belongs to."""
    return (not active, priority, rule_id if rule_id is not None else float("inf"))


def rule_addresses(mode, static_address=None, pool=(), fallback_address=None):
    """The whole addresses a rule of this mode shows (not sub-address or catch-all tokens)."""
    if mode == "static":
        return [static_address] if static_address else []
    return [*pool, *([fallback_address] if fallback_address else [])]


def shared_addresses(account_id, addresses, rule_id=None, active=True, priority=None):
    """SharedAddress per use by another rule of one of these addresses (static, pool, fallback).

    rule_id, active, priority: the rule the addresses are for, as the form has it
    (a new rule: no id, and the priority that puts it last).
    """
    wanted = {a.lower(): a for a in addresses if a}
    if not wanted:
        return []
    if priority is None:
        priority = next_priority(account_id)
    others = []  # (address, rule, role)
    for rule in db.session.scalars(
        ordered_rules(account_id).where(
            (func.lower(Rule.static_address).in_(wanted))
            | (func.lower(Rule.fallback_address).in_(wanted)))
    ):
        for role, address in (("static", rule.static_address), ("fallback", rule.fallback_address)):
            if rule.id != rule_id and address and address.lower() in wanted:
                others.append((wanted[address.lower()], rule, role))
    for address, rule in db.session.execute(
        select(PoolAddress.address, Rule).join(Rule, Rule.id == PoolAddress.rule_id)
        .where(PoolAddress.account_id == account_id,
               func.lower(PoolAddress.address).in_(wanted))
        .order_by(Rule.priority, Rule.id)
    ).all():
        if rule.id != rule_id:
            others.append((wanted[address.lower()], rule, "pool"))
    mine = owning_order(active, priority, rule_id)
    found = []
    for address, rule, role in others:
        first = min([(mine, None)] + [(owning_order(r.active, r.priority, r.id), r.name)
                                      for a, r, _ in others if a == address])
        found.append(SharedAddress(address, rule.name, rule.id, role, first[1]))
    return found


def ordered_rules(account_id):
    """select() of the account's rules in priority order."""
    return (
        select(Rule).where(Rule.account_id == account_id).order_by(Rule.priority, Rule.id)
    )


def next_priority(account_id):
    """The priority that puts a new rule last."""
    highest = db.session.scalar(
        select(func.max(Rule.priority)).where(Rule.account_id == account_id)
    )
    return (highest or 0) + 1


def swap_priorities(rule, other):
    """Exchange the places of two rules of one account (not committed).

    The account's rules are first renumbered 1..n, so that rules that share a
    priority value still change places.
    """
    for number, row in enumerate(db.session.scalars(ordered_rules(rule.account_id)), 1):
        row.priority = number
    rule.priority, other.priority = other.priority, rule.priority
