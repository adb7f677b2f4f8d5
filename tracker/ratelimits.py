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


# Check and count in one step: parallel requests cannot all pass the check before
# any of them is counted. KEYS are the counters, ARGV their limit and window
# (seconds) in pairs. Returns {0, 0} after counting one attempt against every
# counter, or {i, seconds left} without counting anything when counter i is used up.
_ACQUIRE = """
for i, key in ipairs(KEYS) do
  local used = tonumber(redis.call('get', key) or '0')
  if used >= tonumber(ARGV[2 * i - 1]) then
    return {i, redis.call('ttl', key)}
  end
end
for i, key in ipairs(KEYS) do
  if redis.call('incr', key) == 1 then
    redis.call('expire', key, ARGV[2 * i])
  end
end
return {0, 0}
"""

# Give back the attempts counted by _ACQUIRE (a counter gone meanwhile stays gone).
_RELEASE = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('get', key) or '0') > 0 then
    redis.call('decr', key)
  end
end
return 0
"""


def _counters(checks):
    """(Redis key, limit, window seconds) of every limit of every (setting, identifiers)."""
    counters = []
    for setting, identifiers in checks:
        for item in parse_many(current_app.config[setting]):
            key = "tracker:limits:" + item.key_for(setting, *identifiers)
            counters.append((key, item.amount, item.get_expiry()))
    return counters


def acquire(checks):
    """Count one attempt against every limit of `checks`, atomically, if all have room.

    checks: (setting, identifiers) pairs. Returns None when the attempt was counted,
    else the seconds until the used-up limit has room again (nothing was counted).
    """
    from tracker.extensions import redis_client

    counters = _counters(checks)
    redis = redis_client()
    args = [value for _, amount, expiry in counters for value in (amount, expiry)]
    index, ttl = redis.register_script(_ACQUIRE)(keys=[c[0] for c in counters], args=args)
    if index == 0:
        return None
    return max(int(ttl), 1)


def release(checks):
    """Give back an attempt counted by acquire (for example a sign-in that succeeded)."""
    from tracker.extensions import redis_client

    counters = _counters(checks)
    redis_client().register_script(_RELEASE)(keys=[c[0] for c in counters])
