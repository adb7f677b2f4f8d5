"""The live state of visits in Redis, and the queue of page views waiting for the database.

A page view is answered from Redis alone, in one round trip when it can be: a
Lua script checks the rate limits and reads the visit (its facts and the
addresses it was given), or creates it with its addresses when the website
script says the visit is new. A second script runs only when something must be
given to a known visit (a rule it has no address from yet, a pool lease to
renew). Addresses are given atomically: a visit keeps its token, and a pool
address has one holder. Every script appends what happened to one Redis stream,
which `tracker.ingest` writes to the database in batches. The first entry after
the writer started sets a flag, so that the caller knows to wake the next one.

Stream entries (all values strings):
  t  "v" new visit, "p" another page view, "a" addresses given, "d" displays
  s  site id, c  client visit id, m  time in ms since the epoch
  v  the visit's row as JSON ("v" only)
  a  JSON list of addresses given: {r rule, k kind, a address, t token, p pool
     address id, x lease expiry in ms}; an entry without k renews the lease r/p to x
  d  JSON list of [block id, address, count] ("d" only)
"""

import weakref

import hiredis
import orjson
from redis import exceptions as redis_errors

from tracker import leases

STREAM = "tracker:pageviews"
FLAG = "tracker:pageviews:flush"
# A visit's state outlives its last page view by this much; the script starts a
# new visit after 30 minutes of inactivity anyway.
VISIT_TTL_SECONDS = 4 * 3600
# The wake-up flag expires, so a lost wake-up (or a writer killed mid-write) is repeated
# by the next page view after this long; a writer at work renews it every round.
FLAG_TTL_MS = 15_000

# Every script: KEYS[1] the visit's hash, KEYS[2] the stream, KEYS[3] the wake-up
# flag, then one key per rate limit, then (live, holders, stats) per pool item.
# ARGV: 1 now ms, 2 visit ttl s, 3 site id, 4 client visit id, 5 visit row JSON
# ('' for a known visit), 6 facts JSON, 7 items JSON [{r rule, k kind, a address,
# t token, f fallback, l lease ms, p [[id, address], ...]}], 8 display rows JSON,
# then the limit and window (ms) of each rate key.
_FUNCTIONS = leases.LEASE_FUNCTION + """
local vkey, now, site, cv = KEYS[1], tonumber(ARGV[1]), ARGV[3], ARGV[4]
local nrates = (#ARGV - 8) / 2

local function over_limit()
  for i = 1, nrates do
    local key = KEYS[3 + i]
    local count = redis.call('INCR', key)
    if count == 1 then redis.call('PEXPIRE', key, ARGV[8 + 2 * i]) end
    if count > tonumber(ARGV[7 + 2 * i]) then return true end
  end
  return false
end

local function emit(fields)
  redis.call('XADD', KEYS[2], '*', unpack(fields))
  if redis.call('SET', KEYS[3], '1', 'NX', 'PX', %(flag_ttl)d) then return 1 end
  return 0
end

-- A further page view of a known visit: {1, woke, state} (state: the hash, flat).
local function touch(state)
  redis.call('EXPIRE', vkey, ARGV[2])
  return {1, emit({'t', 'p', 's', site, 'c', cv, 'm', ARGV[1]}), state}
end

-- Give the items' addresses (creating the visit when ARGV[5] has its row):
-- {2, woke, address per item ('' for none)}. fresh: the caller found no hash for
-- the visit, so there is nothing to read back from it.
local function give(fresh)
  local row, kind, set = ARGV[5], 'a', {}
  if fresh then
    kind, set = 'v', {'f', ARGV[6]}
  elseif row ~= '' then
    kind = 'p'
    if redis.call('HSETNX', vkey, 'f', ARGV[6]) == 1 then kind = 'v' end
  end
  local holder = site .. ':' .. cv
  local out, given, k = {}, {}, 4 + nrates
  for _, item in ipairs(cjson.decode(ARGV[7])) do
    local field, cur = 'a' .. item.r, false
    if not fresh then
      cur = redis.call('HGET', vkey, field)
      if cur then cur = cjson.decode(cur) end
    end
    local new, address = nil, ''
    if item.k == 'subaddress' or item.k == 'catchall' then
      if cur and cur.t then address = cur.a else new = {k = item.k, a = item.a, t = item.t} end
    elseif item.k == 'pool' then
      local ids, addresses = {}, {}
      for _, pair in ipairs(item.p) do
        local id = tostring(pair[1])
        addresses[id] = pair[2]
        if cur and cur.k == 'pool' and tostring(cur.p) == id then
          table.insert(ids, 1, id)
        else
          ids[#ids + 1] = id
        end
      end
      local expires = now + item.l
      local got, fresh = lease(KEYS[k], KEYS[k + 1], KEYS[k + 2], now, expires, holder, ids)
      k = k + 3
      if got then
        address = addresses[got]
        if fresh == 0 and cur and cur.k == 'pool' and tostring(cur.p) == got then
          given[#given + 1] = cjson.encode({r = item.r, p = tonumber(got), x = expires})
        else
          new = {k = 'pool', a = address, p = tonumber(got), x = expires}
        end
      elseif item.f then
        if cur and cur.k == 'fallback' and cur.a == item.f then
          address = cur.a
        else
          new = {k = 'fallback', a = item.f}
        end
      end
    elseif cur and cur.k == item.k and cur.a == item.a then
      address = cur.a
    else
      new = {k = item.k, a = item.a}
    end
    if new then
      new.r = item.r
      address = new.a
      local encoded = cjson.encode(new)
      set[#set + 1] = field
      set[#set + 1] = encoded
      given[#given + 1] = encoded
    end
    out[#out + 1] = address
  end
  if #set > 0 then redis.call('HSET', vkey, unpack(set)) end
  redis.call('EXPIRE', vkey, ARGV[2])
  local fields = {'t', kind, 's', site, 'c', cv, 'm', ARGV[1]}
  if kind == 'v' then
    fields[#fields + 1] = 'v'
    fields[#fields + 1] = row
  end
  if #given > 0 then
    fields[#fields + 1] = 'a'
    fields[#fields + 1] = '[' .. table.concat(given, ',') .. ']'  -- each encoded once
  end
  local woke = 0
  if kind ~= 'a' or #given > 0 then woke = emit(fields) end
  return {2, woke, out}
end
""" % {"flag_ttl": FLAG_TTL_MS}

# A page view of a visit the script has seen before: {-1} rate limited, {0} unknown
# visit, else touch().
_TOUCH = _FUNCTIONS + """
if over_limit() then return {-1} end
local state = redis.call('HGETALL', vkey)
if #state == 0 then return {0} end
return touch(state)
"""

# The first page view of a visit, as the script says: touch() if the visit is known
# after all, else give() with its row.
_START = _FUNCTIONS + """
if over_limit() then return {-1} end
local state = redis.call('HGETALL', vkey)
if #state > 0 then return touch(state) end
return give(true)
"""

# Addresses for a visit (a known one, or one that Redis forgot): give().
_GIVE = _FUNCTIONS + """
return give(false)
"""

# A display report: {-1} rate limited, {0} unknown visit, {1, woke} queued.
_DISPLAY = _FUNCTIONS + """
if over_limit() then return {-1} end
if redis.call('EXISTS', vkey) == 0 then return {0} end
if ARGV[8] == '[]' then return {1, 0} end
return {1, emit({'t', 'd', 's', site, 'c', cv, 'm', ARGV[1], 'd', ARGV[8]})}
"""

# Rate limits alone: 1 when one is used up.
_RATES = _FUNCTIONS + """
if over_limit() then return 1 end
return 0
"""

_scripts = weakref.WeakKeyDictionary()


def _script(redis, source):
    """A Script object per client and source (registering hashes the source each time)."""
    per_client = _scripts.setdefault(redis, {})
    if source not in per_client:
        per_client[source] = redis.register_script(source)
    return per_client[source]


def visit_key(site_id, client_visit_id):
    return f"tracker:visit:{site_id}:{client_visit_id}"


class RateLimited(Exception):
    """A rate limit of the public API is used up."""


def _run(redis, source, site_id, client_visit_id, now_ms, rates=(), row=None, facts=None,
         items=(), displays=()):
    """Run one of the scripts with its keys and arguments laid out as they expect."""
    keys = [visit_key(site_id, client_visit_id), STREAM, FLAG]
    keys += [key for key, _limit, _seconds in rates]
    for item in items:
        if item["k"] == "pool":
            keys += leases.keys(item["r"])
    args = [now_ms, VISIT_TTL_SECONDS, site_id, client_visit_id,
            "" if row is None else orjson.dumps(row), orjson.dumps(facts) if facts else "{}",
            orjson.dumps(items) if items else "[]",
            orjson.dumps(displays) if displays else "[]"]
    for _key, limit, seconds in rates:
        args += [limit, seconds * 1000]
    return _evalsha(redis, _script(redis, source), keys, args)


def _evalsha(redis, script, keys, args):
    """Run a script; on a single-connection client, straight on its connection.

    redis-py's per-command layers (pool, retries, metrics, its own packing of the
    arguments) cost about as much CPU as the page view's round trip itself; a
    client of redis_client(single=True) has one connection to talk to, under its lock.
    """
    connection = redis.connection
    if connection is None:
        return script(keys=keys, args=args)
    with redis.single_connection_lock:
        for attempt in range(3):
            try:
                connection.send_packed_command(
                    [hiredis.pack_command(("EVALSHA", script.sha, len(keys), *keys, *args))])
                return connection.read_response()
            except redis_errors.NoScriptError:  # a Redis that restarted, or another server
                connection.send_command("SCRIPT", "LOAD", script.script)
                connection.read_response()
            except (redis_errors.ConnectionError, redis_errors.TimeoutError):
                connection.disconnect()  # the next command connects again
                if attempt:
                    raise
        raise redis_errors.NoScriptError("the script could not be loaded")


def _outcome(result, items):
    """(state, addresses, woke) from a touch() or give() result."""
    if result[0] == -1:
        raise RateLimited()
    if result[0] == 0:
        return None, None, False
    woke = bool(result[1])
    if result[0] == 1:
        flat = result[2]
        return dict(zip(flat[::2], flat[1::2])), None, woke
    addresses = [a.decode() if isinstance(a, bytes) else a for a in result[2]]
    return None, dict(zip((item["r"] for item in items), addresses)), woke


def check_rates(redis, rates):
    """Count a request against [(key, limit, window seconds)]; raises RateLimited."""
    if _run(redis, _RATES, 0, "", 0, rates=rates):
        raise RateLimited()


def touch(redis, site_id, client_visit_id, now_ms, rates):
    """Count a page view of a visit, after the rate limits; raises RateLimited.

    Returns (state, woke): the visit's hash (bytes -> bytes), or None when Redis
    does not know the visit; woke is true when the queue needs a writer woken.
    """
    state, _, woke = _outcome(
        _run(redis, _TOUCH, site_id, client_visit_id, now_ms, rates=rates), ())
    return state, woke


def start(redis, site_id, client_visit_id, now_ms, rates, row, facts, items):
    """The first page view of a visit: create it with the items' addresses.

    Returns (state, addresses, woke): the state of a visit that existed after all
    (its page view counted, nothing given), or {rule id: address} for a new one.
    Raises RateLimited.
    """
    return _outcome(_run(redis, _START, site_id, client_visit_id, now_ms, rates=rates,
                         row=row, facts=facts, items=items), items)


def give(redis, site_id, client_visit_id, now_ms, items, row=None, facts=None):
    """Store the items' addresses for the visit (creating it when `row` is given).

    Returns ({rule id: address}, woke). An item keeps what the visit already has
    where that still holds (a token, the same static address, its own lease).
    """
    _, addresses, woke = _outcome(_run(redis, _GIVE, site_id, client_visit_id, now_ms,
                                       row=row, facts=facts, items=items), items)
    return addresses, woke


def report_displays(redis, site_id, client_visit_id, now_ms, rows, rates):
    """Queue a display report of a visit Redis knows. Returns (queued, woke)."""
    result = _run(redis, _DISPLAY, site_id, client_visit_id, now_ms, rates=rates,
                  displays=rows)
    if result[0] == -1:
        raise RateLimited()
    return result[0] == 1, bool(result[1:] and result[1])
