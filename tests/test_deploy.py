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
from urllib.request import Request, urlopen

from sqlalchemy import func

from tests.services.ports import free_port
from tests.test_sync import box  # noqa: F401  (a fixture)

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


def start_worker(env, tmp_path, n):
    """A worker as the Procfile's worker line runs it (our class, the patient connection)."""
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    with open(tmp_path / f"worker-{n}.log", "wb") as log:
        return subprocess.Popen(["sh", "-c", "exec " + procfile_command("worker")], env=env,
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def test_two_web_processes_and_two_workers_run_the_main_loop(
        app, ctx, factory, user, box, dovecot, worker_env, tmp_path, backend):
    """Visits answered by either of two web servers, emails synced by either of two
    workers, one database (PostgreSQL on the --db=postgresql run) and one Redis: every
    email names the visit that was shown its address, and counts once."""
    import json
    import uuid

    from sqlalchemy import select

    from tests.test_sync import now
    from tracker.extensions import db
    from tracker.jobs.sync import enqueue_sync
    from tracker.models import Email, Visit

    site = factory.site(user.account, domains=["shop.example"])
    block = factory.block(user.account, sites=[site], addresses=["info@shop.example"])
    rule = factory.rule(user.account, blocks=[block], mode="subaddress", base_address=box.login)
    key, mailbox_id = site.key, box.id
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", IMAP_ALLOWED_PORTS=str(dovecot.tls_port),
                     IMAP_CA_FILE=str(dovecot.ca_path), RQ_QUEUE=app.config["RQ_QUEUE"])
    processes = []
    try:
        webs = []
        for _n in range(2):
            process, url, _port = start_web(env, tmp_path, WEB_CONCURRENCY="1")
            processes.append(process)
            webs.append(url)
        processes += [start_worker(env, tmp_path, n) for n in range(2)]

        shown = {}
        for n in range(20):
            body = json.dumps({"k": key, "v": f"visitor-{n:04d}", "s": f"visit-{n:04d}-main",
                               "u": f"https://shop.example/?utm_source=s{n % 4}", "r": "",
                               "n": True}).encode()
            request = Request(f"{webs[n % 2]}/api/v1/hit", data=body, method="POST", headers={
                "Content-Type": "text/plain", "Origin": "https://shop.example",
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36"})
            with urlopen(request, timeout=10) as answer:
                shown[f"visit-{n:04d}-main"] = json.load(answer)["b"][0]["t"]
        assert len(set(shown.values())) == 20
        for visit, address in shown.items():
            box.deliver((f"From: <{visit}@clients.example>\r\nTo: {address}\r\n"
                         f"Subject: Request\r\nMessage-ID: <{uuid.uuid4().hex}@x>\r\n\r\n"
                         "Hello\r\n").encode(), at=now())
        enqueue_sync(mailbox_id, trigger="manual")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            db.session.expire_all()
            emails = db.session.scalars(select(Email).where(Email.visit_id.is_not(None))).all()
            if len(emails) == 20:
                break
            time.sleep(0.5)
        visits = dict(db.session.execute(select(Visit.id, Visit.client_visit_id)).all())
        assert len(visits) == 20, (tmp_path / "worker-0.log").read_text()[-2000:]
        attributed = {visits[e.visit_id]: (e.tracked_address, e.rule_id, e.counted)
                      for e in emails}
        assert attributed == {visit: (address, rule.id, True) for visit, address in shown.items()}
        assert db.session.scalar(select(func.count()).select_from(Email)) == 20
    finally:
        for process in processes:
            stop(process)
