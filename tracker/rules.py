"""Rules beyond their form: priority order, and warnings about addresses nobody reads."""

from typing import NamedTuple

from sqlalchemy import func, select

from tracker.addresses import address_domain, unreceived
from tracker.domains import display_domain
from tracker.extensions import db
from tracker.models import Credential, Mailbox, Rule


class AddressWarning(NamedTuple):
    """Addresses of a rule on a domain that no mailbox of the account receives for."""

    domain: str  # for people: Unicode
    addresses: list


def received_domains(account_id):
    """The ASCII domains of the account's mailbox logins: mail to them can be read."""
    logins = db.session.scalars(
        select(Credential.login)
        .join(Mailbox, Mailbox.credential_id == Credential.id)
        .where(Mailbox.account_id == account_id)
    )
    return {address_domain(login) for login in logins} - {""}


def address_warnings(account_id, addresses, domains=None):
    """Warnings, one per domain, for the addresses that none of the account's mailboxes receives.

    domains: the received ASCII domains; looked up with received_domains() when None.
    """
    addresses = [a for a in addresses if a]
    if not addresses:
        return []
    if domains is None:
        domains = received_domains(account_id)
    by_domain = {}
    for address in unreceived(addresses, domains):
        by_domain.setdefault(address_domain(address), []).append(address)
    return [AddressWarning(display_domain(domain), found) for domain, found in by_domain.items()]


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
