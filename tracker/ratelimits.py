"""Fixed-window rate limits on counters in Redis, with the `limits` library.

Settings are strings such as "5 per 15 minutes" (several with ";"). The public
API counts its limits inside its own Redis scripts instead (tracker.visitstate),
to spend no extra round trip on them.
"""

from flask import current_app
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter


def _limiter():
    extensions = current_app.extensions
    if "tracker.limiter" not in extensions:
        storage = storage_from_string(current_app.config["REDIS_URL"])
        extensions["tracker.limiter"] = FixedWindowRateLimiter(storage)
    return extensions["tracker.limiter"]


def used_up(setting, *identifiers):
    """The first limit of a setting that `identifiers` have used up, or None."""
    limiter = _limiter()
    for item in parse_many(current_app.config[setting]):
        if not limiter.test(item, setting, *identifiers):
            return item
    return None


def count(setting, *identifiers):
    """Count one event against every limit of a setting."""
    limiter = _limiter()
    for item in parse_many(current_app.config[setting]):
        limiter.hit(item, setting, *identifiers)
