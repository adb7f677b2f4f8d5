"""The deployment as the Procfile runs it: gunicorn's web processes under slow clients."""

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.request import urlopen

from tests.services.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(name):
    """The command of one Procfile line, without the restart wrapper."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return re.sub(r"^scripts/forever\s+", "", line.split(":", 1)[1].strip())
    raise KeyError(name)


def start_web(env, tmp_path, **settings):
    port = free_port()
    env = {**env, "HOST": "127.0.0.1", "WEB_PORT": str(port),
           "PATH": f"{Path(sys.executable).parent}:{env['PATH']}", **settings}
    with open(tmp_path / f"web-{port}.log", "wb") as log:
        process = subprocess.Popen(["sh", "-c", "exec " + procfile_command("web")], env=env,
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urlopen(f"{url}/login", timeout=2) as answer:
                if answer.status == 200:
                    return process, url, port
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError((tmp_path / f"web-{port}.log").read_text()[-3000:])


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def test_the_procfile_web_line_is_gunicorn_with_threads():
    words = shlex.split(procfile_command("web"))
    assert words[0] == "gunicorn" and "--worker-class" in words
    assert words[words.index("--worker-class") + 1] == "gthread"


def test_slow_clients_do_not_stall_the_web_processes(app, tmp_path, worker_env):
    """Connections that send their request a byte at a time (or never finish it) hold a
    thread each, not a whole process: everyone else is still answered."""
    process, url, port = start_web(worker_env(), tmp_path, WEB_CONCURRENCY="2")
    slow = []
    try:
        for _ in range(6):
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /login HTTP/1.1\r\nHost: shop.example\r\nX-Slow: ")
            slow.append(connection)
        time.sleep(0.5)

        def fetch(_n):
            started = time.monotonic()
            with urlopen(f"{url}/login", timeout=10) as answer:
                return answer.status, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(fetch, range(16)))
        assert [status for status, _took in answers] == [200] * 16
        print(f"\n16 requests behind 6 slow clients: slowest {max(t for _s, t in answers):.2f} s")
    finally:
        for connection in slow:
            connection.close()
        stop(process)


def exec_start(unit):
    """The ExecStart command of a systemd unit in deploy/systemd, continuation lines joined."""
    text = (ROOT / "deploy" / "systemd" / unit).read_text().replace("\\\n", " ")
    return next(line.split("=", 1)[1] for line in text.splitlines()
                if line.startswith("ExecStart="))


def test_the_systemd_units_name_classes_that_exist_and_match_the_procfile():
    import importlib

    commands = {unit: shlex.split(exec_start(unit)) for unit in (
        "email-tracker-web.service", "email-tracker-worker@.service",
        "email-tracker-cron.service")}
    for words in [*commands.values(), *(shlex.split(procfile_command(n))
                                        for n in ("web", "worker", "cron"))]:
        for option in ("--worker-class", "--connection-class"):
            if option in words and "." in words[words.index(option) + 1]:
                module, _, name = words[words.index(option) + 1].rpartition(".")
                assert hasattr(importlib.import_module(module), name), words
    web = commands["email-tracker-web.service"]
    assert web[web.index("--worker-class") + 1] == "gthread"
    assert web[web.index("--timeout") + 1] == "300"
    assert commands["email-tracker-cron.service"][1:3] == ["cron", "tracker.jobs.cron"]
