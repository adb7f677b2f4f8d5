"""Factories for model rows, so tests say what matters and nothing else."""

import itertools

from tracker.extensions import db
from tracker.models import (
    Account,
    Credential,
    Email,
    Mailbox,
    MailboxFolder,
    Site,
    SiteDomain,
    User,
    utcnow,
)

_seq = itertools.count(1)
# Hashing is slow on purpose; tests hash each password once.
_hashes = {}


class Factory:
    """Creates committed rows; call inside an app context."""

    def __init__(self, password):
        self.password = password

    def account(self, name=None):
        account = Account(name=name or f"Account {next(_seq)}")
        db.session.add(account)
        db.session.commit()
        return account

    def user(self, account=None, email=None, password=None, locale=None):
        account = account or self.account()
        user = User(account=account, email=email or f"user{next(_seq)}@example.com", locale=locale)
        password = password or self.password
        if password not in _hashes:
            user.set_password(password)
            _hashes[password] = user.password_hash
        user.password_hash = _hashes[password]
        db.session.add(user)
        db.session.commit()
        return user

    def site(self, account, name=None, domains=None):
        n = next(_seq)
        site = Site(account_id=account.id, name=name or f"Site {n}")
        for position, domain in enumerate(domains or [f"site{n}.example.com"]):
            site.domains.append(SiteDomain(domain=domain, position=position, account_id=account.id))
        db.session.add(site)
        db.session.commit()
        return site

    def credential(self, account, login=None, password="imap-secret", host="imap.example.com",
                   port=993, security="ssl", service="other", name=None):
        n = next(_seq)
        credential = Credential(
            account_id=account.id, name=name or f"Mail account {n}", service=service,
            host=host, port=port, security=security, login=login or f"box{n}@example.com",
        )
        credential.password = password
        db.session.add(credential)
        db.session.commit()
        return credential

    def mailbox(self, account, credential=None, folders=("INBOX",), active=True, **fields):
        credential = credential or self.credential(account)
        mailbox = Mailbox(account_id=account.id, credential=credential, active=active, **fields)
        for position, name in enumerate(folders):
            mailbox.folders.append(MailboxFolder(name=name, position=position))
        db.session.add(mailbox)
        db.session.commit()
        return mailbox

    def block(self, account, name=None, sites=None, addresses=None, selector=None):
        """A "find in code" block (or an element block when selector is given)."""
        from tracker.models import Block, BlockAddress

        block = Block(account_id=account.id, name=name or f"Block {next(_seq)}",
                      placement="element" if selector else "code")
        block.sites = list(sites) if sites is not None else [self.site(account)]
        if selector:
            block.attribute_kind, block.attribute_value = "id", selector.lstrip("#")
            block.selector = selector
        else:
            for position, address in enumerate(addresses or ["info@shop.example"]):
                block.addresses.append(
                    BlockAddress(address=address, position=position, account_id=account.id)
                )
        db.session.add(block)
        db.session.commit()
        return block

    def rule(self, account, name=None, blocks=None, conditions=(), active=True, priority=None,
             address=None, mode="static", pool=(), **fields):
        """A rule for all visitors (or the given (field, operator, value) conditions)."""
        from tracker.models import PoolAddress, Rule, RuleCondition
        from tracker.rules import next_priority

        blocks = list(blocks) if blocks is not None else [self.block(account)]
        rule = Rule(
            account_id=account.id, name=name or f"Rule {next(_seq)}", active=active,
            priority=next_priority(account.id) if priority is None else priority,
            match_all=not conditions, kind="static" if mode == "static" else "dynamic",
            dynamic_mode=None if mode == "static" else mode, **fields,
        )
        if mode == "static":
            rule.static_address = address or f"rule{next(_seq)}@shop.example"
        rule.blocks = blocks
        for position, (field, operator, value) in enumerate(conditions):
            rule.conditions.append(RuleCondition(account_id=account.id, position=position,
                                                 field=field, operator=operator, value=value))
        for position, pool_address in enumerate(pool):
            rule.pool_addresses.append(PoolAddress(account_id=account.id, position=position,
                                                   address=pool_address))
        db.session.add(rule)
        db.session.commit()
        return rule

    def visit(self, site, at=None, visitor=None, **fields):
        """A stored visit of a site (as the page-view writer would store it)."""
        from tracker.models import Visit

        n = next(_seq)
        at = at or utcnow()
        visit = Visit(account_id=site.account_id, site_id=site.id,
                      visitor_id=visitor or f"visitor-{n:06d}", client_visit_id=f"visit-{n:06d}",
                      started_at=at, last_seen_at=fields.pop("last_seen_at", at), **fields)
        db.session.add(visit)
        db.session.commit()
        return visit

    def assignment(self, visit, rule, address, kind=None, at=None, expires_at=None, token=None,
                   pool_address=None):
        """An address given to a visit by a rule (a lease when pool_address is given)."""
        from tracker.models import Assignment

        assignment = Assignment(
            account_id=visit.account_id, site_id=visit.site_id, visit_id=visit.id,
            rule_id=rule.id, kind=kind or rule.mode, address=address, token=token,
            pool_address_id=pool_address.id if pool_address else None,
            assigned_at=at or visit.started_at, expires_at=expires_at)
        db.session.add(assignment)
        db.session.commit()
        return assignment

    def email(self, mailbox, at=None, sender="lead@example.org", recipient="info@shop.example",
              folder="INBOX", uidvalidity=1, uid=None, commit=True, **fields):
        """A stored email of a mailbox (as a sync would store it)."""
        n = next(_seq)
        email = Email(
            account_id=mailbox.account_id, mailbox_id=mailbox.id, folder=folder,
            uidvalidity=uidvalidity, uid=uid or n, fingerprint=fields.pop("fingerprint", f"<{n}@x>"),
            internaldate=at or utcnow(), from_address=sender, recipient=recipient,
            recipients=[recipient] if recipient else [], **fields,
        )
        db.session.add(email)
        if commit:
            db.session.commit()
        return email
