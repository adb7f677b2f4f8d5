"""Pool leases in Redis: one live visit per pool address, atomically, across processes.

Per rule, a sorted set holds the live leases (member: pool address id, score:
expiry in ms) and a hash the visit holding each one. One Lua function takes or
renews a lease, so two requests can never hold the same address at once,
whatever the database or the number of web processes. The page-view scripts in
`tracker.visitstate` call the same function; the database keeps the history
(Assignment rows) for attribution, Redis only decides who holds what now.
"""

from dataclasses import dataclass

# lease(live, holders, stats, now, expires, holder, ids) -> id or false, 1 when new.
# The visit's own live lease first; else, among the free ids, its own lease that
# ended and went to nobody since; else the one free for longest: ids never leased
# first (in the given order), then by the time their last lease ended (ties in the
# given order). So a re-lease, which makes later emails to the address ambiguous,
# comes as late as the pool allows. When an expired lease is dropped from the live
# set, its expiry is kept in the stats hash as 'x:<id>' (the id's last release).
LEASE_FUNCTION = """
local function lease(live, holders, stats, now, expires, holder, ids)
  local ended = redis.call('ZRANGEBYSCORE', live, '-inf', now, 'WITHSCORES')
  if #ended > 0 then
    local released = {}
    for i = 1, #ended, 2 do
      released[#released + 1] = 'x:' .. ended[i]
      released[#released + 1] = ended[i + 1]
    end
    redis.call('HSET', stats, unpack(released))
    redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
  end
  local got, fresh = false, 0
  for _, id in ipairs(ids) do
    if redis.call('ZSCORE', live, id) and redis.call('HGET', holders, id) == holder then
      got = id
      break
    end
  end
  if not got then
    local best, best_at, free = false, false, {}
    for _, id in ipairs(ids) do
      if not redis.call('ZSCORE', live, id) then
        free[#free + 1] = id
        if redis.call('HGET', holders, id) == holder then
          best = id
          break
        end
      end
    end
    if not best then
      for _, id in ipairs(free) do
        local at = redis.call('HGET', stats, 'x:' .. id)
        if not at then
          best = id
          break
        end
        at = tonumber(at)
        if not best_at or at < best_at then best, best_at = id, at end
      end
    end
    if best then
      got, fresh = best, 1
      redis.call('HSET', holders, got, holder)
    end
  end
  if not got then
    redis.call('HINCRBY', stats, 'exhausted', 1)
    return false, 0, redis.call('ZCARD', live)
  end
  redis.call('ZADD', live, expires, got)
  local n = redis.call('ZCARD', live)
  if n > tonumber(redis.call('HGET', stats, 'peak') or '0') then
    redis.call('HSET', stats, 'peak', n)
  end
  return got, fresh, n
end
"""

_LEASE = LEASE_FUNCTION + """
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
local got, fresh, n = lease(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ids)
return {got or '', fresh, n}
"""


@dataclass(frozen=True)
class Lease:
    """The outcome of a lease request: a pool address id, or None when exhausted."""

    pool_address_id: int | None
    new: bool
    live: int


def keys(rule_id):
    """The live set, holders hash and stats hash of a rule's pool."""
    base = f"tracker:pool:{rule_id}"
    return [f"{base}:live", f"{base}:holders", f"{base}:stats"]


def lease(redis, rule_id, holder, pool_address_ids, now_ms, ttl_ms):
    """Take (or renew) a pool address for a holder: its own, else the one idle longest."""
    script = redis.register_script(_LEASE)
    got, fresh, live = script(
        keys=keys(rule_id),
        args=[now_ms, now_ms + ttl_ms, str(holder), *[str(i) for i in pool_address_ids]],
    )
    got = got.decode() if isinstance(got, bytes) else got
    return Lease(int(got) if got else None, bool(fresh), int(live))


def usage(redis, rule_id, now_ms):
    """Live leases now, the peak seen, and how many requests found the pool exhausted."""
    live, _holders, stats = keys(rule_id)
    pipe = redis.pipeline()
    pipe.zcount(live, now_ms, "+inf")
    pipe.hget(stats, "peak")
    pipe.hget(stats, "exhausted")
    now, peak, exhausted = pipe.execute()
    return {"live": int(now), "peak": int(peak or 0), "exhausted": int(exhausted or 0)}
