"""Writing the page views queued in Redis (see tracker.visitstate) to the database.

One writer at a time holds a Redis lock (a lease that ends seconds after its writer
dies, see LOCK_TTL). Each batch of stream entries is written
in one transaction together with the cursor (IngestCursor, the last entry id
written) and only then trimmed from the stream, so a writer that dies anywhere in
between loses nothing and writes nothing twice.

Entries of sites, visits, rules, pool addresses or blocks deleted meanwhile are
dropped or lose that link, as the foreign keys would have it.

One bad entry never blocks the rest: when a batch cannot be stored, its entries are
written one by one (each in a savepoint), and those the database refuses, or that
cannot be read, are set aside in the REJECTED stream with their reason (bounded,
listed by `flask pageviews rejected`) while the cursor moves past them. A database
that is away (connection errors) is not a bad entry: the batch waits for the next run.
"""

import logging
from collections import defaultdict
from datetime import UTC, datetime
from itertools import chain

import orjson
from redis.exceptions import RedisError, ResponseError
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from tracker import visitstate
from tracker.extensions import db, redis_client
from tracker.jobs.lease import Lease
from tracker.models import Assignment, Block, Display, IngestCursor, PoolAddress, Rule, Site, Visit
from tracker.models.visits import UTM_FIELDS

logger = logging.getLogger(__name__)

BATCH = 1000
CURSOR = "pageviews"
LOCK = "tracker:pageviews:lock"
# The writer's lock is a lease of this many seconds, renewed while it writes: a writer
# killed mid-batch holds up the next one that long (tracker.jobs.lease).
LOCK_TTL = 10
# How long a sync waits for a running writer before attributing its emails.
SYNC_WAIT_SECONDS = 30
# Entries set aside (with their original id, fields and the reason): about the last
# REJECTED_KEEP are kept.
REJECTED = "tracker:pageviews:rejected"
REJECTED_KEEP = 10_000

_VISITS, _ASSIGNMENTS = Visit.__table__, Assignment.__table__
_VISIT_TEXT = ("visitor_id", "landing_url", "referrer", "channel", "ga_client_id",
               "ym_client_id", "user_agent", *UTM_FIELDS)
_FIND_VISITS = select(_VISITS.c.id, _VISITS.c.client_visit_id).where(
    _VISITS.c.site_id == bindparam("site"),
    _VISITS.c.client_visit_id.in_(bindparam("ids", expanding=True)))
_FIND_TOKENS = select(_ASSIGNMENTS.c.token).where(
    _ASSIGNMENTS.c.site_id == bindparam("site"),
    _ASSIGNMENTS.c.token.in_(bindparam("tokens", expanding=True)))
_COUNT_PAGES = update(_VISITS).where(_VISITS.c.id == bindparam("vid")).values(
    page_views=_VISITS.c.page_views + bindparam("n"), last_seen_at=bindparam("at"))
_LATEST_LEASE = (
    select(func.max(_ASSIGNMENTS.c.id))
    .where(_ASSIGNMENTS.c.visit_id == bindparam("vid"), _ASSIGNMENTS.c.rule_id == bindparam("rid"),
           _ASSIGNMENTS.c.pool_address_id == bindparam("pid"), _ASSIGNMENTS.c.kind == "pool")
    .scalar_subquery()
)
_EXTEND_LEASES = update(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id == _LATEST_LEASE).values(
    expires_at=bindparam("x"))


class Unreadable(ValueError):
    """A stream entry without the expected shape (skipped, never retried forever)."""


def _given_ok(item):
    if not isinstance(item, dict) or not isinstance(item.get("r"), int):
        return False
    if "k" in item:  # an address given
        return isinstance(item["k"], str) and isinstance(item.get("a"), str)
    return isinstance(item.get("p"), int) and isinstance(item.get("x"), int)  # a renewal


def _display_ok(row):
    return (isinstance(row, list) and len(row) == 3 and isinstance(row[0], int)
            and isinstance(row[1], str) and isinstance(row[2], int))


class Entry:
    """One stream entry, decoded and checked."""

    __slots__ = ("type", "site", "visit", "at", "row", "given", "displays")

    def __init__(self, fields):
        try:
            self.type = fields[b"t"].decode()
            self.site = int(fields[b"s"])
            self.visit = fields[b"c"].decode()
            self.at = _time(fields[b"m"])
            self.row = _loads(fields, b"v", {})
            self.given = _loads(fields, b"a", [])
            self.displays = _loads(fields, b"d", [])
        except (KeyError, ValueError, OverflowError) as exc:
            raise Unreadable(str(exc)) from None
        if (self.type not in ("v", "p", "a", "d") or not isinstance(self.row, dict)
                or not isinstance(self.given, list) or not all(map(_given_ok, self.given))
                or not isinstance(self.displays, list)
                or not all(map(_display_ok, self.displays))):
            raise Unreadable("unexpected shape")

    @property
    def key(self):
        return self.site, self.visit


def _loads(fields, name, default):
    """The JSON field `name` of an entry (most entries have few of them)."""
    raw = fields.get(name)
    return default if raw is None else orjson.loads(raw)


def _time(ms):
    return datetime.fromtimestamp(int(ms) / 1000, UTC).replace(tzinfo=None)


def _limit(column):
    return column.type.length or None


# Text is cut to its column's length: the API checked it; this keeps any backend happy.
_VISIT_LIMITS = {name: _limit(_VISITS.c[name]) for name in _VISIT_TEXT}
_VISIT_COLUMNS = (*_VISIT_LIMITS, "account_id", "site_id", "client_visit_id", "is_bot",
                  "started_at", "last_seen_at", "page_views", "created_at")
_ASSIGNMENT_COLUMNS = ("account_id", "site_id", "visit_id", "rule_id", "pool_address_id", "kind",
                       "address", "token", "assigned_at", "created_at", "expires_at")
_DISPLAY_COLUMNS = ("account_id", "visit_id", "block_id", "address", "count", "at", "created_at")
_KIND_LIMIT, _ADDRESS_LIMIT = _limit(_ASSIGNMENTS.c.kind), _limit(_ASSIGNMENTS.c.address)
_DISPLAY_ADDRESS_LIMIT = _limit(Display.__table__.c.address)


def _text(value, limit):
    return str(value)[:limit] if value else ""


def _existing(model, ids):
    ids = {i for i in ids if isinstance(i, int)}
    if not ids:
        return set()
    return set(db.session.scalars(select(model.id).where(model.id.in_(ids))))


def _insert_sql(table, columns, rows=1, suffix=""):
    """INSERT of `rows` rows of `columns`, in the driver's own parameter style."""
    dialect = db.session.connection().dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    quote = dialect.identifier_preparer.quote
    values = "(" + ", ".join([mark] * len(columns)) + ")"
    return (f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
            f"VALUES {', '.join([values] * rows)}{suffix}")


def _bulk_insert(table, columns, rows):
    """INSERT rows (tuples in `columns` order) through the driver's executemany.

    SQLAlchemy's per-row parameter handling costs more than the database's own
    work here, so the values must be ready for the driver (times via _time_value).
    """
    if rows:
        db.session.connection().exec_driver_sql(_insert_sql(table, columns), rows)


def _time_value():
    """How times go to the driver: SQLite stores SQLAlchemy's text form, others datetimes."""
    if db.session.connection().dialect.name == "sqlite":
        return lambda at: at.isoformat(" ", "microseconds")
    return lambda at: at


def _visit_ids(pairs):
    """{(site id, client visit id): visit id} of the visits already stored."""
    by_site = defaultdict(list)
    for site, client_visit_id in pairs:
        by_site[site].append(client_visit_id)
    found = {}
    for site, client_ids in by_site.items():
        for start in range(0, len(client_ids), 500):
            found.update(((site, cv), vid) for vid, cv in db.session.execute(
                _FIND_VISITS, {"site": site, "ids": client_ids[start:start + 500]}))
    return found


def _insert_visits(rows):
    """Insert visit rows, skipping any already stored; {(site id, client visit id): id} of
    those inserted. A multi-row INSERT ... RETURNING: one statement per 400 rows."""
    inserted = {}
    for start in range(0, len(rows), 400):
        chunk = rows[start:start + 400]
        result = db.session.connection().exec_driver_sql(
            _insert_sql(_VISITS, _VISIT_COLUMNS, len(chunk),
                        " ON CONFLICT (site_id, client_visit_id) DO NOTHING"
                        " RETURNING id, site_id, client_visit_id"),
            tuple(chain.from_iterable(chunk)))
        inserted.update(((site, cv), vid) for vid, site, cv in result.all())
    return inserted


def _write_visits(entries, accounts):
    """Store new visits and count page views; returns {(site, client visit id): visit id}."""
    new, pages, time_value = {}, defaultdict(lambda: [0, None]), _time_value()
    for entry in entries:
        if entry.type == "v" and entry.key not in new:
            visit, at = entry.row, time_value(entry.at)
            new[entry.key] = (
                *[value[:limit] if isinstance(value := visit.get(name), str) else ""
                  for name, limit in _VISIT_LIMITS.items()],
                accounts[entry.site], entry.site, entry.visit, visit.get("is_bot") is True,
                at, at, 1, at,
            )
            pages[entry.key][1] = entry.at
        elif entry.type in ("v", "p"):
            count = pages[entry.key]
            count[0] += 1
            count[1] = entry.at
    ids = _insert_visits(list(new.values()))
    for key in new:
        if key not in ids:  # stored before (Redis forgot the visit): one more page view
            pages[key][0] += 1
    ids.update(_visit_ids({entry.key for entry in entries} - ids.keys()))
    counts = [{"vid": ids[key], "n": n, "at": at} for key, (n, at) in pages.items() if n and key in ids]
    if counts:
        db.session.execute(_COUNT_PAGES, counts)
    return ids


def _taken_tokens(entries):
    """(site id, token) pairs of this batch that are already stored."""
    wanted = defaultdict(list)
    for entry in entries:
        for given in entry.given:
            if given.get("t"):
                wanted[entry.site].append(given["t"])
    taken = set()
    for site, tokens in wanted.items():
        for start in range(0, len(tokens), 500):
            taken.update((site, token) for token in db.session.scalars(
                _FIND_TOKENS, {"site": site, "tokens": tokens[start:start + 500]}))
    return taken


def _write_assignments(entries, accounts, visit_ids):
    given = [(entry, item) for entry in entries for item in entry.given]
    if not given:
        return
    rules = _existing(Rule, {item.get("r") for _, item in given})
    pools = _existing(PoolAddress, {item.get("p") for _, item in given})
    taken = _taken_tokens(entries)
    rows, renewals, time_value = [], {}, _time_value()
    for entry, item in given:
        visit_id = visit_ids.get(entry.key)
        if visit_id is None:
            continue
        if "k" not in item:  # a lease renewed: the visit's latest lease of the address
            renewals[visit_id, item["r"]] = (item["p"], item["x"])
            continue
        renewals.pop((visit_id, item["r"]), None)  # older renewals belong to older leases
        token = item.get("t")
        if token and (entry.site, token) in taken:
            # 49 random bits clashed with a token of another visit (rare beyond
            # belief): the address stays the earlier visit's.
            logger.warning("Token %s of site %s was drawn twice; the later visit %s "
                           "keeps its address without the token", token, entry.site, visit_id)
            token = None
        elif token:
            taken.add((entry.site, token))
        at = time_value(entry.at)
        rows.append((
            accounts[entry.site], entry.site, visit_id, item["r"] if item["r"] in rules else None,
            item.get("p") if item.get("p") in pools else None, _text(item["k"], _KIND_LIMIT),
            _text(item["a"], _ADDRESS_LIMIT), token, at, at,
            time_value(_time(item["x"])) if "x" in item else None,
        ))
    _bulk_insert(_ASSIGNMENTS, _ASSIGNMENT_COLUMNS, rows)
    if renewals:
        db.session.execute(_EXTEND_LEASES, [
            {"vid": vid, "rid": rid, "pid": pid, "x": _time(x)}
            for (vid, rid), (pid, x) in renewals.items()])


def _write_displays(entries, accounts, visit_ids):
    reports = [entry for entry in entries if entry.type == "d" and entry.key in visit_ids]
    rows = [(entry, row) for entry in reports for row in entry.displays]
    blocks = _existing(Block, {row[0] for _, row in rows})
    time_value = _time_value()
    _bulk_insert(Display.__table__, _DISPLAY_COLUMNS, [
        (accounts[entry.site], visit_ids[entry.key], block,
         _text(address, _DISPLAY_ADDRESS_LIMIT), count, time_value(entry.at),
         time_value(entry.at))
        for entry, (block, address, count) in rows if block in blocks
    ])


def _write(entries):
    accounts = dict(db.session.execute(
        select(Site.id, Site.account_id).where(Site.id.in_({entry.site for entry in entries}))
    ).all())
    entries = [entry for entry in entries if entry.site in accounts]
    if not entries:
        return
    visit_ids = _write_visits(entries, accounts)
    _write_assignments(entries, accounts, visit_ids)
    _write_displays(entries, accounts, visit_ids)


def _move_cursor(last, new):
    """Record the new position; False when another writer moved it first."""
    now = datetime.now(UTC).replace(tzinfo=None)
    if last is None:
        db.session.add(IngestCursor(name=CURSOR, last_id=new, updated_at=now))
        return True
    moved = db.session.execute(
        update(IngestCursor).where(IngestCursor.name == CURSOR, IngestCursor.last_id == last)
        .values(last_id=new, updated_at=now)
    )
    return moved.rowcount == 1


# What the database or its driver answers to a value it cannot store: the driver's own
# refusals come as ValueError (psycopg: a NUL) or OverflowError (sqlite3: a too large int).
REFUSALS = (SQLAlchemyError, ValueError, ArithmeticError)


def _database_away(exc):
    """True when `exc` says the database cannot be reached, not that an entry is bad."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def _reason(exc):
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:500]


def _write_one_by_one(entries, ids):
    """Write entries each in a savepoint; [(entry id, reason)] of those refused."""
    refused = []
    for entry_id, entry in zip(ids, entries, strict=True):
        savepoint = db.session.begin_nested()
        try:
            _write([entry])
            savepoint.commit()
        except REFUSALS as exc:
            savepoint.rollback()
            if _database_away(exc):
                raise
            refused.append((entry_id, _reason(exc)))
    return refused


def set_aside(redis, raw, refused):
    """Keep the refused entries (with their reason) in the REJECTED stream, under their
    own ids: an entry set aside twice (a writer that died before its commit) is kept once."""
    fields_of = dict(raw)
    refused = sorted(refused, key=lambda item: tuple(map(int, item[0].split(b"-"))))
    now = str(int(datetime.now(UTC).timestamp() * 1000))
    for entry_id, reason in refused:
        logger.error("Page-view entry %s set aside: %s", entry_id.decode(), reason)
        fields = {b"_reason": reason.encode(), b"_at": now.encode(), **fields_of[entry_id]}
        try:
            redis.xadd(REJECTED, fields, id=entry_id, maxlen=REJECTED_KEEP, approximate=True)
        except ResponseError as exc:
            if "equal or smaller" not in str(exc):
                raise


def rejected_count(redis=None):
    """How many page-view entries are set aside (about the last REJECTED_KEEP)."""
    return (redis or redis_client()).xlen(REJECTED)


def rejected(redis=None, count=50):
    """The newest set-aside entries, newest first: [{"id", "queued", "set_aside", "reason",
    "fields"}] (times in UTC; fields as queued, decoded leniently)."""
    def moment(ms):
        return datetime.fromtimestamp(int(ms) / 1000, UTC)

    found = []
    for entry_id, fields in (redis or redis_client()).xrevrange(REJECTED, count=count):
        entry_id = entry_id.decode()
        reason = fields.pop(b"_reason", b"").decode(errors="replace")
        at = fields.pop(b"_at", b"0")
        found.append({"id": entry_id, "queued": moment(entry_id.split("-")[0]),
                      "set_aside": moment(at), "reason": reason,
                      "fields": {k.decode(errors="replace"): v.decode(errors="replace")
                                 for k, v in fields.items()}})
    return found


def write_batch(redis, size=BATCH):
    """Write the next `size` entries of the stream; returns how many were handled
    (written or set aside)."""
    last = db.session.scalar(select(IngestCursor.last_id).where(IngestCursor.name == CURSOR))
    raw = redis.xrange(visitstate.STREAM, min="(" + (last or "0-0"), count=size)
    if not raw:
        db.session.rollback()
        return 0
    entries, ids, refused = [], [], []
    for entry_id, fields in raw:
        try:
            entries.append(Entry(fields))
            ids.append(entry_id)
        except Unreadable as exc:
            refused.append((entry_id, f"unreadable: {exc}"))
    new = raw[-1][0].decode()
    try:
        _write(entries)
    except REFUSALS as exc:
        db.session.rollback()
        if _database_away(exc):
            raise
        logger.warning("A page-view batch was refused (%s); writing it entry by entry",
                       _reason(exc))
        # The cursor first: a statement that opens the transaction the savepoints need
        # (SQLite's driver opens none before its first write).
        if not _move_cursor(last, new):
            db.session.rollback()
            return 0
        db.session.flush()
        refused.extend(_write_one_by_one(entries, ids))
    else:
        if not _move_cursor(last, new):
            db.session.rollback()
            return 0
    if refused:
        set_aside(redis, raw, refused)
    db.session.commit()
    redis.xtrim(visitstate.STREAM, minid=new, approximate=False)  # keeps the last one
    return len(raw)


def flush(redis, wait=0):
    """Write everything queued so far, unless another writer holds the lock for `wait` s.

    Stops at the first batch that is not full, so that entries that keep arriving
    are left for the next call rather than written in ever smaller batches.

    Returns the number of entries written (None when the lock was not had).
    """
    # A lease: renewed by a thread while this writer lives, gone LOCK_TTL s after it dies.
    lock = Lease(redis, LOCK, LOCK_TTL)
    if not lock.acquire(blocking=wait > 0, blocking_timeout=wait or None):
        return None
    try:
        total = 0
        while True:
            written = write_batch(redis)
            total += written
            if written < BATCH:  # caught up with what was queued when it started
                return total
    except BaseException:
        db.session.rollback()
        raise
    finally:
        lock.release()


def before_batch_stored(app, **_kwargs):
    """The sync's batch_fetched signal: store the page views before attributing emails.

    Every email of the batch was fetched before this, so every address shown
    before it arrived is in the queue now. Failing to write them costs only the
    attribution of the freshest visits, so the sync goes on (and says why in the log).
    """
    try:
        if flush(redis_client(), wait=SYNC_WAIT_SECONDS) is None:
            logger.warning("The page-view writer is busy; attributing without the newest visits")
    except (RedisError, SQLAlchemyError):
        db.session.rollback()
        logger.exception("Could not write queued page views before attribution")
