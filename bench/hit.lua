-- wrk script for bench/api_bench.py and bench/soak_bench.py: POST page views to the URL
-- given (/api/v1/hit).
-- BENCH_SITE_KEY: the site key; BENCH_MODE: "new" (every request a new visit),
-- "returning" (page views of 1,000 visits that already exist, over and over) or "mixed"
-- (every fourth request the first page view of a new visit, the others further page
-- views of one of the thread's 64 latest new visits).
-- BENCH_DELAY_MS (optional): milliseconds each connection waits before sending its next
-- request (fractions are kept on average), to pace the load below the maximum.
-- BENCH_CONNECTION_CLOSE (optional, any value): ask the server to close the connection
-- after each answer, as gunicorn's sync workers always do (a new connection per request).
local key = os.getenv("BENCH_SITE_KEY") or "bench-key"
local mode = os.getenv("BENCH_MODE") or "new"
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local recent, RECENT = {}, 64
local threads, counter = 0, 0
tid = 0  -- set per thread by setup()

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  -- A distinct prefix per thread and run, so "new" ids never repeat across threads or runs.
  prefix = string.format("%d-%d-", tid, os.time())
  math.randomseed(os.time() * 100 + tid)
end

if pause then
  local whole = math.floor(pause)
  local part = pause - whole
  -- wrk takes whole milliseconds: round up at random so that the mean is `pause`.
  function delay()
    if math.random() < part then return whole + 1 end
    return whole
  end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.headers["Origin"] = "https://bench.example"
if os.getenv("BENCH_CONNECTION_CLOSE") then wrk.headers["Connection"] = "close" end
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126 Safari/537.36"

function request()
  counter = counter + 1
  local id, first
  if mode == "returning" then
    id, first = string.format("visit%05d", counter % 1000), "false"
  elseif mode == "mixed" and counter % 4 ~= 1 and #recent > 0 then
    id, first = recent[math.random(#recent)], "false"
  elseif mode == "mixed" then
    id, first = string.format("v%s%08d", prefix, counter), "true"
    recent[(math.floor(counter / 4) % RECENT) + 1] = id
  else
    -- The website script says "n": true on the first page view of a visit.
    id, first = string.format("v%s%08d", prefix, counter), "true"
  end
  local body = '{"k":"' .. key .. '","v":"visitor-' .. id .. '","s":"' .. id ..
    '","u":"https://bench.example/prices?utm_source=bench&utm_medium=cpc","r":"https://ya.ru/"' ..
    ',"n":' .. first .. '}'
  return wrk.format(nil, nil, nil, body)  -- the path of the URL given to wrk
end
