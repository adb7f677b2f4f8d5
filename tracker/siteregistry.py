"""Site keys for the public API, cached in Redis so that bad keys cost no database query.

Each key (known or not) is looked up in the database at most once per TTL across
all processes; the sites views drop a key's entry when the site changes.
"""

import json

from sqlalchemy import select

from tracker.extensions import db, redis_client
from tracker.models import Site

TTL = 60
_PREFIX = "tracker:site:"
_MISSING = "-"


def cache_key(key):
    """The Redis key under which a site key's entry is cached."""
    return _PREFIX + key


def lookup(redis, key):
    """{"id", "account_id", "domains"} for a site key, or None for an unknown key."""
    cached = redis.get(_PREFIX + key)
    if cached is not None:
        cached = cached.decode()
        return None if cached == _MISSING else json.loads(cached)
    site = db.session.scalar(select(Site).where(Site.key == key))
    info = None if site is None else {
        "id": site.id, "account_id": site.account_id, "domains": site.domain_names,
    }
    redis.set(_PREFIX + key, _MISSING if info is None else json.dumps(info), ex=TTL)
    return info


def forget(key):
    """Drop a key's cached entry (after a site's domains, key or existence changed)."""
    redis_client().delete(_PREFIX + key)


def origin_allowed(origin_host, domains):
    """Whether a request's Origin host is one of the site's domains or their subdomains."""
    host = (origin_host or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)
