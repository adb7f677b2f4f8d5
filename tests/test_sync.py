"""IMAP sync against a real Dovecot, run by a real RQ worker on a real Redis."""

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from imapclient import IMAPClient
from imapclient import exceptions as imap_errors
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from tests.services.dovecot import DovecotServer
from tests.services.ports import free_port
from tracker import sync
from tracker.extensions import db
from tracker.jobs.sync import (
    MailboxBusy,
    dispatch_due_mailboxes,
    due_mailboxes,
    enqueue_sync,
    sync_job_id,
    sync_mailbox,
)
from tracker.models import Email, MailboxFolder, SyncRun, utcnow

PLUS5 = timezone(timedelta(hours=5))
MINUS7 = timezone(timedelta(hours=-7))


@pytest.fixture(autouse=True)
def imap_settings(app_config, dovecot):
    """The local Dovecot is on loopback, on its own ports, with a test CA."""
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{dovecot.port},{dovecot.tls_port}",
        IMAP_CA_FILE=str(dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
    )


def now():
    return datetime.now(UTC)


def mail(n=0, *, sender="lead@example.org", to="info@shop.example", subject=None,
         message_id=True, extra=""):
    """A small message as bytes."""
    lines = [f"From: Lead {n} <{sender}>", f"To: {to}", f"Subject: {subject or f'Request {n}'}",
             "Date: Mon, 31 Jul 2023 12:00:00 +0300"]
    if message_id:
        lines.append(f"Message-ID: <{uuid.uuid4().hex}.{n}@example.org>")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\nHello.\r\n").encode()


@pytest.fixture
def box(factory, user, dovecot, imap_user):
    """A mailbox of the user's account on a fresh Dovecot user; `.deliver(bytes, at)`."""
    login, password = imap_user
    credential = factory.credential(user.account, login=login, password=password,
                                    host=dovecot.host, port=dovecot.tls_port)
    mailbox = factory.mailbox(user.account, credential)

    def deliver(message, at=None, folder="INBOX", flags=()):
        return dovecot.deliver(login, message, folder=folder, internaldate=at or now(),
                               flags=flags)

    return SimpleNamespace(mailbox=mailbox, id=mailbox.id, login=login, deliver=deliver)


def work(app):
    """Run a real RQ worker (in this process, so it sees the test database) until idle."""
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["RQ_QUEUE"], connection=redis)
    SimpleWorker([queue], connection=redis).work(burst=True)
    redis.close()


def sync_now(app, mailbox_id, trigger="manual"):
    """Queue the mailbox's sync and let a worker run it; return the job."""
    job, _fresh = enqueue_sync(mailbox_id, trigger=trigger)
    work(app)
    job.refresh()
    return job


def emails(mailbox_id):
    db.session.expire_all()
    return db.session.scalars(
        select(Email).where(Email.mailbox_id == mailbox_id).order_by(Email.uid)).all()


def last_run(mailbox_id):
    db.session.expire_all()
    return db.session.scalars(select(SyncRun).where(SyncRun.mailbox_id == mailbox_id)
                              .order_by(SyncRun.id.desc())).first()


# ------------------------------------------------------------------ first sync

@pytest.fixture
def zoned_dovecot(tmp_path, monkeypatch):
    """A Dovecot of its own, running in UTC+12 (Kamchatka)."""
    monkeypatch.setenv("TZ", "Asia/Kamchatka")
    time.tzset()
    server = DovecotServer(tmp_path / "dovecot-kamchatka")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client_zone(monkeypatch):
    """This process (the worker's side) in Los Angeles time for the rest of the test."""
    yield lambda: (monkeypatch.setenv("TZ", "America/Los_Angeles"), time.tzset())
    monkeypatch.undo()
    time.tzset()


def test_first_sync_takes_exactly_the_last_24_hours_across_time_zones(
        app, ctx, factory, user, app_config, zoned_dovecot, client_zone):
    server = zoned_dovecot
    app.config["IMAP_ALLOWED_PORTS"] = [server.tls_port]
    app.config["IMAP_CA_FILE"] = str(server.ca_path)
    server.add_user("zone@mail.example", "zone-password")
    start = now()
    inside = server.deliver("zone@mail.example", mail(1, subject="inside"),
                            internaldate=(start - timedelta(hours=23, minutes=59)).astimezone(PLUS5))
    outside = server.deliver("zone@mail.example", mail(2, subject="outside"),
                             internaldate=(start - timedelta(hours=24, minutes=1)).astimezone(MINUS7))
    server.deliver("zone@mail.example", mail(3, subject="old"),
                   internaldate=start - timedelta(days=3))
    # The server answers in its own zone, not in UTC nor in the client's.
    with server.client("zone@mail.example") as c:
        c.normalise_times = False
        c.select_folder("INBOX", readonly=True)
        stamp = c.fetch([inside], ["INTERNALDATE"])[inside][b"INTERNALDATE"]
    assert stamp.utcoffset() == timedelta(hours=12)
    client_zone()
    assert time.strftime("%Z") in ("PST", "PDT")

    credential = factory.credential(user.account, login="zone@mail.example",
                                    password="zone-password", host=server.host,
                                    port=server.tls_port)
    mailbox = factory.mailbox(user.account, credential)
    job = sync_now(app, mailbox.id)

    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    [email] = emails(mailbox.id)
    assert (email.uid, email.subject) == (inside, "inside")
    received = start - timedelta(hours=23, minutes=59)
    assert abs(email.internaldate - received.replace(tzinfo=None)) < timedelta(seconds=2)
    folder = db.session.scalar(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox.id))
    # Messages left out of the window stay behind the cursor: never read later.
    assert folder.last_uid == max(inside, outside) + 1 and folder.uidvalidity


def test_first_sync_without_search_reads_dates_from_the_newest_down(app, ctx, box, monkeypatch):
    old = [box.deliver(mail(n), now() - timedelta(hours=30 + n)) for n in range(3)]
    recent = [box.deliver(mail(n), now() - timedelta(hours=5 - n)) for n in range(3)]

    def refuse(self, *args, **kwargs):
        raise imap_errors.IMAPClientError("SEARCH command error: BAD [b'Not supported']")

    monkeypatch.setattr(IMAPClient, "search", refuse)
    app.config["SYNC_BATCH_SIZE"] = 2
    job = sync_now(app, box.id)
    assert job.get_status() == JobStatus.FINISHED
    assert [e.uid for e in emails(box.id)] == recent
    assert old  # older than the window: left out

    # Incremental sync without SEARCH as well.
    newer = box.deliver(mail(9))
    sync_now(app, box.id)
    assert [e.uid for e in emails(box.id)] == [*recent, newer]


# ------------------------------------------------------------ incremental sync

def test_incremental_sync_reads_only_new_mail_and_never_changes_flags(app, ctx, box, dovecot):
    first = [box.deliver(mail(n)) for n in range(3)]
    flagged = box.deliver(mail(3), flags=[b"\\Flagged"])
    flags_before = {uid: dovecot.flags(box.login, "INBOX", uid) for uid in [*first, flagged]}

    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 4
    assert len(emails(box.id)) == 4

    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 0
    assert len(emails(box.id)) == 4
    run = last_run(box.id)
    # Nothing new costs one command after LOGIN: EXAMINE (UIDNEXT says it all).
    assert (run.status, run.new_emails, run.commands) == ("ok", 0, 1)

    later = [box.deliver(mail(n)) for n in range(5, 7)]
    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 2
    assert [e.uid for e in emails(box.id)] == [*first, flagged, *later]
    assert {uid: dovecot.flags(box.login, "INBOX", uid) for uid in [*first, flagged]} == flags_before
    assert flags_before[first[0]] == () and flags_before[flagged] == (b"\\Flagged",)
    for uid in later:
        assert b"\\Seen" not in dovecot.flags(box.login, "INBOX", uid)
    db.session.expire_all()
    assert box.mailbox.status == "ok" and box.mailbox.synced_at is not None


def test_several_folders_and_a_missing_one(app, ctx, box, dovecot):
    dovecot.create_folder(box.login, "Leads")
    box.mailbox.folders.append(MailboxFolder(name="Leads", position=1))
    box.mailbox.folders.append(MailboxFolder(name="Gone", position=2))
    db.session.commit()
    box.deliver(mail(1))
    box.deliver(mail(2), folder="Leads")
    job = sync_now(app, box.id)
    # A folder that vanished is a setting to fix, not a network error: no retry.
    assert job.get_status() == JobStatus.FINISHED
    assert sorted(e.folder for e in emails(box.id)) == ["INBOX", "Leads"]
    db.session.expire_all()
    assert box.mailbox.status == "folder_missing"
    assert [f.status for f in box.mailbox.folders] == ["ok", "ok", "folder_missing"]
    assert "Gone" in box.mailbox.status_message


# --------------------------------------------------------- no loss, no doubles

def test_uidvalidity_change_adds_no_duplicates(app, ctx, box, dovecot):
    uids = [box.deliver(mail(n)) for n in range(3)]
    box.deliver(mail(3, message_id=False))
    sync_now(app, box.id)
    before = {e.id: e.fingerprint for e in emails(box.id)}
    old_uidvalidity = emails(box.id)[0].uidvalidity
    assert len(before) == 4 and old_uidvalidity != 4242

    dovecot.set_uidvalidity(box.login, "INBOX", 4242)
    newest = box.deliver(mail(4))
    job = sync_now(app, box.id)

    assert job.return_value()["new_emails"] == 1
    rows = emails(box.id)
    assert len(rows) == 5 and {e.uidvalidity for e in rows} == {4242}
    # The same rows, re-keyed: ids and fingerprints kept.
    assert {e.id: e.fingerprint for e in rows if e.uid != newest} == before
    assert sorted(e.uid for e in rows) == sorted([*uids, uids[-1] + 1, newest])
    [event] = last_run(box.id).events
    assert event == {"code": "uidvalidity_changed", "folder": "INBOX", "old": old_uidvalidity,
                     "new": 4242, "found": 4, "new_emails": 1}
    sync_now(app, box.id)
    assert len(emails(box.id)) == 5


def test_a_dropped_connection_after_the_first_batch_loses_and_doubles_nothing(
        app, ctx, box, monkeypatch):
    app.config["SYNC_BATCH_SIZE"] = 2
    uids = [box.deliver(mail(n)) for n in range(5)]
    calls = []

    def drop(client, folder, new_emails):
        calls.append(new_emails)
        client.socket().shutdown(2)  # the server hangs up in the middle of the sync

    monkeypatch.setattr(sync, "batch_committed", drop)
    job = sync_now(app, box.id)

    assert calls == [2]
    assert [e.uid for e in emails(box.id)] == uids[:2]
    assert job.get_status() == JobStatus.SCHEDULED  # RQ retries it later
    db.session.expire_all()
    assert box.mailbox.status == "connection_lost"
    assert last_run(box.id).status == "connection_lost"
    folder = box.mailbox.folders[0]
    assert folder.last_uid == uids[1]

    monkeypatch.undo()
    job = sync_now(app, box.id)  # "Sync now" does not wait for the backoff
    assert job.get_status() == JobStatus.FINISHED
    assert [e.uid for e in emails(box.id)] == uids
    assert job.return_value()["new_emails"] == 3


def test_a_failure_inside_a_batch_rolls_that_batch_back(app, ctx, box, monkeypatch):
    app.config["SYNC_BATCH_SIZE"] = 2
    uids = [box.deliver(mail(n)) for n in range(4)]

    def fail(sender, mailbox, email_ids):
        if len(email_ids) and min(email_ids) > 2:
            raise ConnectionResetError("lost in the middle of the second batch")

    sync.emails_stored.connect(fail)
    try:
        sync_now(app, box.id)
    finally:
        sync.emails_stored.disconnect(fail)
    assert [e.uid for e in emails(box.id)] == uids[:2]
    sync_now(app, box.id)
    assert [e.uid for e in emails(box.id)] == uids


# ------------------------------------------------------------------ hostile mail

CORPUS = [
    ("utf8", b"From: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.org>\r\nTo: info@shop.example\r\n"
             b"Subject: =?UTF-8?B?0JfQsNGP0LLQutCwINC90LAg0YHQsNC50YLQtQ==?=\r\n"
             b"Message-ID: <utf8@x>\r\nDate: Mon, 31 Jul 2023 12:00:00 +0000\r\n"),
    ("koi8", b"From: =?koi8-r?B?8MnT2M3P?= <koi@example.org>\r\nTo: info@shop.example\r\n"
             b"Subject: =?koi8-r?B?8MnT2M3P?=\r\nMessage-ID: <koi8@x>\r\n"),
    ("cp1251", b"From: sender@example.org\r\nTo: info@shop.example\r\n"
               b"Subject: =?windows-1251?Q?=CF=F0=E8=E2=E5=F2?=\r\nMessage-ID: <cp@x>\r\n"),
    ("latin", b"From: =?iso-8859-1?q?Ren=E9?= <rene@example.fr>\r\nTo: info@shop.example\r\n"
              b"Subject: =?iso-8859-2?q?=BF=F3=B3w?=\r\nMessage-ID: <latin@x>\r\n"),
    ("folded", b"From: folded@example.org\r\nTo: info@shop.example,\r\n\tsales@shop.example\r\n"
               b"Subject: a very\r\n  long subject\r\nMessage-ID: <folded@x>\r\n"),
    ("no-date-no-id", b"From: nodate@example.org\r\nTo: info@shop.example\r\nSubject: none\r\n"),
    ("duplicate-id-1", b"From: dup@example.org\r\nTo: info@shop.example\r\nSubject: one\r\n"
                       b"Message-ID: <dup@x>\r\nMessage-ID: <other@x>\r\n"),
    ("duplicate-id-2", b"From: dup@example.org\r\nTo: info@shop.example\r\nSubject: two\r\n"
                       b"Message-ID: <dup@x>\r\n"),
    ("idn", b"From: =?UTF-8?B?0J/RgNC+0LTQsNCy0LXRhg==?= <sales@xn--80atjc.xn--p1ai>\r\n"
            b"To: info@shop.example\r\nSubject: idn\r\nMessage-ID: <idn@x>\r\n"),
    ("malformed", b"From: <<<broken@@example.org\r\nTo: ;;;, ,\r\nDate: yesterday-ish\r\n"
                  b"Subject: =?utf-8?B?not base64!!?=\r\nX-Garbage line without colon\r\n"
                  b"Message-ID: no brackets here\r\n"),
    ("raw-8bit", "From: Пётр <petr@example.org>\r\nTo: info@shop.example\r\n"
                 "Subject: Заявка без кодировки\r\n".encode("cp1251")),
    ("delivered", b"From: lead@example.org\r\nTo: Undisclosed recipients:;\r\n"
                  b"Delivered-To: Sales+Ad1@Shop.Example\r\nX-Original-To: alias@shop.example\r\n"
                  b"Cc: boss@shop.example\r\nSubject: bcc\r\n"),
    ("oversized", b"From: big@example.org\r\nTo: " + b", ".join(
        f"r{i}@shop.example".encode() for i in range(20000)) + b"\r\nSubject: " + b"x" * 200000
        + b"\r\n"),
    ("nul", b"From: nul@example.org\r\nTo: info@shop.example\r\nSubject: a\x01b\r\n"
            b"Message-ID: <a\x01b@x>\r\n"),
]


def test_awkward_headers_are_all_stored(app, ctx, box):
    for _name, headers in CORPUS:
        box.deliver(headers + b"\r\nbody\r\n")
    job = sync_now(app, box.id)
    assert job.get_status() == JobStatus.FINISHED
    rows = emails(box.id)
    assert len(rows) == len(CORPUS)
    by_subject = {e.subject: e for e in rows}
    assert by_subject["Заявка на сайте"].from_name == "Иван"
    assert "Письмо" in by_subject and by_subject["Письмо"].from_name == "Письмо"
    assert "Привет" in by_subject
    assert by_subject["żółw"].from_name == "René"
    assert by_subject["a very long subject"].recipients == ["info@shop.example",
                                                            "sales@shop.example"]
    nodate = by_subject["none"]
    assert nodate.message_id is None and nodate.date_header is None
    assert nodate.fingerprint.startswith("sha256:")
    one, two = by_subject["one"], by_subject["two"]
    assert one.message_id == two.message_id == "dup@x" and one.uid != two.uid
    assert by_subject["idn"].from_address == "sales@окна.рф"
    assert by_subject["Заявка без кодировки"].from_name == "Пётр"
    bcc = by_subject["bcc"]
    assert bcc.recipient == "sales+ad1@shop.example"
    assert bcc.recipients == ["sales+ad1@shop.example", "alias@shop.example", "boss@shop.example"]
    big = next(e for e in rows if e.from_address == "big@example.org")
    assert len(big.subject) == 1000 and len(big.recipients) == 100
    assert by_subject["ab"].message_id is None or "\x01" not in by_subject["ab"].message_id


# -------------------------------------------------------------------- faults

def test_wrong_password_is_recorded_and_not_retried(app, ctx, factory, user, dovecot, imap_user):
    login, _password = imap_user
    credential = factory.credential(user.account, login=login, password="wrong",
                                    host=dovecot.host, port=dovecot.tls_port)
    mailbox = factory.mailbox(user.account, credential)
    job = sync_now(app, mailbox.id, trigger="schedule")

    assert job.get_status() == JobStatus.FINISHED  # not failed, so RQ does not retry
    assert job.return_value()["status"] == "auth_failed"
    db.session.expire_all()
    assert mailbox.status == "auth_failed"
    assert "Wrong login or password" in mailbox.status_message
    assert "The server said: “[AUTHENTICATIONFAILED] Authentication failed.”" in (
        mailbox.status_message)
    run = last_run(mailbox.id)
    assert run.status == "auth_failed" and run.error == "[AUTHENTICATIONFAILED] Authentication failed."
    assert emails(mailbox.id) == []


def test_server_down_is_retried_with_backoff(app, ctx, factory, user):
    port = free_port("127.0.0.1")
    app.config["IMAP_ALLOWED_PORTS"] = [port]
    app.config["SYNC_RETRY_INTERVALS"] = [60, 300]
    credential = factory.credential(user.account, login="down@mail.example", host="127.0.0.1",
                                    port=port)
    mailbox = factory.mailbox(user.account, credential)
    job = sync_now(app, mailbox.id, trigger="schedule")

    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == 1
    db.session.expire_all()
    assert mailbox.status == "refused"
    assert f"port {port}" in mailbox.status_message
    assert last_run(mailbox.id).status == "refused"
    # The scheduled retry is pending: neither the dispatcher nor a second call queues another.
    again, fresh = enqueue_sync(mailbox.id)
    assert not fresh and again.id == job.id


def test_a_stopped_server_reads_as_down(app, ctx, factory, user, tmp_path):
    server = DovecotServer(tmp_path / "dovecot-down")
    server.start()
    server.add_user("gone@mail.example", "gone-password")
    app.config["IMAP_ALLOWED_PORTS"] = [server.tls_port]
    app.config["IMAP_CA_FILE"] = str(server.ca_path)
    credential = factory.credential(user.account, login="gone@mail.example",
                                    password="gone-password", host=server.host,
                                    port=server.tls_port)
    mailbox = factory.mailbox(user.account, credential)
    server.deliver("gone@mail.example", mail(1))
    assert sync_now(app, mailbox.id).return_value()["new_emails"] == 1
    server.stop()

    job = sync_now(app, mailbox.id, trigger="schedule")
    assert job.get_status() == JobStatus.SCHEDULED
    db.session.expire_all()
    assert mailbox.status == "refused"
    assert len(emails(mailbox.id)) == 1


def test_a_password_that_cannot_be_decrypted_is_a_status(app, ctx, box):
    box.mailbox.credential.password_token = "garbage"
    db.session.commit()
    job = sync_now(app, box.id)
    assert job.get_status() == JobStatus.FINISHED
    db.session.expire_all()
    assert box.mailbox.status == "password_unreadable"


# --------------------------------------------------------------- the jobs

def test_a_mailbox_is_not_synced_by_two_workers_at_once(app, ctx, box):
    box.deliver(mail(1))
    redis = Redis.from_url(app.config["REDIS_URL"])
    lock = redis.lock(f"tracker:sync-lock:{box.id}", timeout=30)
    assert lock.acquire(blocking=False)
    try:
        # Not dropped: the job fails with MailboxBusy, and RQ tries it again later.
        with pytest.raises(MailboxBusy):
            sync_mailbox(box.id)
        assert emails(box.id) == [] and last_run(box.id) is None
    finally:
        lock.release()
    assert sync_mailbox(box.id)["new_emails"] == 1
    redis.close()


def test_a_pending_sync_is_not_queued_twice(app, ctx, box):
    job, fresh = enqueue_sync(box.id)
    again, fresh_again = enqueue_sync(box.id, trigger="manual")
    assert fresh and not fresh_again and again.id == job.id == sync_job_id(box.id)
    redis = Redis.from_url(app.config["REDIS_URL"])
    assert Queue(app.config["RQ_QUEUE"], connection=redis).job_ids == [job.id]
    work(app)
    # Once finished, the next request queues it again under the same id.
    job, fresh = enqueue_sync(box.id)
    assert fresh and Job.fetch(job.id, connection=redis).get_status() == JobStatus.QUEUED
    redis.close()


def test_inactive_and_deleted_mailboxes_are_skipped(app, ctx, box):
    box.mailbox.active = False
    db.session.commit()
    assert sync_mailbox(box.id) == {"skipped": "inactive"}
    assert sync_mailbox(999999) == {"skipped": "deleted"}


def test_runs_log_keeps_the_last_n(app, ctx, box):
    app.config["SYNC_RUNS_KEPT"] = 3
    for _ in range(5):
        sync_mailbox(box.id)
    db.session.expire_all()
    runs = db.session.scalars(select(SyncRun).where(SyncRun.mailbox_id == box.id)).all()
    assert len(runs) == 3
    assert all(r.status == "ok" and r.finished_at >= r.started_at for r in runs)


def test_email_count(app, ctx, box):
    from tracker.models import email_count

    for n in range(3):
        box.deliver(mail(n))
    sync_mailbox(box.id)
    assert email_count(box.mailbox) == 3
    assert db.session.scalar(select(func.count()).select_from(Email)) == 3


def test_dispatcher_queues_each_due_active_mailbox_once(app, ctx, factory, user):
    never = factory.mailbox(user.account)
    recent = factory.mailbox(user.account)
    stale = factory.mailbox(user.account)
    factory.mailbox(user.account, active=False)
    for mailbox, minutes in ((recent, 5), (stale, 11), (recent, 30)):
        db.session.add(SyncRun(mailbox_id=mailbox.id, status="ok",
                               started_at=utcnow() - timedelta(minutes=minutes)))
    db.session.commit()

    assert due_mailboxes(utcnow()) == [never.id, stale.id]
    assert dispatch_due_mailboxes() == [never.id, stale.id]
    assert dispatch_due_mailboxes() == []  # queued already: not twice
    redis = Redis.from_url(app.config["REDIS_URL"])
    assert Queue(app.config["RQ_QUEUE"], connection=redis).job_ids == [
        sync_job_id(never.id), sync_job_id(stale.id)]
    redis.close()
    app.config["SYNC_INTERVAL_SECONDS"] = 3600
    assert due_mailboxes(utcnow()) == [never.id]


def test_cron_runs_the_dispatcher_every_minute():
    from rq import cron

    import tracker.jobs.cron  # noqa: F401  (registers on import, as `rq cron` loads it)

    found = [d for d in cron._job_data_registry
             if d["func"].__name__ == "dispatch_due_mailboxes"]
    assert found and found[0]["interval"] == 60


def test_rq_worker_process_syncs_a_mailbox(app, ctx, box, dovecot, tmp_path, worker_env):
    """`rq worker --burst` as a separate process, with our worker class as deployed."""
    box.deliver(mail(1))
    box.deliver(mail(2))
    job, _fresh = enqueue_sync(box.id)
    env = worker_env(ALLOW_PRIVATE_IMAP_HOSTS="1", IMAP_ALLOWED_PORTS=str(dovecot.tls_port),
                     IMAP_CA_FILE=str(dovecot.ca_path))
    rq = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", app.config["REDIS_URL"],
          "--worker-class", "tracker.jobs.worker.Worker"]
    done = subprocess.run([*rq, app.config["RQ_QUEUE"]], env=env, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, done.stderr
    assert job.return_value()["new_emails"] == 2
    assert len(emails(box.id)) == 2


def test_a_message_the_server_cannot_give_does_not_hold_the_others_back(app, ctx, box, monkeypatch):
    uids = [box.deliver(mail(n)) for n in range(4)]
    broken = uids[1]
    fetch = IMAPClient.fetch

    def choke(self, messages, data, modifiers=None):
        # As a server answering NO, or a response imapclient cannot parse.
        if "RFC822.SIZE" in data and broken in messages:
            raise imap_errors.ProtocolError(f"unexpected response for UID {broken}")
        return fetch(self, messages, data, modifiers)

    monkeypatch.setattr(IMAPClient, "fetch", choke)
    job = sync_now(app, box.id)
    assert job.get_status() == JobStatus.FINISHED
    assert [e.uid for e in emails(box.id)] == [uids[0], *uids[2:]]
    [event] = last_run(box.id).events
    assert event == {"code": "unreadable", "folder": "INBOX", "uids": [broken], "count": 1}


# ------------------------------------------------- servers that answer differently

class ImapProxy:
    """A real TLS-terminating relay between the sync and Dovecot's plain port.

    The client side speaks implicit TLS with Dovecot's test certificate, the server side
    is Dovecot's plaintext listener. It records the name of every tagged command the
    client sends (`commands`, one list per connection) and, with `strip_uidnext`, drops
    the `* OK [UIDNEXT n]` line of EXAMINE/SELECT answers, as Courier-IMAP sends none.
    """

    def __init__(self, server, *, strip_uidnext=False):
        import socket
        import ssl
        import threading

        self.server, self.strip_uidnext = server, strip_uidnext
        self.commands = []
        self._threads = []
        self._open = []  # sockets and readers, closed by close()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(str(server.cert_path), str(server.key_path))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so that the accepting thread sees close()
        self.host, self.port = self._listener.getsockname()
        self._closed = False
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self):
        import socket
        import threading

        while not self._closed:
            try:
                raw, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            raw.settimeout(None)
            try:
                client = self._context.wrap_socket(raw, server_side=True)
            except OSError:
                raw.close()
                continue
            upstream = socket.create_connection((self.server.host, self.server.port), timeout=10)
            upstream.settimeout(None)
            self._open += [client, upstream]
            names = []
            self.commands.append(names)
            for target in (self._from_client, self._from_server):
                thread = threading.Thread(target=target, args=(client, upstream, names),
                                          daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pipe_lines(self, source, sink, keep):
        reader = source.makefile("rb")
        self._open.append(reader)
        try:
            for line in reader:
                if keep(line):
                    sink.sendall(line)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(2)
                except OSError:
                    pass

    def _from_client(self, client, upstream, names):
        def keep(line):
            words = line.split()
            if len(words) >= 2 and not line.startswith((b"*", b"+")):
                name = words[1].upper()
                if name == b"UID" and len(words) >= 3:
                    name = b"UID " + words[2].upper()
                names.append(name.decode())
            return True

        self._pipe_lines(client, upstream, keep)

    def _from_server(self, client, upstream, names):
        def keep(line):
            return not (self.strip_uidnext and line.upper().startswith(b"* OK [UIDNEXT "))

        self._pipe_lines(upstream, client, keep)

    def close(self):
        self._closed = True
        self._listener.close()
        self._accepting.join(timeout=5)
        for item in self._open:
            if hasattr(item, "shutdown"):
                try:
                    item.shutdown(2)
                except OSError:
                    pass
        for thread in self._threads:
            thread.join(timeout=5)
        for item in self._open:
            item.close()


@pytest.fixture
def proxied(app, factory, user, dovecot, imap_user):
    """A mailbox reached through an ImapProxy; call it with the proxy's options."""
    proxies = []

    def make(**options):
        login, password = imap_user
        proxy = ImapProxy(dovecot, **options)
        proxies.append(proxy)
        app.config["IMAP_ALLOWED_PORTS"] = [dovecot.tls_port, proxy.port]
        credential = factory.credential(user.account, login=login, password=password,
                                        host=proxy.host, port=proxy.port)
        mailbox = factory.mailbox(user.account, credential)

        def deliver(message, at=None):
            return dovecot.deliver(login, message, internaldate=at or now())

        return SimpleNamespace(mailbox=mailbox, id=mailbox.id, login=login, proxy=proxy,
                               deliver=deliver)

    yield make
    for proxy in proxies:
        proxy.close()


def _folder(mailbox_id):
    db.session.expire_all()
    return db.session.scalar(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id))


def _sent_during_sync(names):
    """The commands of one connection between LOGIN and LOGOUT: what a sync run counts."""
    return names[names.index("LOGIN") + 1:names.index("LOGOUT")]


def test_a_server_without_uidnext_stores_no_old_mail_as_new(app, ctx, proxied):
    box = proxied(strip_uidnext=True)
    # The proxy really hides UIDNEXT (the EXAMINE answer has none).
    with IMAPClient(box.proxy.host, port=box.proxy.port, ssl=True,
                    ssl_context=box.proxy.server.ssl_context()) as c:
        c.login(box.login, box.proxy.server.password(box.login))
        info = c.select_folder("INBOX", readonly=True)
        assert b"UIDNEXT" not in info and b"UIDVALIDITY" in info
    old = [box.deliver(mail(n), now() - timedelta(days=3 + n)) for n in range(4)]

    # First sync: the window finds nothing; the cursor still covers the old messages.
    job = sync_now(app, box.id)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value()["status"] == "ok", job.return_value()
    assert emails(box.id) == []
    assert _folder(box.id).last_uid == max(old)

    new = box.deliver(mail(9))
    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 1
    assert [e.uid for e in emails(box.id)] == [new]
    assert _folder(box.id).last_uid == new

    # Nothing new: EXAMINE and one FETCH of the newest message's UID, no search.
    sync_now(app, box.id)
    run = last_run(box.id)
    assert (run.status, run.new_emails, run.commands) == ("ok", 0, 2)
    assert _sent_during_sync(box.proxy.commands[-1]) == ["EXAMINE", "FETCH"]
    assert [e.uid for e in emails(box.id)] == [new]


def test_a_server_without_uidnext_first_sync_keeps_the_24_hour_cut(app, ctx, proxied):
    box = proxied(strip_uidnext=True)
    old = box.deliver(mail(1), now() - timedelta(hours=30))
    recent = box.deliver(mail(2), now() - timedelta(hours=2))
    older_again = box.deliver(mail(3), now() - timedelta(days=5))
    sync_now(app, box.id)
    assert [e.uid for e in emails(box.id)] == [recent]
    assert _folder(box.id).last_uid == older_again
    assert old < recent < older_again
    sync_now(app, box.id)
    assert [e.uid for e in emails(box.id)] == [recent]


def test_the_command_count_includes_every_search(app, ctx, proxied):
    """SyncRun.commands is what went over the wire, as the proxy saw it."""
    box = proxied()
    box.deliver(mail(1))
    box.deliver(mail(2))
    sync_now(app, box.id)
    run = last_run(box.id)
    sent = _sent_during_sync(box.proxy.commands[-1])
    # imapclient asks for CAPABILITY (LITERAL+) before its first search of a session.
    assert sent == ["EXAMINE", "CAPABILITY", "UID SEARCH", "UID FETCH"]
    assert run.commands == len(sent)

    box.deliver(mail(3))
    sync_now(app, box.id)  # incremental: UID SEARCH UID n:*
    run = last_run(box.id)
    sent = _sent_during_sync(box.proxy.commands[-1])
    assert sent == ["EXAMINE", "CAPABILITY", "UID SEARCH", "UID FETCH"]
    assert (run.new_emails, run.commands) == (1, len(sent))

    sync_now(app, box.id)  # nothing new: EXAMINE alone
    sent = _sent_during_sync(box.proxy.commands[-1])
    assert sent == ["EXAMINE"] and last_run(box.id).commands == 1


def test_a_search_that_finds_nothing_is_checked_by_sequence_number(app, ctx, box, monkeypatch):
    """UIDNEXT says there is new mail, both UID searches find none: the UIDs are read by
    sequence number, and the cursor moves only over what was read."""
    first = [box.deliver(mail(n)) for n in range(2)]
    sync_now(app, box.id)
    search = IMAPClient.search
    asked = []

    def blind(self, criteria="ALL", charset=None):
        if criteria and criteria[0] == "UID":
            asked.append(criteria[1])
            return []
        return search(self, criteria, charset)

    monkeypatch.setattr(IMAPClient, "search", blind)
    later = [box.deliver(mail(n)) for n in range(5, 8)]
    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 3
    assert asked == [f"{first[-1] + 1}:*", f"{first[-1] + 1}:{later[-1]}"]
    assert [e.uid for e in emails(box.id)] == [*first, *later]
    assert _folder(box.id).last_uid == later[-1]


def test_messages_gone_before_the_sync_let_the_cursor_pass(app, ctx, box, dovecot):
    first = box.deliver(mail(1))
    sync_now(app, box.id)
    gone = [box.deliver(mail(n)) for n in range(2, 4)]
    with dovecot.client(box.login) as c:
        c.select_folder("INBOX")
        c.delete_messages(gone)
        c.expunge()
    job = sync_now(app, box.id)
    assert job.return_value()["new_emails"] == 0
    # Three answers agree that nothing is left above the cursor: it moves to UIDNEXT-1.
    assert _folder(box.id).last_uid == gone[-1]
    newest = box.deliver(mail(4))
    assert sync_now(app, box.id).return_value()["new_emails"] == 1
    assert [e.uid for e in emails(box.id)] == [first, newest]


# ------------------------------------------------------------ counted once

def test_the_same_message_twice_in_an_account_counts_once(app, ctx, box, dovecot, factory,
                                                          user, imap_user):
    """In INBOX and another folder, and the same inbox connected again under another host
    name: the copies (same Message-ID and INTERNALDATE) count once, whatever syncs first."""
    dovecot.create_folder(box.login, "Leads")
    box.mailbox.folders.append(MailboxFolder(name="Leads", position=1))
    box.mailbox.repeat_period_seconds = 0  # every email counts, but for the safety net
    db.session.commit()
    again = factory.mailbox(user.account, factory.credential(
        user.account, login=box.login, password=imap_user[1], host="localhost", port=dovecot.tls_port), repeat_period_seconds=0)
    at = (now() - timedelta(hours=1)).replace(microsecond=0)
    twice = mail(1)
    box.deliver(twice, at=at)
    box.deliver(twice, at=at, folder="Leads")
    once = mail(2)
    box.deliver(once, at=at + timedelta(minutes=5))
    # Another delivery of a message with the same Message-ID, at another time: not a copy.
    box.deliver(twice, at=at + timedelta(minutes=10), folder="Leads")
    # The mailbox that comes later in (mailbox, folder, UID) order syncs first.
    assert sync_now(app, again.id).get_status() == JobStatus.FINISHED
    assert [e.counted for e in emails(again.id)] == [True, True]
    assert sync_now(app, box.id).get_status() == JobStatus.FINISHED
    mine = emails(box.id)
    assert sorted((e.folder, e.counted) for e in mine) == [
        ("INBOX", True), ("INBOX", True), ("Leads", False), ("Leads", True)]
    # The second connection's copies became repeats when the first one stored them.
    assert [e.counted for e in emails(again.id)] == [False, False]
    counted = [e for e in [*mine, *emails(again.id)] if e.counted]
    assert len({(e.message_id, e.internaldate) for e in counted}) == len(counted) == 3
    # Recounting (the repeat period changed) keeps it so.
    from tracker.counting import recount_mailbox

    recount_mailbox(again.id, 0)
    recount_mailbox(box.id, 0)
    db.session.commit()
    assert [e.counted for e in emails(again.id)] == [False, False]
    assert sum(e.counted for e in emails(box.id)) == 3
