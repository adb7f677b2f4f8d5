"""Where a web process's memory goes under page views: tracemalloc in a short run.

    /work/main/.venv/bin/python bench/memory_trace.py [--warmup 20000] [--requests 60000]
        [--threads 8]

Builds the app in this process against a throw-away Redis and SQLite database (the
same site, block and rule as bench/api_bench.py), then sends page views through the
WSGI app from --threads threads at once, as a gthread worker runs them, with the
"mixed" traffic of bench/soak_bench.py (every fourth request a new visit, the others
page views of recent visits). After --warmup requests it takes a tracemalloc snapshot,
after --requests more a second one, and prints the allocation sites that grew most
between them, with the process's RSS at both points. A leak shows as a site that grows
with the number of requests; caches that fill once do not grow in the second part.
No writer runs: the page views stay queued in Redis, outside this process.
"""

import argparse
import io
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_bench import SITE_KEY, setup_database  # noqa: E402
from soak_bench import rss_kib  # noqa: E402

from tests.services.redis_server import RedisServer  # noqa: E402

USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126 Safari/537.36")


def body(visit, first):
    return ('{"k":"%s","v":"visitor-%s","s":"%s","u":"https://bench.example/prices?'
            'utm_source=bench&utm_medium=cpc","r":"https://ya.ru/","n":%s}'
            % (SITE_KEY, visit, visit, "true" if first else "false")).encode()


def environ(data):
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/hit", "SCRIPT_NAME": "",
        "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": str(len(data)),
        "HTTP_ORIGIN": "https://bench.example", "HTTP_USER_AGENT": USER_AGENT,
        "wsgi.input": io.BytesIO(data), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def drive(app, count, tag, failures):
    """`count` mixed page views from one thread."""
    rnd, recent = random.Random(tag), []
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for n in range(count):
        if n % 4 == 0 or not recent:
            visit = f"{tag}-{time.monotonic_ns()}-{n}"
            recent = (recent + [visit])[-64:]
            data = body(visit, True)
        else:
            data = body(rnd.choice(recent), False)
        result = app(environ(data), start_response)
        b"".join(result)
        if hasattr(result, "close"):
            result.close()
        if not statuses[-1].startswith("2"):
            failures.append(statuses[-1])
        statuses.clear()


def run(app, total, threads, label):
    failures = []
    per_thread = total // threads
    workers = [threading.Thread(target=drive, args=(app, per_thread, f"{label}{t}", failures))
               for t in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return per_thread * threads, time.monotonic() - started, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tracker-memtrace-") as tmp:
        tmp = Path(tmp)
        redis = RedisServer(tmp / "redis")
        redis.start()
        try:
            from cryptography.fernet import Fernet

            env = {
                "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}", "REDIS_URL": redis.url,
                "SECRET_KEY": "bench-secret-key-of-sufficient-length",
                "API_RATE_PER_IP": "10000000 per minute",
                "API_RATE_PER_SITE": "10000000 per minute",
                "INSTANCE_PATH": str(tmp / "instance"),
                "FERNET_KEYS": Fernet.generate_key().decode(),
            }
            setup_database(env)
            os.environ.update(env)
            from wsgi import app

            tracemalloc.start(10)
            sent, seconds, failures = run(app, args.warmup, args.threads, "w")
            first, rss_first = tracemalloc.take_snapshot(), rss_kib(os.getpid())
            print(f"warm-up: {sent} page views in {seconds:.1f} s, {len(failures)} not 2xx; "
                  f"RSS {rss_first / 1024:.1f} MiB, traced "
                  f"{tracemalloc.get_traced_memory()[0] / 1024 / 1024:.1f} MiB")
            sent, seconds, failures2 = run(app, args.requests, args.threads, "m")
            second, rss_second = tracemalloc.take_snapshot(), rss_kib(os.getpid())
            print(f"measured: {sent} page views in {seconds:.1f} s, {len(failures2)} not 2xx; "
                  f"RSS {rss_second / 1024:.1f} MiB, traced "
                  f"{tracemalloc.get_traced_memory()[0] / 1024 / 1024:.1f} MiB")
        finally:
            redis.stop()

    filters = [tracemalloc.Filter(False, tracemalloc.__file__),
               tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    first, second = first.filter_traces(filters), second.filter_traces(filters)
    total = sum(stat.size_diff for stat in second.compare_to(first, "filename"))
    print(f"\nPython allocations still alive (tracemalloc's own excluded) changed by "
          f"{total / 1024:+.1f} KiB over {sent} page views ({total / sent:+.1f} bytes per page "
          f"view); RSS by {(rss_second - rss_first) / 1024:+.1f} MiB (RSS includes tracemalloc's "
          f"own tables and C allocations).\n")
    print(f"Allocation sites that grew most (top {args.top}):")
    grown = sorted((stat for stat in second.compare_to(first, "traceback") if stat.size_diff > 0),
                   key=lambda stat: stat.size_diff, reverse=True)
    for stat in grown[:args.top]:
        frames = [f"{frame.filename.replace(str(ROOT) + '/', '')}:{frame.lineno}"
                  for frame in stat.traceback[-4:]]
        print(f"  {stat.size_diff / 1024:+8.1f} KiB  {stat.count_diff:+7d} blocks  "
              f"{' <- '.join(reversed(frames))}")


if __name__ == "__main__":
    main()
