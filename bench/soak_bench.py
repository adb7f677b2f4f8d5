"""Soak: page views at half the measured maximum for minutes, with the writer running.

    /work/main/.venv/bin/python bench/soak_bench.py [--duration 300] [--db sqlite|postgresql]
        [--no-write]

Starts a throw-away Redis (tests/services/redis_server.py), a database (SQLite in a
temporary directory, or with --db postgresql a throw-away PostgreSQL cluster,
tests/services/postgres.py), gunicorn as the Procfile runs it (gthread workers, its
access log) and the page-view writer as the Procfile runs it (`rq worker
--worker-class tracker.jobs.worker.Worker`). Then:

1. measures the maximum page-view throughput briefly (wrk, --probe seconds, 32
   connections, "mixed" traffic of bench/hit.lua: a new visit every fourth request, the
   others further page views of recent visits);
2. paces wrk at half that rate (hit.lua's BENCH_DELAY_MS, one calibration run of
   --probe seconds to account for the time each request itself takes);
3. drives page views at that pace for --duration seconds, sampling every --interval
   seconds: RSS of each web process, of the writer (and its work horse, when one runs),
   of Redis (and its INFO used_memory), the writer's backlog (stream entries not yet
   written) and the answers gunicorn logged (non-2xx among them);
4. waits for the writer and checks that every page view gunicorn answered is in the
   database, once.

Prints the figures as Markdown and writes them to docs/benchmarks.md ("soak_bench:<db>"
markers) unless --no-write. Needs the Debian package `wrk`. Traffic goes to 127.0.0.1.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_bench import (SITE_KEY, _children, _ms, backlog, machine, setup_database,  # noqa: E402
                       start_database, stop, stored)

from tests.services.ports import free_port  # noqa: E402
from tracker.visitstate import VISIT_TTL_SECONDS  # noqa: E402
from tests.services.redis_server import RedisServer  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
CONNECTIONS = 32
# The Procfile's web and worker commands (WEB_CONCURRENCY and WEB_THREADS at their defaults).
WEB_WORKERS, WEB_THREADS = 2, 8
ACCESS_FORMAT = ('%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)sus request_id=%({x-request-id}o)s')
DATABASES = {"sqlite": "SQLite (WAL)", "postgresql": "PostgreSQL (throw-away cluster, fsync off)"}


def markers(kind):
    return f"<!-- soak_bench:{kind}:start -->", f"<!-- soak_bench:{kind}:end -->"


def gunicorn_command(port, access_log, workers, threads):
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--timeout", "300", "--access-logfile", str(access_log),
            "--access-logformat", ACCESS_FORMAT, "wsgi:app"]


def writer_command(redis_url):
    rq = Path(sys.executable).with_name("rq")
    return [str(rq), "worker", "--with-scheduler", "--worker-class", "tracker.jobs.worker.Worker",
            "--connection-class", "tracker.jobs.worker.PatientRedis", "--url", redis_url,
            "default"]


def wait_until_served(port, process):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}")
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def rss_kib(pid):
    """Resident memory of one process in KiB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def wrk_command(port, duration):
    return ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s",
            str(ROOT / "bench" / "hit.lua"), f"http://127.0.0.1:{port}/api/v1/hit"]


def wrk_env(delay_ms=None):
    env = {**os.environ, "BENCH_SITE_KEY": SITE_KEY, "BENCH_MODE": "mixed"}
    if delay_ms is not None:
        env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
    return env


def parse_wrk(out):
    """Requests answered, requests/s, p50/p99 ms, non-2xx, socket errors."""
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in socket_errors.groups()) if socket_errors else 0,
    }


def run_wrk(port, duration, delay_ms=None):
    out = subprocess.run(wrk_command(port, duration), env=wrk_env(delay_ms), capture_output=True,
                         text=True, check=True).stdout
    return parse_wrk(out)


class AccessLog:
    """Counts the page views gunicorn logged since the last read, by status."""

    LINE = re.compile(r'"POST /api/v1/hit [^"]*" (\d{3}) ')

    def __init__(self, path):
        self.path, self.offset, self.partial = path, 0, b""
        self.ok = self.failed = 0

    def read(self):
        """(2xx, other) answers logged since the last call."""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = self.partial + log.read()
            self.offset = log.tell()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        ok = failed = 0
        for line in lines:
            found = self.LINE.search(line.decode(errors="replace"))
            if not found:
                continue
            if found.group(1).startswith("2"):
                ok += 1
            else:
                failed += 1
        self.ok += ok
        self.failed += failed
        return ok, failed


def redis_memory(redis_url):
    """(INFO used_memory in KiB, number of keys)."""
    from redis import Redis

    client = Redis.from_url(redis_url)
    try:
        return int(client.info("memory")["used_memory"]) // 1024, client.dbsize()
    finally:
        client.close()


def sample(web, writer, redis_pid, redis_url, log, started):
    workers = sorted(_children(web.pid))
    horses = _children(writer.pid)
    ok, failed = log.read()
    used, keys = redis_memory(redis_url)
    return {
        "t": time.monotonic() - started,
        "web_master": rss_kib(web.pid),
        "web": {pid: rss_kib(pid) for pid in workers},
        "writer": rss_kib(writer.pid),
        "horse": max((rss_kib(pid) or 0 for pid in horses), default=None),
        "redis": rss_kib(redis_pid),
        "redis_used": used, "redis_keys": keys,
        "backlog": backlog(redis_url),
        "ok": ok, "failed": failed,
    }


def drain(database, redis_url, limit=180):
    """Wait until the writer wrote everything queued; (visits, page views, seconds)."""
    started, written = time.monotonic(), None
    while time.monotonic() - started < limit:
        time.sleep(1)
        now = stored(database)
        if now == written and backlog(redis_url) == 0:
            break
        written = now
    return (*written, time.monotonic() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=300, help="seconds of paced page views")
    parser.add_argument("--probe", type=int, default=10,
                        help="seconds of the maximum-throughput run and of the pacing calibration")
    parser.add_argument("--interval", type=int, default=10, help="seconds between samples")
    parser.add_argument("--share", type=float, default=0.5, help="share of the maximum to drive")
    parser.add_argument("--db", choices=tuple(DATABASES), default="sqlite")
    parser.add_argument("--workers", type=int, default=WEB_WORKERS, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=WEB_THREADS, help="threads per worker")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="tracker-soak-") as tmp:
        tmp = Path(tmp)
        redis = RedisServer(tmp / "redis")
        redis.start()
        processes, database_server = [], None
        try:
            database, database_server = start_database(args.db, tmp)
            env = {
                **os.environ,
                "DATABASE_URL": database,
                "REDIS_URL": redis.url,
                "SECRET_KEY": "bench-secret-key-of-sufficient-length",
                "API_RATE_PER_IP": "10000000 per minute",
                "API_RATE_PER_SITE": "10000000 per minute",
                "INSTANCE_PATH": str(tmp / "instance"),
            }
            from cryptography.fernet import Fernet

            env["FERNET_KEYS"] = Fernet.generate_key().decode()
            setup_database(env)
            port, access = free_port(), tmp / "access.log"
            access.touch()
            errors_log = open(tmp / "processes.log", "wb")
            web = subprocess.Popen(gunicorn_command(port, access, args.workers, args.threads),
                                   cwd=ROOT, env=env, stdout=errors_log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
            processes.append(web)
            writer = subprocess.Popen(writer_command(redis.url), cwd=ROOT, env=env,
                                      stdout=errors_log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
            processes.append(writer)
            wait_until_served(port, web)
            log = AccessLog(access)

            wrk_runs = []
            maximum = run_wrk(port, args.probe)
            wrk_runs.append(maximum)
            drain(database, redis.url)
            target = maximum["rps"] * args.share
            delay = CONNECTIONS * 1000 / target
            calibration = run_wrk(port, args.probe, delay)
            wrk_runs.append(calibration)
            # Each connection's cycle is its pause plus the request's own time.
            own = max(0.0, CONNECTIONS * 1000 / calibration["rps"] - delay)
            delay = max(0.0, CONNECTIONS * 1000 / target - own)
            drain(database, redis.url)
            log.read()
            print(f"maximum {maximum['rps']:.0f} req/s; calibration {calibration['rps']:.0f} "
                  f"req/s; pacing {delay:.2f} ms per connection for {target:.0f} req/s",
                  file=sys.stderr)

            started = time.monotonic()
            soak = subprocess.Popen(wrk_command(port, args.duration), env=wrk_env(delay),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            samples = []
            while soak.poll() is None:
                next_at = started + (len(samples) + 1) * args.interval
                while soak.poll() is None and time.monotonic() < next_at:
                    time.sleep(0.2)
                if soak.poll() is not None:
                    break
                samples.append(sample(web, writer, redis.proc.pid, redis.url, log, started))
                s = samples[-1]
                print(f"{s['t']:5.0f} s: {s['ok'] / args.interval:.0f} req/s, "
                      f"{s['failed']} failed, web "
                      f"{'/'.join(str(v // 1024) for v in s['web'].values())} MiB, writer "
                      f"{s['writer'] // 1024} MiB, redis {s['redis'] // 1024} MiB, "
                      f"backlog {s['backlog']}", file=sys.stderr)
            out, err = soak.communicate()
            if soak.returncode:
                raise RuntimeError(f"wrk failed: {err}")
            soaked = parse_wrk(out)
            wrk_runs.append(soaked)
            visits, pages, drained = drain(database, redis.url)
            log.read()
            from redis import Redis

            from tracker.ingest import rejected_count
            client = Redis.from_url(redis.url)
            set_aside = rejected_count(client)
            client.close()
            load = os.getloadavg()
        finally:
            for process in processes:
                stop(process)
            redis.stop()
            if database_server:
                database_server.cleanup()
        errors_log.close()
        tail = (tmp / "processes.log").read_text(errors="replace")

    figures = {
        "db": args.db, "duration": args.duration, "probe": args.probe, "interval": args.interval,
        "workers": args.workers, "threads": args.threads, "maximum": maximum,
        "calibration": calibration, "soak": soaked, "target": target, "delay": delay,
        "samples": samples, "visits": visits, "pages": pages, "drained": drained,
        "logged_ok": log.ok, "logged_failed": log.failed, "set_aside": set_aside,
        "wrk_answered": sum(r["requests"] for r in wrk_runs), "load": load,
        "tracebacks": tail.count("Traceback"),
    }
    report = render(figures, " ".join(["bench/soak_bench.py", *sys.argv[1:]]))
    print(report)
    if "Traceback" in tail:
        print("\nprocess log tail:\n" + tail[-3000:], file=sys.stderr)
    if not args.no_write:
        write(report, args.db)
        print(f"written to {DOCS.relative_to(ROOT)}", file=sys.stderr)


def _mib(kib):
    return f"{kib / 1024:.1f}" if kib is not None else "–"


def render(f, command):
    samples, interval = f["samples"], f["interval"]
    per_minute = max(1, 60 // interval)
    # After warm-up: the first minute's samples against the last minute's.
    first, last = samples[:per_minute], samples[-per_minute:]

    def series(key):
        return [s[key] for s in samples if s[key] is not None]

    rows = []

    def row(name, values_first, values_last, values_all):
        a, b = statistics.mean(values_first), statistics.mean(values_last)
        rows.append(f"| {name} | {_mib(a)} | {_mib(b)} | {(b - a) / a:+.1%} | "
                    f"{_mib(max(values_all))} |")

    row("gunicorn master", [s["web_master"] for s in first], [s["web_master"] for s in last],
        series("web_master"))
    pids = sorted(samples[0]["web"])
    for n, pid in enumerate(pids, 1):
        if all(pid in s["web"] for s in samples):
            row(f"gunicorn worker {n} ({f['threads']} threads)", [s["web"][pid] for s in first],
                [s["web"][pid] for s in last], [s["web"][pid] for s in samples])
        else:
            rows.append(f"| gunicorn worker {n} | replaced during the run | | | |")
    row("writer (`rq worker`)", [s["writer"] for s in first], [s["writer"] for s in last],
        series("writer"))
    horses_first = [s["horse"] for s in first if s["horse"]]
    horses_last = [s["horse"] for s in last if s["horse"]]
    if horses_first and horses_last:
        row("writer's work horse (when one ran)", horses_first, horses_last,
            [h for h in series("horse") if h])
    row("Redis (RSS)", [s["redis"] for s in first], [s["redis"] for s in last], series("redis"))
    row("Redis (INFO used_memory)", [s["redis_used"] for s in first],
        [s["redis_used"] for s in last], series("redis_used"))

    growth = ""
    if samples[-1].get("redis_keys") and samples[-1]["redis_keys"] > samples[0]["redis_keys"]:
        keys = samples[-1]["redis_keys"] - samples[0]["redis_keys"]
        grown = (samples[-1]["redis_used"] - samples[0]["redis_used"]) * 1024
        growth = (f"\n\nRedis holds every visit's state for "
                  f"{VISIT_TTL_SECONDS // 3600} hours (`VISIT_TTL_SECONDS`), so its memory grows "
                  f"with the visits of the last {VISIT_TTL_SECONDS // 3600} hours and not with time: "
                  f"from the first sample to the last it gained {keys:,} keys and "
                  f"{grown / 1024 / 1024:.1f} MiB of used_memory, about {grown / keys:.0f} bytes "
                  f"per key.")
    soak, maximum = f["soak"], f["maximum"]
    errors = soak["non2xx"] + soak["socket_errors"] + f["logged_failed"]
    backlogs = series("backlog")
    rates = [s["ok"] / interval for s in samples]
    trace = "; ".join(
        f"{s['t']:.0f} s: {sum(s['web'].values()) / 1024:.0f}/{s['writer'] / 1024:.0f}/"
        f"{s['redis'] / 1024:.0f} MiB, backlog {s['backlog']}"
        for s in samples[::max(1, len(samples) // 10)])
    minutes = f["duration"] / 60
    return f"""{markers(f['db'])[0]}
## Soak on {DATABASES[f['db']].split(' ')[0]}: {minutes:g} minutes of page views at half the maximum, writer running

Command: `.venv/bin/python {command}`
(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}, load average
{f['load'][0]:.1f} / {f['load'][1]:.1f} / {f['load'][2]:.1f} (1/5/15 min) at the end. The two CPUs are
shared with other agents running test suites at the same time, so throughput moves by
tens of percent; the maximum and the paced run are measured in the same session.)

Setup as the Procfile runs it: `gunicorn --workers {f['workers']} --worker-class gthread --threads
{f['threads']} --timeout 300` with its access log, one writer `rq worker --with-scheduler
--worker-class tracker.jobs.worker.Worker --connection-class
tracker.jobs.worker.PatientRedis`, Redis 7 over loopback TCP, {DATABASES[f['db']]}.
Traffic: `wrk -t2 -c{CONNECTIONS} -s bench/hit.lua` with `BENCH_MODE=mixed` (every fourth
request the first page view of a new visit, the others page views of recent visits).

| step | requests/s | p50 | p99 | errors |
| --- | ---: | ---: | ---: | ---: |
| maximum, {f['probe']} s unpaced | {maximum['rps']:.0f} | {maximum['p50']:.1f} ms | {maximum['p99']:.1f} ms | {maximum['non2xx'] + maximum['socket_errors']} |
| soak, {f['duration']} s paced at half ({f['target']:.0f} req/s: `BENCH_DELAY_MS={f['delay']:.2f}` per connection) | {soak['rps']:.0f} | {soak['p50']:.1f} ms | {soak['p99']:.1f} ms | {soak['non2xx'] + soak['socket_errors']} |

Per {interval} s sample during the soak: {min(rates):.0f}–{max(rates):.0f} page views/s
answered (gunicorn's access log), writer backlog at most **{max(backlogs):,}** entries
(median {statistics.median(backlogs):.0f}).

**Errors: {'none' if errors == 0 else errors}** (wrk: {soak['non2xx']} non-2xx, {soak['socket_errors']}
socket errors; gunicorn's log: {f['logged_failed']} page views answered other than 2xx over
the whole session; {f['tracebacks']} tracebacks in the web and worker logs).

Memory (MiB; mean of the first minute's samples and of the last minute's, and the
highest sample; samples every {interval} s):

| process | first minute | last minute | change | max |
| --- | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}{growth}

Every answered page view was written: after the last request the writer needed
{f['drained']:.0f} s to empty the queue; the database then held **{f['pages']:,} page views**
in {f['visits']:,} visits, for **{f['logged_ok']:,}** answered with 2xx in gunicorn's access log
over the session (maximum, calibration and soak; wrk counted {f['wrk_answered']:,}, the rest were
in flight when a run stopped), {'the same number' if f['pages'] == f['logged_ok'] else 'NOT the same number'};
{f['set_aside']} entries set aside as unstorable.

Trace (web workers summed / writer / Redis RSS, backlog): {trace}.
{markers(f['db'])[1]}"""


def write(report, kind):
    start, end = markers(kind)
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _old, tail = rest.split(end, 1)
        text = head + report + tail
    else:
        text = text.rstrip("\n") + "\n\n" + report + "\n"
    DOCS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
