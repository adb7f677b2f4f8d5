"""Benchmark the page-view API against a bare Flask JSON endpoint under the same gunicorn.

    /work/main/.venv/bin/python bench/api_bench.py [--duration 15] [--warmup 3]
        [--db sqlite|postgresql] [--threads 1 8]

Starts a throw-away Redis and a database (SQLite in a temporary directory, or with
--db postgresql a throw-away PostgreSQL cluster, tests/services/postgres.py), creates
a site with a "find in code" block and a dynamic (sub-address) rule, and serves
the app (wsgi:app) and bench/bare_app.py with identical gunicorn settings (two
sync workers per CPU unless --workers says otherwise) on free loopback ports. Then drives each with wrk (Debian package `wrk`) at 32 connections:
the tracker twice (every request a new visit; page views of 1,000 returning
visits), the bare endpoint once. With several --threads values (1 = the sync worker
class, more = gthread with that many threads per worker) each setting gets its own
pair of servers and all runs alternate in the same session.
Prints a Markdown table for docs/benchmarks.md. Traffic goes to 127.0.0.1 only.
"""

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services.ports import free_port  # noqa: E402
from tests.services.redis_server import RedisServer  # noqa: E402

CONNECTIONS = 32
# As README.md's deployment section advises: two sync workers per core, so that one
# can use the CPU while another waits for its Redis round trip.
WORKERS = 2 * (os.cpu_count() or 1)
SITE_KEY = "bench-site-key-0001"
THREADS = 1
# Seconds to wait after each run for the writer to write it (it writes every second).
WRITER_LAG = 1.5


def start_database(kind, tmp):
    """(SQLAlchemy URL, server to clean up or None) of an empty throw-away database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}", None
    from tests.services.postgres import PostgresServer

    server = PostgresServer(tmp / "postgres")
    try:
        server.start()
        return server.url(server.create_database(name="bench")), server
    except BaseException:
        server.cleanup()
        raise


def setup_database(env):
    """Schema plus one site on bench.example, a block and a sub-address rule for everyone."""
    os.environ.update(env)
    from cryptography.fernet import Fernet  # noqa: F401  (the app validates FERNET_KEYS)

    from tests.factories import Factory
    from tracker import create_app
    from tracker.extensions import db

    app = create_app()
    with app.app_context():
        db.create_all()
        factory = Factory(password="bench password")
        account = factory.account("Bench")
        site = factory.site(account, name="Bench", domains=["bench.example"])
        site.key = SITE_KEY
        db.session.commit()
        block = factory.block(account, sites=[site], addresses=["info@bench.example"])
        factory.rule(account, blocks=[block], mode="subaddress", base_address="info@bench.example")
        db.session.remove()
        db.engine.dispose()


def gunicorn_command(threads, workers=WORKERS):
    """The same settings for both servers: sync workers (or gthread with threads > 1)."""
    worker_class = ["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else \
        ["--worker-class", "sync"]
    return [sys.executable, "-m", "gunicorn", "--workers", str(workers), *worker_class,
            "--log-level", "warning"]


def start_gunicorn(app_module, port, env, cwd, log, threads, workers):
    process = subprocess.Popen(
        [*gunicorn_command(threads, workers), "--bind", f"127.0.0.1:{port}", app_module],
        cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # it answers (404/405 are fine)
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn for {app_module} exited with {process.returncode}")
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn for {app_module} did not start")


def start_writer(env, log):
    """The RQ worker that writes queued page views to the database, as in production."""
    rq = Path(sys.executable).with_name("rq")
    return subprocess.Popen(
        [str(rq), "worker", "--worker-class", "tracker.jobs.worker.Worker", "--url",
         env["REDIS_URL"], "default"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def backlog(redis_url):
    """Stream entries not yet written (the writer keeps the last written one)."""
    from redis import Redis

    from tracker.visitstate import STREAM

    client = Redis.from_url(redis_url)
    try:
        return max(0, client.xlen(STREAM) - 1)
    finally:
        client.close()


def stored(url):
    """(visits, page views) written to the database at SQLAlchemy URL `url`."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            visits, pages = connection.execute(
                text("SELECT count(*), coalesce(sum(page_views), 0) FROM visit")).one()
    finally:
        engine.dispose()
    return int(visits), int(pages)


def _cpu_seconds(pids, reaped=False):
    """CPU time of processes (and, with reaped, of their children that exited)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        total += int(fields[11]) + int(fields[12])
        if reaped:
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _machine():
    """Busy jiffies of all CPUs (all but idle and I/O wait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4]


class CpuMeter:
    """CPU spent per request by the web workers, Redis, the writer and the whole machine."""

    def __init__(self, web, redis, writer):
        self.web, self.redis, self.writer = web, redis, writer

    def sample(self):
        return (_cpu_seconds(_children(self.web.pid)), _cpu_seconds([self.redis.pid]),
                _cpu_seconds([self.writer.pid, *_children(self.writer.pid)], reaped=True),
                _machine())

    @staticmethod
    def per_request(before, after, requests):
        web, redis, writer = ((a - b) / requests * 1e6 for a, b in zip(after[:3], before[:3]))
        machine = (after[3] - before[3]) / os.sysconf("SC_CLK_TCK") / requests * 1e6
        return web, redis, writer, machine


def stop(process):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wrk(port, duration, mode, close=False):
    """Run wrk once; returns (requests/s, p50 ms, p99 ms, errors, raw output)."""
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency",
               "-s", str(ROOT / "bench" / "hit.lua"), f"http://127.0.0.1:{port}/api/v1/hit"]
    env = {**os.environ, "BENCH_SITE_KEY": SITE_KEY, "BENCH_MODE": mode}
    if close:
        env["BENCH_CONNECTION_CLOSE"] = "1"
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    sent = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))
    p99 = _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), "
                    r"write (\d+), timeout (\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += sum(int(n) for n in found.groups())
    return rps, p50, p99, errors, sent


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]


def machine():
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs ({model or platform.processor()}), Python {platform.python_version()}"


def label(threads):
    return "sync" if threads == 1 else f"gthread, {threads} threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all runs, alternating; the median round is reported")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per server")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help="gunicorn workers for both servers (default: two per CPU)")
    parser.add_argument("--redis", choices=("tcp", "unix"), default="tcp",
                        help="how the app reaches Redis: loopback TCP or the Unix socket")
    parser.add_argument("--threads", type=int, nargs="+", default=[THREADS],
                        help="threads per gunicorn worker (1: sync worker class; more: gthread); "
                             "several values are measured side by side in the same session")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the database the writer stores page views in (postgresql: a "
                             "throw-away cluster, Debian package postgresql)")
    parser.add_argument("--connection-close", action="store_true",
                        help="a new connection per request for every server (sync workers close "
                             "each connection anyway; gthread workers otherwise keep it alive)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    several = len(args.threads) > 1
    close = args.connection_close

    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as tmp:
        tmp = Path(tmp)
        redis = RedisServer(tmp / "redis")
        redis.start()
        processes, database_server = [], None
        try:
            database, database_server = start_database(args.db, tmp)
            env = {
                **os.environ,
                "DATABASE_URL": database,
                "REDIS_URL": redis.unix_url if args.redis == "unix" else redis.url,
                "SECRET_KEY": "bench-secret-key-of-sufficient-length",
                "API_RATE_PER_IP": "10000000 per minute",
                "API_RATE_PER_SITE": "10000000 per minute",
                "INSTANCE_PATH": str(tmp / "instance"),
            }
            from cryptography.fernet import Fernet

            env["FERNET_KEYS"] = Fernet.generate_key().decode()
            setup_database(env)
            log = open(tmp / "gunicorn.log", "wb")
            runs, meters, tracker_ports = [], {}, set()
            writer = start_writer(env, log)
            processes.append(writer)
            for threads in args.threads:
                suffix = f" ({label(threads)})" if several else ""
                tracker_port, bare_port = free_port(), free_port()
                tracker = start_gunicorn("wsgi:app", tracker_port, env, ROOT, log, threads,
                                         args.workers)
                bare = start_gunicorn("bare_app:app", bare_port, env, ROOT / "bench", log,
                                      threads, args.workers)
                processes += [tracker, bare]
                meters[tracker_port] = CpuMeter(tracker, redis.proc, writer)
                meters[bare_port] = CpuMeter(bare, redis.proc, writer)
                tracker_ports.add(tracker_port)
                runs += [(f"tracker, new visits{suffix}", tracker_port, "new", threads),
                         (f"tracker, returning visits{suffix}", tracker_port, "returning", threads),
                         (f"bare Flask JSON endpoint{suffix}", bare_port, "new", threads)]

            sent = {"new": 0, "returning": 0}
            for _name, port, mode, _threads in runs:
                if port in tracker_ports:
                    sent[mode] += wrk(port, args.warmup, mode, close)[4]
                else:
                    wrk(port, args.warmup, mode, close)
            # Alternate the runs, so that whatever else the machine does hits all of them alike.
            rounds = {name: [] for name, *_ in runs}
            backlogs = {name: [] for name, *_ in runs}
            cpu = {name: [] for name, *_ in runs}
            for _ in range(args.rounds):
                for name, port, mode, _threads in runs:
                    before = meters[port].sample()
                    rounds[name].append(wrk(port, args.duration, mode, close))
                    backlogs[name].append(backlog(env["REDIS_URL"]))
                    time.sleep(WRITER_LAG)  # the writer's share of this run lands here
                    cpu[name].append(CpuMeter.per_request(
                        before, meters[port].sample(), rounds[name][-1][4]))
                    if port in tracker_ports:
                        sent[mode] += rounds[name][-1][4]
                    print(f"{name}: {rounds[name][-1][0]:.0f} req/s, "
                          f"{backlogs[name][-1]} queued", file=sys.stderr)
            results = {name: sorted(found, key=lambda r: r[0])[len(found) // 2]
                       for name, found in rounds.items()}
            # Every page view is written, and written once: visits and page counts add up
            # (wrk counts the requests it finished; up to 32 more were in flight per run).
            started, written = time.monotonic(), None
            while time.monotonic() - started < 120:
                time.sleep(0.5)
                now = stored(database)
                if now == written and backlog(env["REDIS_URL"]) == 0:
                    break
                written = now
            drained = time.monotonic() - started
            expected = (sent["new"] + 1000, sent["new"] + sent["returning"])
        finally:
            for process in processes:
                stop(process)
            redis.stop()
            if database_server:
                database_server.cleanup()
        log.close()
        tail = (tmp / "gunicorn.log").read_text(errors="replace")[-2000:]

    settings = "; ".join(f"`{' '.join(gunicorn_command(t, args.workers)[1:])}`"
                         for t in args.threads)
    database_name = "SQLite (WAL)" if args.db == "sqlite" else "PostgreSQL (throw-away cluster, fsync off)"
    print(f"Machine: {machine()}; {settings}; "
          f"`wrk -t2 -c{CONNECTIONS} -d{args.duration}s --latency -s bench/hit.lua` after "
          f"{args.warmup}s of warm-up; the median of {args.rounds} alternating rounds; "
          f"{database_name} and Redis over "
          f"{'its Unix socket' if args.redis == 'unix' else 'loopback TCP'}; "
          f"{'`Connection: close` on every request; ' if close else ''}load average "
          f"{os.getloadavg()[0]:.1f} at the end.\n")
    print("| endpoint | requests/s | p50 | p99 | errors | share of bare |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    bare_of = {threads: results[name][0] for name, _, _, threads in runs if name.startswith("bare")}
    for name, _, _, threads in runs:
        rps, p50, p99, errors, _ = results[name]
        print(f"| {name} | {rps:.0f} | {p50:.1f} ms | {p99:.1f} ms | {errors} | "
              f"{rps / bare_of[threads]:.0%} |")
    trackers = [name for name, port, _, _ in runs if port in tracker_ports]
    print(f"\nThe page-view writer (one `rq worker`) ran alongside on the same CPUs. Entries "
          f"queued and not yet written when each tracker run ended: "
          + "; ".join(f"{name.split(', ', 1)[1]} {', '.join(map(str, backlogs[name]))}"
                      for name in trackers)
          + f". All written {drained:.1f} s after the last run: {written[0]} visits and "
          f"{written[1]} page views, for {expected[0]} and {expected[1]} that wrk saw answered "
          f"(plus those still in flight when each run stopped).")
    print("\nCPU per answered request, in microseconds (median of the rounds; the writer's "
          f"over the run and {WRITER_LAG} s after it; the machine's includes wrk and the kernel):\n")
    print("| endpoint | web workers | Redis | writer | whole machine |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, samples in cpu.items():
        web, redis_us, writer_us, machine_us = (sorted(column)[len(column) // 2]
                                                for column in zip(*samples))
        print(f"| {name} | {web:.0f} | {redis_us:.0f} | {writer_us:.0f} | {machine_us:.0f} |")
    for name, _, _, threads in runs:
        if not name.startswith("tracker"):
            continue
        rps, _, p99, errors, _ = results[name]
        met = rps >= bare_of[threads] / 2 and p99 <= 50 and not errors
        print(f"\nGoal (>= 50% of bare throughput, p99 <= 50 ms, no errors) for {name}: "
              f"{'met' if met else 'NOT met'}.")
    if "Traceback" in tail:
        print("\ngunicorn log tail:\n" + tail, file=sys.stderr)


if __name__ == "__main__":
    main()
