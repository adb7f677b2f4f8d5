"""The emails report (обращения): its filters, search language and keyset pages.

One query serves the list, the exports and the dashboard's links: the filters
live in the URL (`Filters.from_args` / `Filters.args`), and pages are cut by
(internaldate, id) rather than OFFSET, so page 1,000 costs what page 1 costs and
a page does not shift when new emails arrive.
"""

import re
from dataclasses import dataclass, fields, replace
from datetime import datetime

from sqlalchemy import and_, or_, select

from tracker import textclean
from tracker.channels import CHANNELS
from tracker.extensions import db
from tracker.models import Credential, Email, Mailbox, Rule, Site
from tracker.models.emails import BOT_VISIT
from tracker.reports import periods
from tracker.search import InvalidValue, apply, is_id, like_pattern, name_or_id, parse, parse_bool

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
STATUSES = ("new", "repeat")


@dataclass(frozen=True)
class Filters:
    """The report's state, as the query string carries it (all strings, "" for unset)."""

    period: str = "all"
    date_from: str = ""
    date_to: str = ""
    site: str = ""
    mailbox: str = ""
    rule: str = ""
    channel: str = ""
    utm_source: str = ""
    status: str = ""
    tracked: str = ""
    # "yes": only emails whose attribution is marked (uncertain or suspected spam);
    # "spam": only suspected spam (sent to an address given to a bot's visit).
    uncertain: str = ""
    q: str = ""

    @classmethod
    def from_args(cls, args):
        """Read the filters from request args; unknown values become "" (never an error)."""
        values = {}
        for field in fields(cls):
            limit = 200 if field.name in ("q", "utm_source") else 40
            value = textclean.one_line(args.get(field.name, "", type=str) or "")
            values[field.name] = value.strip()[:limit]
        if values["period"] not in periods.PERIODS:
            values["period"] = "all"
        for name in ("date_from", "date_to"):
            day = periods.parse_day(values[name])
            values[name] = day.isoformat() if day else ""
        if values["period"] == "all" and (values["date_from"] or values["date_to"]):
            values["period"] = "custom"  # dates typed without choosing "custom dates"
        if values["channel"] not in (*CHANNELS, "none"):
            values["channel"] = ""
        if values["status"] not in STATUSES:
            values["status"] = ""
        if values["tracked"] not in ("yes", "no"):
            values["tracked"] = ""
        if values["uncertain"] not in ("yes", "spam"):
            values["uncertain"] = ""
        for name in ("site", "mailbox", "rule"):
            if not is_id(values[name]):
                values[name] = ""
        return cls(**values)

    def args(self, **changes):
        """The non-default filters as query-string arguments (for links that keep them)."""
        state = replace(self, **changes) if changes else self
        args = {f.name: getattr(state, f.name) for f in fields(state) if getattr(state, f.name)}
        if args.get("period") == "all":
            del args["period"]
        if state.period != "custom":
            args.pop("date_from", None)
            args.pop("date_to", None)
        return args

    @property
    def narrowed(self):
        """True when anything narrows the list (for the empty-state message)."""
        return bool(self.args())

    def period_in(self, tz, now=None):
        return periods.resolve(self.period, periods.parse_day(self.date_from),
                               periods.parse_day(self.date_to), tz, now)


# ------------------------------------------------------------------ search language

def _by_channel(query, value):
    value = value.casefold()
    if value == "none":
        return query.where(Email.channel.is_(None))
    if value not in CHANNELS:
        raise InvalidValue(value)
    return query.where(Email.channel == value)


def _by_source(query, value):
    return query.where(Email.utm_source == value)


def _by_json(name):
    def narrow(query, value):
        return query.where(Email.source[name].as_string().ilike(like_pattern(value),
                                                                escape="\\"))
    return narrow


def _by_from(query, value):
    like = like_pattern(value)
    return query.where(or_(Email.from_address.ilike(like, escape="\\"),
                           Email.from_name.ilike(like, escape="\\")))


def _by_to(query, value):
    like = like_pattern(value)
    return query.where(or_(Email.recipient.ilike(like, escape="\\"),
                           Email.tracked_address.ilike(like, escape="\\")))


def _by_subject(query, value):
    return query.where(Email.subject.ilike(like_pattern(value), escape="\\"))


def _by_status(query, value):
    value = value.casefold()
    if value in ("new", "новое", "новые"):
        return query.where(Email.counted.is_(True))
    if value in ("repeat", "повтор", "повторы"):
        return query.where(Email.counted.is_(False))
    raise InvalidValue(value)


def _by_tracked(query, value):
    return query.where(_tracked(parse_bool(value)))


def _by_uncertain(query, value):
    if value.casefold() in ("spam", "спам"):
        return query.where(Email.uncertain == BOT_VISIT)
    yes = parse_bool(value)
    return query.where(Email.uncertain.is_not(None) if yes else
                       and_(Email.attribution.is_not(None), Email.uncertain.is_(None)))


def _tracked(yes):
    return Email.attribution.is_not(None) if yes else Email.attribution.is_(None)


def _by_owned(model, name_column, account_id, column):
    """key:value on a related object of the account, by (part of) its name or its id."""
    def narrow(query, value):
        ids = select(model.id).where(model.account_id == account_id,
                                     name_or_id(name_column, model.id, value))
        return query.where(column.in_(ids))
    return narrow


def _by_mailbox(account_id):
    def narrow(query, value):
        ids = (select(Mailbox.id).join(Credential, Credential.id == Mailbox.credential_id)
               .where(Mailbox.account_id == account_id,
                      name_or_id(Credential.login, Mailbox.id, value)))
        return query.where(Email.mailbox_id.in_(ids))
    return narrow


def _by_text(query, text):
    return query.where(Email.search_text.like(like_pattern(text.casefold()), escape="\\"))


def search_filters(account_id):
    """{key: filter} of the search box; the keys are listed in the page's hint."""
    return {
        "channel": _by_channel,
        "source": _by_source,
        "utm_source": _by_source,
        "medium": _by_json("utm_medium"),
        "utm_medium": _by_json("utm_medium"),
        "campaign": _by_json("utm_campaign"),
        "utm_campaign": _by_json("utm_campaign"),
        "from": _by_from,
        "to": _by_to,
        "subject": _by_subject,
        "status": _by_status,
        "tracked": _by_tracked,
        "uncertain": _by_uncertain,
        "rule": _by_owned(Rule, Rule.name, account_id, Email.rule_id),
        "site": _by_owned(Site, Site.name, account_id, Email.site_id),
        "mailbox": _by_mailbox(account_id),
    }


# ------------------------------------------------------------------ the query

def filtered(account_id, filters, tz, now=None):
    """select(Email) of the account narrowed by the filters; returns (query, invalid terms)."""
    query = select(Email).where(Email.account_id == account_id)
    period = filters.period_in(tz, now)
    if period.start is not None:
        query = query.where(Email.internaldate >= period.start)
    if period.end is not None:
        query = query.where(Email.internaldate < period.end)
    if filters.site:
        query = query.where(Email.site_id == int(filters.site))
    if filters.mailbox:
        query = query.where(Email.mailbox_id == int(filters.mailbox))
    if filters.rule:
        query = query.where(Email.rule_id == int(filters.rule))
    if filters.channel:
        query = _by_channel(query, filters.channel)
    if filters.utm_source:
        query = query.where(Email.utm_source == filters.utm_source)
    if filters.status:
        query = query.where(Email.counted.is_(filters.status == "new"))
    if filters.tracked:
        query = query.where(_tracked(filters.tracked == "yes"))
    if filters.uncertain:
        query = _by_uncertain(query, filters.uncertain)
    keys = search_filters(account_id)
    return apply(query, parse(filters.q, keys), keys, _by_text)


# ------------------------------------------------------------------ keyset pages

_CURSOR = re.compile(r"(\d{20})\.(\d{1,19})")


def cursor_of(email):
    """The position of an email in the list: its time and id, as URL-safe digits."""
    return f"{email.internaldate:%Y%m%d%H%M%S%f}.{email.id}"


def parse_cursor(text):
    """(internaldate, id) from a cursor, or None for anything else."""
    found = _CURSOR.fullmatch((text or "").strip())
    if not found:
        return None
    try:
        at = datetime.strptime(found.group(1), "%Y%m%d%H%M%S%f")
    except ValueError:
        return None
    email_id = int(found.group(2))
    return (at, email_id) if 0 < email_id < 2**63 else None


@dataclass
class Page:
    """One page of the list, newest first, and the cursors of its neighbours."""

    items: list
    older: str | None  # pass as ?before= for the next (older) page
    newer: str | None  # pass as ?after= for the previous (newer) page


def _older_than(position):
    at, email_id = position
    return and_(Email.internaldate <= at,
                or_(Email.internaldate < at, Email.id < email_id))


def _newer_than(position):
    at, email_id = position
    return and_(Email.internaldate >= at,
                or_(Email.internaldate > at, Email.id > email_id))


def page(query, before=None, after=None, size=PAGE_SIZE):
    """The page of `query` after cursor `before` (older) or before cursor `after` (newer).

    Without a cursor: the newest page. `query` is a select whose first entity is Email.
    """
    size = max(1, min(size, MAX_PAGE_SIZE))
    newest_first = (Email.internaldate.desc(), Email.id.desc())
    if after := parse_cursor(after):
        rows = db.session.execute(
            query.where(_newer_than(after))
            .order_by(Email.internaldate.asc(), Email.id.asc()).limit(size + 1)
        ).all()
        more_newer = len(rows) > size
        rows = list(reversed(rows[:size]))
        items = [_item(row) for row in rows]
        return Page(items, older=cursor_of(items[-1][0]) if items else None,
                    newer=cursor_of(items[0][0]) if items and more_newer else None)
    before = parse_cursor(before)
    if before:
        query = query.where(_older_than(before))
    rows = db.session.execute(query.order_by(*newest_first).limit(size + 1)).all()
    more_older = len(rows) > size
    items = [_item(row) for row in rows[:size]]
    return Page(items, older=cursor_of(items[-1][0]) if items and more_older else None,
                newer=cursor_of(items[0][0]) if items and before else None)


def _item(row):
    return tuple(row) if len(row) > 1 else (row[0],)


def with_names(query):
    """The query's emails with the names a list row shows: (Email, mailbox login, rule name, site name)."""
    return (
        query.add_columns(Credential.login, Rule.name, Site.name)
        .outerjoin(Mailbox, Mailbox.id == Email.mailbox_id)
        .outerjoin(Credential, Credential.id == Mailbox.credential_id)
        .outerjoin(Rule, Rule.id == Email.rule_id)
        .outerjoin(Site, Site.id == Email.site_id)
    )
