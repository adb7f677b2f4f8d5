"""Reading mail headers from a mailbox into Email rows (DESIGN.md, flow 2).

- First sync of a folder: the messages whose INTERNALDATE lies within the last
  FIRST_SYNC_HOURS. SEARCH SINCE only knows days (in the server's time zone), so it
  selects candidates from a day earlier and the exact cut is made here, in UTC.
- Then: only UIDs above the last one stored for the folder's UIDVALIDITY. Server
  answers are checked against each other: a UID SEARCH that finds nothing while
  UIDNEXT says there is new mail is asked again with an explicit range, then by
  sequence number (GNU imap4d answers "UID n:*" with nothing); without UIDNEXT
  (Courier-IMAP) the newest message's UID tells where the folder ends. The cursor
  never moves past a message that was not read.
- An empty folder with nothing stored under its old UIDVALIDITY that got a new one
  (GNU imap4d's empty mbox, on every open) just takes the new value: no renumbering
  is recorded and nothing is re-read. Nor when its first mail brings the lasting
  UIDVALIDITY (Courier-IMAP's new Maildir): the window since the last sync is read.
- A changed UIDVALIDITY re-reads the window since the last sync and finds stored
  emails again by fingerprint (Message-ID, or a digest when there is none): they
  are re-keyed to their new UIDs, never stored twice.
- Folders are opened with EXAMINE and only headers are fetched with BODY.PEEK, so
  the customer's mailbox never changes (no \\Seen flag is set).
- Each batch of SYNC_BATCH_SIZE messages is stored, counted and its cursor advanced
  in one transaction: a crash between batches resumes where it stopped.

No RQ here: tracker.jobs.sync schedules, locks and retries. Public: run_sync,
store_messages, RunResult, emails_stored, batch_committed, count_commands, FETCH_ITEMS.
"""

import imaplib
import logging
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from blinker import Namespace
from flask import current_app
from imapclient import exceptions as imap_errors
from sqlalchemy import delete, insert, select, update

from tracker import counting, crypto, imap
from tracker.extensions import db
from tracker.mailparse import FETCHED_FIELDS, ParsedHeaders, digest, parse_headers
from tracker.models import Email, SyncRun, utcnow

logger = logging.getLogger(__name__)

_signals = Namespace()
#: Sent inside the transaction that stores a batch, before it commits, with
#: `mailbox` and `email_ids` (the new rows). Receivers (attribution of emails to
#: visits and rules) may update those rows; an exception aborts the whole batch.
emails_stored = _signals.signal("emails-stored")
#: Sent after the transaction that stored a batch committed, with `mailbox` and
#: `email_ids` (the new rows, counted and attributed). Receivers (webhooks) work
#: in transactions of their own; their failures are theirs to handle.
emails_committed = _signals.signal("emails-committed")
#: Sent after a batch was fetched and before it is stored, between transactions,
#: with `mailbox`. Receivers may commit their own work (the page views queued in
#: Redis are written then, so that attribution sees every address shown so far).
batch_fetched = _signals.signal("batch-fetched")

HEADER_ITEM = "BODY.PEEK[HEADER.FIELDS (%s)]" % " ".join(FETCHED_FIELDS)
# The key the server answers HEADER_ITEM under (without .PEEK).
_HEADER_KEY = ("BODY[HEADER.FIELDS (%s)]" % " ".join(FETCHED_FIELDS)).encode()
FETCH_ITEMS = ("INTERNALDATE", "RFC822.SIZE", HEADER_ITEM)
# What the connection or the server can do wrong, as opposed to a bug here.
IMAP_FAILURES = (imap.ImapError, imaplib.IMAP4.error, OSError, EOFError)


@dataclass
class RunResult:
    """The outcome of one sync: a tracker.imap result code and what was stored."""

    code: str
    params: dict = field(default_factory=dict)
    new_emails: int = 0
    commands: int | None = None

    @property
    def ok(self):
        return self.code == "ok"

    @property
    def retry(self):
        """True when trying again later may work (network trouble, not a wrong password)."""
        return not self.ok and self.code not in imap.PERMANENT


class _CommandCounter:
    """Counts the IMAP commands a connection sends.

    Every tagged command takes a new tag: imaplib's own commands and those imapclient
    writes to the socket itself (UID SEARCH goes through imapclient's _raw_command, not
    imaplib's _command), so the tags are what is counted.
    """

    def __init__(self, client):
        self.count = 0
        imap4 = client._imap
        new_tag = imap4._new_tag

        def counted(*args):
            self.count += 1
            return new_tag(*args)

        imap4._new_tag = counted


def count_commands(client):
    """Start counting the commands sent on a logged-in IMAPClient; read `.count` later."""
    return _CommandCounter(client)


def batch_committed(client, folder, new_emails):
    """Called after each committed batch. Does nothing: tests replace it to inject failures."""


@dataclass
class _Run:
    """What one sync collects on its way."""

    mailbox: object
    settings: dict
    progress: object = None
    new_emails: int = 0
    events: list = field(default_factory=list)
    connected: bool = False


def run_sync(mailbox, *, trigger="schedule", progress=None):
    """Sync every chosen folder of `mailbox`; record the run, the mailbox status; return it.

    `progress(new_emails)` is called after each batch. Failures of the server or the
    network end the run with their result code (see RunResult.retry); anything else
    is a bug: it is recorded as an internal error and raised.
    """
    config = current_app.config
    run = SyncRun(mailbox_id=mailbox.id, trigger=trigger, started_at=utcnow(), status="running")
    db.session.add(run)
    db.session.commit()
    state = _Run(mailbox, config, progress)
    counter = None
    try:
        params = mailbox.credential.server_params()
    except crypto.InvalidToken:
        result = RunResult("password_unreadable")
    else:
        deadline = config["SYNC_JOB_TIMEOUT"] * 0.9
        try:
            with imap.session(params, deadline=deadline, **imap.options(config)) as client:
                state.connected = True
                # Aware datetimes: INTERNALDATE must not pass through the worker's local zone.
                client.normalise_times = False
                counter = count_commands(client)
                result = _sync_folders(client, state, params)
                result.commands = counter.count
        except IMAP_FAILURES as exc:
            db.session.rollback()
            timeout = deadline if isinstance(exc, imap.DeadlineExceeded) else config[
                "IMAP_TIMEOUT_SECONDS"]
            failed = imap.failure(exc, params, timeout=timeout)
            result = RunResult(failed.code, dict(failed.params))
        except Exception:
            db.session.rollback()
            _finish(run, mailbox, RunResult("server_error", {"detail": "internal error"}), state)
            raise
    result.new_emails = state.new_emails
    if result.commands is None and counter is not None:
        result.commands = counter.count
    _finish(run, mailbox, result, state)
    return result


def _sync_folders(client, state, params):
    """Each folder in turn; a missing folder is recorded and the others still sync."""
    result = RunResult("ok", {"host": params.host, "port": params.port})
    for folder in list(state.mailbox.folders):
        try:
            _sync_folder(client, state, folder)
        except imap.FolderMissing as exc:
            db.session.rollback()
            folder.status, folder.last_error = exc.code, None
            db.session.commit()
            if result.ok:
                result = RunResult(exc.code, {"host": params.host, "port": params.port,
                                              **exc.params})
    return result


def _finish(run, mailbox, result, state):
    """Store the outcome on the run and the mailbox; keep only the newest runs."""
    now = utcnow()
    run.finished_at = now
    run.status = result.code
    run.status_params = dict(result.params) or None
    run.error = result.params.get("detail") if not result.ok else None
    run.new_emails = state.new_emails
    run.commands = result.commands
    run.events = state.events or None
    mailbox.record(imap.CheckResult(result.ok, result.code, dict(result.params)), now)
    if state.connected and result.code in ("ok", "folder_missing"):
        mailbox.synced_at = now
    kept = (select(SyncRun.id).where(SyncRun.mailbox_id == mailbox.id)
            .order_by(SyncRun.started_at.desc(), SyncRun.id.desc())
            .limit(state.settings["SYNC_RUNS_KEPT"]))
    db.session.execute(delete(SyncRun).where(SyncRun.mailbox_id == mailbox.id,
                                             SyncRun.id.not_in(kept)))
    db.session.commit()


# ----------------------------------------------------------------- one folder

def _sync_folder(client, state, folder):
    info = imap.examine(client, folder.name)
    uidvalidity = _int(info.get(b"UIDVALIDITY")) or 0
    uidnext = _int(info.get(b"UIDNEXT"))
    exists = _int(info.get(b"EXISTS")) or 0
    if uidnext is None and exists:
        # No UIDNEXT in the EXAMINE answer (Courier-IMAP): the newest message's UID
        # tells where the folder ends, so that the cursor still covers what was left out.
        top = _highest_uid(client, folder.name, exists)
        uidnext = top + 1 if top else None
    now = utcnow()
    window = timedelta(hours=state.settings["FIRST_SYNC_HOURS"])
    chunk = state.settings["SYNC_BATCH_SIZE"]
    event = None

    if folder.uidvalidity is None or folder.last_uid is None:
        since = now - window
        uids = _uids_since(client, since, exists, chunk) if exists else []
    elif folder.uidvalidity != uidvalidity and not exists and not _stored_under(
            state.mailbox.id, folder.name, folder.uidvalidity):
        # Nothing stored under the old UIDVALIDITY and empty now (GNU imap4d gives an
        # empty mbox a new one on every open): nothing to find again or re-read.
        since, uids = None, []
    elif folder.uidvalidity != uidvalidity and not folder.last_uid and not _stored_under(
            state.mailbox.id, folder.name, folder.uidvalidity):
        # Empty at every sync so far, now with its first mail and the UIDVALIDITY that
        # comes with it (Courier-IMAP, GNU imap4d): nothing to find again, no renumbering
        # to tell. Its mail arrived since the last sync: read that window.
        since = (folder.synced_at or now) - window
        uids = _uids_since(client, since, exists, chunk)
    elif folder.uidvalidity != uidvalidity:
        # Renumbered: read again from a window before the last sync; stored emails
        # are found again by fingerprint below.
        since = (folder.synced_at or now) - window
        event = {"code": "uidvalidity_changed", "folder": folder.name,
                 "old": folder.uidvalidity, "new": uidvalidity, "found": 0, "new_emails": 0}
        state.events.append(event)
        logger.info("Mailbox %s folder %r: UIDVALIDITY changed from %s to %s",
                    state.mailbox.id, folder.name, folder.uidvalidity, uidvalidity)
        uids = _uids_since(client, since, exists, chunk) if exists else []
    else:
        since = None
        nothing_new = not exists or (uidnext is not None and uidnext - 1 <= folder.last_uid)
        uids = [] if nothing_new else _uids_above(client, folder.last_uid, exists, chunk,
                                                  uidnext)

    rematch = bool(uids) and _stored_under(state.mailbox.id, folder.name, uidvalidity, other=True)
    unreadable = []
    for start in range(0, len(uids), chunk):
        batch = uids[start:start + chunk]
        messages = [(uid, at, item) for uid, at, item in _fetch(client, batch, unreadable)
                    if since is None or at is None or at >= since]
        batch_fetched.send(current_app._get_current_object(), mailbox=state.mailbox)
        new, found = _store_batch(state, folder, uidvalidity, messages, batch[-1], rematch, now)
        state.new_emails += new
        if event is not None:
            event["found"] += found
            event["new_emails"] += new
        batch_committed(client, folder, state.new_emails)
        if state.progress is not None:
            state.progress(state.new_emails)

    if unreadable:
        state.events.append({"code": "unreadable", "folder": folder.name,
                             "uids": unreadable[:20], "count": len(unreadable)})
    # Messages below UIDNEXT that were left out (older than the window) stay behind the
    # cursor too: they existed when EXAMINE answered, so SEARCH saw them.
    cursor = max([*uids[-1:], *([uidnext - 1] if uidnext else [])], default=0)
    if folder.uidvalidity == uidvalidity and folder.last_uid is not None:
        cursor = max(cursor, folder.last_uid)
    folder.uidvalidity, folder.last_uid = uidvalidity, cursor
    folder.synced_at, folder.status, folder.last_error = now, "ok", None
    db.session.commit()


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _utc(value):
    """An INTERNALDATE as naive UTC (imapclient gives aware datetimes with normalise_times off)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _rejected(exc):
    """A command the server answered with NO or BAD (the connection is still fine)."""
    return isinstance(exc, imap_errors.IMAPClientError) and not isinstance(
        exc, imap_errors.IMAPClientAbortError)


def _uids_since(client, since, exists, chunk):
    """UIDs of the messages that may have arrived at or after `since`, ascending."""
    # SINCE compares dates in the server's zone; a day earlier covers every zone.
    day = (since - timedelta(days=1)).date()
    try:
        return sorted(client.search(["SINCE", day]))
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        logger.info("SEARCH rejected (%s); reading INTERNALDATE from the newest message down", exc)
        return _scan_newest_down(client, exists, chunk, since=since)


def _uids_above(client, last_uid, exists, chunk, uidnext=None):
    """UIDs above last_uid, ascending ("n:*" always matches the highest UID, so filter).

    One answer is not trusted alone: when UIDNEXT says there are UIDs above last_uid and
    the search finds none of them (GNU imap4d answers every "UID n:*" with nothing), the
    search is asked again with the explicit range n:UIDNEXT-1, and when that finds
    nothing either, the UIDs are read by sequence number from the newest message down.
    Only then may the cursor move to UIDNEXT-1 over messages that are really gone.
    """
    try:
        found = client.search(["UID", f"{last_uid + 1}:*"])
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        logger.info("SEARCH rejected (%s); reading UIDs from the newest message down", exc)
        return _scan_newest_down(client, exists, chunk, above=last_uid)
    found = {uid for uid in found if uid > last_uid}
    if uidnext is None or uidnext - 1 <= last_uid or any(uid < uidnext for uid in found):
        return sorted(found)
    span = f"{last_uid + 1}:{uidnext - 1}"
    logger.info("UIDNEXT is %s but UID SEARCH %d:* found nothing; searching %s",
                uidnext, last_uid + 1, span)
    try:
        again = client.search(["UID", span])
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        again = []
    found.update(uid for uid in again if uid > last_uid)
    if not found:
        logger.info("UID SEARCH %s found nothing either; reading UIDs by sequence number", span)
        found.update(_scan_newest_down(client, exists, chunk, above=last_uid))
    return sorted(found)


def _highest_uid(client, folder_name, exists):
    """The highest UID in the open folder, for servers whose EXAMINE gives no UIDNEXT.

    FETCH of the last sequence number (EXISTS) for its UID; STATUS (UIDNEXT) when the
    server rejects that. None when neither answers.
    """
    client.use_uid = False
    try:
        data = client.fetch([exists], ["UID"])
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        data = {}
    finally:
        client.use_uid = True
    uid = _int((data.get(exists) or {}).get(b"UID"))
    if uid is not None:
        return uid
    try:
        status = client.folder_status(folder_name, ["UIDNEXT"])
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        return None
    uidnext = _int(status.get(b"UIDNEXT"))
    return uidnext - 1 if uidnext else None


def _stored_under(mailbox_id, folder_name, uidvalidity, other=False):
    """True when the folder has emails stored under this UIDVALIDITY (other: under another
    one, emails to be found again after a renumbering)."""
    same = Email.uidvalidity != uidvalidity if other else Email.uidvalidity == uidvalidity
    return db.session.scalar(
        select(Email.id).where(Email.mailbox_id == mailbox_id, Email.folder == folder_name,
                               same).limit(1)
    ) is not None


def _scan_newest_down(client, exists, chunk, *, since=None, above=None):
    """Without SEARCH: read (UID, INTERNALDATE) by sequence number from the newest message down.

    Stops at the first UID not above `above`, or after a whole chunk older than `since`.
    """
    found = []
    client.use_uid = False
    try:
        high = exists
        while high >= 1:
            low = max(1, high - chunk + 1)
            data = client.fetch(list(range(low, high + 1)), ["UID", "INTERNALDATE"])
            all_older = True
            for seq in range(high, low - 1, -1):
                item = data.get(seq) or {}
                uid = _int(item.get(b"UID"))
                if uid is None:
                    continue
                if above is not None:
                    if uid <= above:
                        return sorted(found)
                    found.append(uid)
                    continue
                at = _utc(item.get(b"INTERNALDATE"))
                if at is None or at >= since:
                    found.append(uid)
                    all_older = False
            if above is None and all_older:
                break
            high = low - 1
    finally:
        client.use_uid = True
    return sorted(found)


def _fetch(client, uids, unreadable):
    """(uid, INTERNALDATE as naive UTC, fetch data) for the UIDs still there, ascending.

    A batch the server or the parser chokes on is fetched again one message at a time,
    so one broken message cannot hold the others back; a message that cannot be read
    even alone is passed over and its UID added to `unreadable`.
    """
    try:
        data = client.fetch(uids, FETCH_ITEMS)
    except imap_errors.IMAPClientError as exc:
        if not _rejected(exc):
            raise
        if len(uids) == 1:
            logger.warning("Message UID %s cannot be fetched: %s", uids[0], exc)
            unreadable.append(uids[0])
            return []
        return [found for uid in uids for found in _fetch(client, [uid], unreadable)]
    return [(uid, _utc(data[uid].get(b"INTERNALDATE")), data[uid]) for uid in uids if uid in data]


def _header_bytes(item):
    for key, value in item.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[HEADER") and isinstance(value, bytes):
            return value
    return b""


def _row(mailbox, folder_name, uidvalidity, uid, at, item, now):
    """The Email columns of one fetched message, with whatever could be read."""
    raw = _header_bytes(item)
    try:
        headers = parse_headers(raw)
    except Exception:  # parse_headers never raises by design; this is the last net
        logger.exception("Headers of UID %s in %r could not be parsed", uid, folder_name)
        headers = ParsedHeaders(fingerprint=digest([raw[:65536]]))
    size = item.get(b"RFC822.SIZE")
    return {
        "account_id": mailbox.account_id,
        "mailbox_id": mailbox.id,
        "folder": folder_name,
        "uidvalidity": uidvalidity,
        "uid": uid,
        "message_id": headers.message_id,
        "fingerprint": headers.fingerprint,
        "internaldate": at or headers.date or now,
        "date_header": headers.date,
        "from_address": headers.from_address,
        "from_name": headers.from_name,
        "recipients": headers.recipients,
        "recipient_fields": headers.recipient_fields,
        "recipient": headers.recipient,
        "subject": headers.subject,
        "size": size if isinstance(size, int) else None,
        "in_reply_to": headers.in_reply_to,
        "reference_ids": headers.references or None,
        "counted": True,
        "created_at": now,
    }


def _rematch(mailbox_id, folder_name, uidvalidity, rows):
    """Re-key stored emails of an older UIDVALIDITY that rows match by fingerprint.

    Returns the rows left to insert and how many were found again. Each stored email
    matches at most one row, so two messages sharing a Message-ID stay two.
    """
    fingerprints = sorted({r["fingerprint"] for r in rows})
    older = db.session.execute(
        select(Email.id, Email.fingerprint).where(
            Email.mailbox_id == mailbox_id, Email.folder == folder_name,
            Email.uidvalidity != uidvalidity, Email.fingerprint.in_(fingerprints),
        ).order_by(Email.internaldate, Email.id)
    ).all()
    pool = defaultdict(deque)
    for email_id, fingerprint in older:
        pool[fingerprint].append(email_id)
    left, moved = [], []
    for row in rows:
        if pool[row["fingerprint"]]:
            moved.append({"id": pool[row["fingerprint"]].popleft(),
                          "uidvalidity": uidvalidity, "uid": row["uid"]})
        else:
            left.append(row)
    if moved:
        db.session.execute(update(Email), moved)
    return left, len(moved)


def _store_batch(state, folder, uidvalidity, messages, cursor, rematch, now):
    """Store one batch, count it and advance the folder cursor, all in one transaction.

    Returns (new emails stored, stored emails found again after renumbering).
    """
    mailbox = state.mailbox
    rows = [_row(mailbox, folder.name, uidvalidity, uid, at, item, now)
            for uid, at, item in messages]
    if rows:
        # Already stored (a run that committed and then lost its answer): skip, never twice.
        stored = set(db.session.scalars(select(Email.uid).where(
            Email.mailbox_id == mailbox.id, Email.folder == folder.name,
            Email.uidvalidity == uidvalidity, Email.uid.in_([r["uid"] for r in rows]))))
        rows = [r for r in rows if r["uid"] not in stored]
    found = 0
    if rows and rematch:
        rows, found = _rematch(mailbox.id, folder.name, uidvalidity, rows)
    new_ids = []
    if rows:
        new_ids = list(db.session.scalars(insert(Email).returning(Email.id), rows))
        pairs = {(r["from_address"], r["recipient"]) for r in rows}
        counting.recount_pairs(mailbox.id, mailbox.repeat_period_seconds, pairs)
    folder.uidvalidity, folder.last_uid, folder.synced_at = uidvalidity, cursor, now
    if new_ids:
        emails_stored.send(current_app._get_current_object(), mailbox=mailbox,
                           email_ids=new_ids)
    db.session.commit()
    if new_ids:
        emails_committed.send(current_app._get_current_object(), mailbox=mailbox,
                              email_ids=new_ids)
    return len(new_ids), found


def store_messages(mailbox, folder, messages, uidvalidity, *, now=None, batch_size=None):
    """Store messages read some other way (demo data, imports) exactly as a sync stores them.

    messages: (uid, INTERNALDATE as naive UTC, raw header bytes[, RFC822.SIZE]) in
    ascending UID order; folder: one of the mailbox's MailboxFolder rows. Each batch of
    `batch_size` (default SYNC_BATCH_SIZE) goes the way of a fetched batch: the queued
    page views are written (batch_fetched), then the rows are parsed, stored, counted,
    attributed (emails_stored) and the folder cursor advanced in one transaction.
    UIDs already stored are skipped. Returns how many new emails were stored.
    """
    now = now or utcnow()
    size = batch_size or current_app.config["SYNC_BATCH_SIZE"]
    state = _Run(mailbox, current_app.config)
    fetched = [(uid, at, {_HEADER_KEY: raw, b"RFC822.SIZE": rest[0] if rest else None})
               for uid, at, raw, *rest in messages]
    rematch = bool(fetched) and _stored_under(mailbox.id, folder.name, uidvalidity, other=True)
    stored = 0
    for start in range(0, len(fetched), size):
        batch = fetched[start:start + size]
        cursor = batch[-1][0]
        if folder.uidvalidity == uidvalidity and folder.last_uid is not None:
            cursor = max(cursor, folder.last_uid)  # never back: a sync reads above it
        batch_fetched.send(current_app._get_current_object(), mailbox=mailbox)
        new, _found = _store_batch(state, folder, uidvalidity, batch, cursor, rematch, now)
        stored += new
    return stored
