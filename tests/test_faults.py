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
from rq import Queue
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


def start_worker(app, dovecot, worker_env, tmp_path, *, burst=False):
    """A real `rq worker` of our class, in a session of its own (its work horse too)."""
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", IMAP_ALLOWED_PORTS=str(dovecot.tls_port),
                     IMAP_CA_FILE=str(dovecot.ca_path), SYNC_BATCH_SIZE=str(BATCH),
                     SYNC_LEASE_SECONDS=str(LEASE))
    command = [sys.executable, "-m", "rq.cli", "worker", "--worker-class",
               "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"],
               *(["--burst"] if burst else []), app.config["RQ_QUEUE"]]
    with open(tmp_path / f"worker-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def session_pids(sid):
    """The processes of a session: the worker and its work horse (its own process group)."""
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
            pids.append(int(entry))
    return pids


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


def kill_mid_sync(app, mailbox, dovecot, worker_env, tmp_path):
    """Start a sync in a real worker and SIGKILL it once part of the mail is stored."""
    enqueue_sync(mailbox.id)
    worker = start_worker(app, dovecot, worker_env, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while stored(mailbox.id) < BATCH and time.monotonic() < deadline:
            assert worker.poll() is None
            time.sleep(0.01)
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
    assert Queue(app.config["RQ_QUEUE"], connection=redis).job_ids == []
    assert not redis.exists(lock_key(full_box.id))
    redis.close()
