"""Factories for model rows, so tests say what matters and nothing else."""

import itertools

from tracker.extensions import db
from tracker.models import Account, Site, SiteDomain, User

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
