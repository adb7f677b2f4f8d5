"""Pool leases in Redis: one live visit per pool address, atomically, across processes.

Per rule, a sorted set holds the live leases (member: pool address id, score:
expiry in ms) and a hash the visit holding each one. One Lua script takes or
renews a lease, so two requests can never hold the same address at once,
whatever the database or the number of web processes. The database keeps the
history (Assignment rows) for attribution; Redis only decides who holds what now.
"""

from dataclasses import dataclass

_LEASE = """
local live, holders, stats = KEYS[1], KEYS[2], KEYS[3]
local now, expires, visit = ARGV[1], ARGV[2], ARGV[3]
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
local got, fresh = false, 0
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', live, id) and redis.call('HGET', holders, id) == visit then
    got = id
    break
  end
end
if not got then
  for i = 4, #ARGV do
    local id = ARGV[i]
    if not redis.call('ZSCORE', live, id) then
      got, fresh = id, 1
      redis.call('HSET', holders, id, visit)
      break
    end
  end
end
if not got then
  redis.call('HINCRBY', stats, 'exhausted', 1)
  return {'', 0, redis.call('ZCARD', live)}
end
redis.call('ZADD', live, expires, got)
local n = redis.call('ZCARD', live)
if n > tonumber(redis.call('HGET', stats, 'peak') or '0') then
  redis.call('HSET', stats, 'peak', n)
end
return {got, fresh, n}
"""


@dataclass(frozen=True)
class Lease:
    """The outcome of a lease request: a pool address id, or None when exhausted."""

    pool_address_id: int | None
    new: bool
    live: int


def _keys(rule_id):
    base = f"tracker:pool:{rule_id}"
    return [f"{base}:live", f"{base}:holders", f"{base}:stats"]


def lease(redis, rule_id, visit_id, pool_address_ids, now_ms, ttl_ms):
    """Take (or renew) a pool address for the visit; first free address in the given order."""
    script = redis.register_script(_LEASE)
    got, fresh, live = script(
        keys=_keys(rule_id),
        args=[now_ms, now_ms + ttl_ms, str(visit_id), *[str(i) for i in pool_address_ids]],
    )
    got = got.decode() if isinstance(got, bytes) else got
    return Lease(int(got) if got else None, bool(fresh), int(live))


def usage(redis, rule_id, now_ms):
    """Live leases now, the peak seen, and how many requests found the pool exhausted."""
    live, _holders, stats = _keys(rule_id)
    pipe = redis.pipeline()
    pipe.zcount(live, now_ms, "+inf")
    pipe.hget(stats, "peak")
    pipe.hget(stats, "exhausted")
    now, peak, exhausted = pipe.execute()
    return {"live": int(now), "peak": int(peak or 0), "exhausted": int(exhausted or 0)}
