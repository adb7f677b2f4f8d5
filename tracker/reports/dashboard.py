"""The dashboard: new requests by channel and by source against the previous period,
new requests per day stacked by channel, repeats and untracked emails apart, and
how far the account's set-up has got.

Every figure comes from a few aggregate queries over the emails report's own filtered
query (`tracker.reports.emails.filtered`), so each number links to exactly the rows of
the emails list behind it. No Email row is loaded into Python:

1. new requests per bin of the chart (a local day, week or month) and for the whole
   previous period, per utm_source, split into channels and "not tracked" with
   `count(*) FILTER (WHERE ...)`: one UNION ALL whose arms each read one range of the
   (account_id, internaldate, id) index, so nothing sorts the whole range. A bin's UTC
   bounds come from the zone database (`periods.to_utc`), so DST days of 23 or 25
   hours and half-hour zones count right;
2. all emails of the period and of the previous one (the index alone answers it): the
   repeats are all emails less the new requests;
3. for "all time" or an open-ended custom period, the first email's time (one index
   seek), so the chart knows where to start.

The set-up box adds one query for the sites, one small one per site for its last page
view (see `last_page_views`) and one for the mailboxes.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import timedelta

from babel.dates import format_skeleton
from flask import url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import Integer, func, literal_column, select, union_all
from sqlalchemy.orm import contains_eager

from tracker.channels import CHANNELS
from tracker.extensions import db
from tracker.forms.rules import CHANNEL_LABELS
from tracker.models import Block, Credential, Email, Mailbox, Rule, Site, Visit
from tracker.reports import charts, periods
from tracker.reports.emails import filtered

TOP_SOURCES = 10
# Bins of the chart: days for periods up to two months, then weeks up to a year, then months.
MAX_DAYS_BY_DAY = 62
MAX_DAYS_BY_WEEK = 371
# The set-up box reads a site's last page view from its newest visits (see last_page_views).
RECENT_VISITS = 1000

NO_CHANNEL = "none"
UNTRACKED = "untracked"
# The chart's series, bottom first: the channels, tracked emails whose source names no
# channel, then new requests to addresses that no rule tracks.
SERIES = (*CHANNELS, NO_CHANNEL, UNTRACKED)
SERIES_LABELS = {
    **CHANNEL_LABELS,
    NO_CHANNEL: _l("No channel"),
    UNTRACKED: _l("Not tracked"),
}
# The emails list's filters for each series (a channel implies a tracked email).
SERIES_ARGS = {
    **{channel: {"channel": channel} for channel in CHANNELS},
    NO_CHANNEL: {"channel": "none", "tracked": "yes"},
    UNTRACKED: {"tracked": "no"},
}
PERIOD_CHOICES = {
    "today": _l("Today"),
    "yesterday": _l("Yesterday"),
    "7d": _l("7 days"),
    "30d": _l("30 days"),
}


# ------------------------------------------------------------------ figures

@dataclass(frozen=True)
class Figure:
    """A number on the dashboard and the emails list that shows its rows (None: no link)."""

    count: int
    url: str | None = None


@dataclass(frozen=True)
class Comparison:
    """A figure for the period against the same figure for the previous period."""

    key: str
    label: str
    current: Figure
    previous: Figure | None  # None: the period has no previous one (all time)

    @property
    def change(self):
        """None (nothing to compare), "new" (from zero), or the relative change (0.25: +25 %)."""
        if self.previous is None:
            return None
        if self.previous.count == 0:
            return "new" if self.current.count else None
        return (self.current.count - self.previous.count) / self.previous.count

    @property
    def percent(self):
        """The change as a whole percentage (+25, -50; 0 for a change under half a percent),
        or None when change is not a number."""
        change = self.change
        if change is None or change == "new":
            return None
        return int(math.copysign(math.floor(abs(change) * 100 + 0.5), change))


def change_of(current, previous):
    """The same as Comparison.change, for two counts (pure)."""
    before = None if previous is None else Figure(previous)
    return Comparison("", "", Figure(current), before).change


# ------------------------------------------------------------------ bins

def bin_unit(days):
    """"day", "week" or "month": the chart's bin for a period of that many days."""
    if days <= MAX_DAYS_BY_DAY:
        return "day"
    if days <= MAX_DAYS_BY_WEEK:
        return "week"
    return "month"


def make_bins(first, last, unit, first_weekday=0):
    """[(bin_first, bin_last)] covering first..last; bins are clipped to the period.

    first_weekday: 0 for Monday ... 6 for Sunday (the locale's first day of the week).
    """
    bins = []
    day = first
    while day <= last:
        if unit == "day":
            end = day
        elif unit == "week":
            end = day + timedelta(days=(first_weekday - day.weekday() - 1) % 7)
        else:
            following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
            end = following - timedelta(days=1)
        end = min(end, last)
        bins.append((day, end))
        day = end + timedelta(days=1)
    return bins


# ------------------------------------------------------------------ the context

def dashboard_context(account, filters, tz, now=None):
    """Everything reports/dashboard.html shows, for the account's emails under filters."""
    # The dashboard splits by new/repeat and tracked itself; the other filters narrow.
    filters = replace(filters, status="", tracked="")
    base, invalid = filtered(account.id, replace(filters, period="all", date_from="",
                                                 date_to=""), tz)
    sites = db.session.scalars(
        select(Site).where(Site.account_id == account.id).order_by(Site.name, Site.id)).all()
    context = {
        "filters": filters,
        "invalid": invalid,
        "sites": sites,
        "period_choices": PERIOD_CHOICES,
        "series_labels": SERIES_LABELS,
        "setup": setup_box(account, sites),
    }
    has_emails = db.session.scalar(
        select(Email.id).where(Email.account_id == account.id).limit(1)) is not None
    context["empty_account"] = not has_emails
    if not has_emails:
        context["steps"] = setup_steps(account, sites)
        return context

    try:
        period = filters.period_in(tz, now)
        previous = period.previous(tz)
    except OverflowError:
        # Dates at the very ends of the calendar (0001-01-01, 9999-12-31) have no UTC
        # bounds: show all time rather than fail.
        filters = replace(filters, period="all", date_from="", date_to="")
        context["filters"] = filters
        period, previous = filters.period_in(tz, now), None
    shown = _shown_period(period, base, tz, now)
    context.update(period=shown, previous=previous,
                   **_figures(filters, base, shown, previous, tz))
    return context


def _shown_period(period, base, tz, now):
    """The period with both ends known: "all time" and open-ended custom periods run
    from the first email (or from today when there is none) to today."""
    if period.first is not None and period.last is not None:
        return period
    today = periods.today(tz, now)
    first, last = period.first, period.last
    if first is None:
        query = base.with_only_columns(Email.internaldate)
        if last is not None:
            query = query.where(Email.internaldate < period.end)
        earliest = db.session.scalar(query.order_by(Email.internaldate).limit(1))
        first = periods.local_day(earliest, tz) if earliest else (last or today)
    if last is None:
        last = max(today, first)
    first = min(first, last)
    if (last - first).days > periods.MAX_DAYS:
        first = last - timedelta(days=periods.MAX_DAYS)
    # The name stays what the user chose, so links keep asking for the same rows.
    return periods.between(period.name, first, last, tz)


def _bin(index):
    """The bin number as an SQL integer literal (an int of ours, never user text): a bind
    parameter in every arm of a UNION would have no type on some PostgreSQL drivers."""
    return literal_column(str(int(index)), Integer).label("bin")


def _figures(filters, base, period, previous, tz):
    """The summary, the channel and source tables and the chart, from two queries."""
    locale = get_locale()
    unit = bin_unit(len(period.days))
    bins = make_bins(period.first, period.last, unit, locale.first_week_day)

    # 1. New requests per bin of the period (and for the whole previous period, bin -1),
    #    per utm_source, each split into channels and "not tracked" by FILTER clauses: one
    #    pass over the index range per bin, no sort of the whole range. A local day's
    #    bounds come from the zone database, so DST days of 23 or 25 hours and
    #    half-hour zones count right.
    ranges = [(index, periods.to_utc(first, tz), periods.to_utc(last + timedelta(days=1), tz))
              for index, (first, last) in enumerate(bins)]
    if previous is not None:
        ranges.append((-1, previous.start, previous.end))
    columns = (
        func.count(),
        func.count().filter(Email.attribution.is_(None)),
        *(func.count().filter(Email.channel == channel) for channel in CHANNELS),
    )
    arms = [
        base.with_only_columns(_bin(index), Email.utm_source, *columns)
        .where(Email.counted.is_(True), Email.internaldate >= start, Email.internaldate < end)
        .group_by(Email.utm_source)
        for index, start, end in ranges
    ]
    per_bin = defaultdict(lambda: defaultdict(int))  # bin -> series -> new requests
    sources = {True: defaultdict(int), False: defaultdict(int)}  # current? -> source -> count
    for index, source, total, untracked, *by_channel in db.session.execute(union_all(*arms)):
        counts = per_bin[index]
        counts[UNTRACKED] += untracked
        for channel, count in zip(CHANNELS, by_channel):
            counts[channel] += count
        # Tracked emails whose source names no channel.
        counts[NO_CHANNEL] += total - untracked - sum(by_channel)
        if source:
            sources[index >= 0][source] += total

    # 2. All emails of each period (the index alone answers): repeats are the rest.
    everything = [
        base.with_only_columns(_bin(index), func.count())
        .where(Email.internaldate >= start, Email.internaldate < end)
        for index, start, end in ((0, period.start, period.end),
                                  *([(-1, previous.start, previous.end)] if previous else []))
    ]
    all_emails = dict(db.session.execute(union_all(*everything)).all())

    new = {True: defaultdict(int), False: defaultdict(int)}
    for index, counts in per_bin.items():
        for name, count in counts.items():
            new[index >= 0][name] += count
    total_now, total_before = sum(new[True].values()), sum(new[False].values())
    repeats_now = all_emails.get(0, 0) - total_now
    repeats_before = all_emails.get(-1, 0) - total_before

    links = _Links(filters, period, previous)

    def compare(key, label, counts_now, counts_before, **args):
        return Comparison(
            key, label, links.current(counts_now, **args),
            links.previous(counts_before, **args) if previous is not None else None)

    summary = {
        "new": compare("new", _l("New requests"), total_now, total_before, status="new"),
        UNTRACKED: compare(UNTRACKED, _l("Not tracked"), new[True][UNTRACKED],
                           new[False][UNTRACKED], status="new", tracked="no"),
        "repeats": compare("repeat", _l("Repeats"), repeats_now, repeats_before,
                           status="repeat"),
    }
    by_channel = [
        compare(name, SERIES_LABELS[name], new[True][name], new[False][name], status="new",
                **SERIES_ARGS[name])
        for name in SERIES
        if name in CHANNELS or new[True][name] or new[False][name]
    ]
    chart, table = _chart(unit, bins, per_bin, links, locale)
    return {"summary": summary, "by_channel": by_channel,
            "sources": _sources(sources[True], sources[False], links, previous is not None),
            "chart": chart, "table": table}


class _Links:
    """URLs of the emails list for a figure: the dashboard's filters, the period, and
    the figure's own filters (channel, status...)."""

    def __init__(self, filters, period, previous):
        self.filters = filters
        self.period = period
        self.previous_period = previous

    def url(self, **args):
        return url_for("reports.emails", **self.filters.args(**args))

    def current(self, count, **args):
        return Figure(count, self.url(**args) if count else None)

    def previous(self, count, **args):
        period = self.previous_period
        return self.days(count, period.first, period.last, **args)

    def days(self, count, first, last, **args):
        if not count:
            return Figure(count)
        return Figure(count, self.url(period="custom", date_from=first.isoformat(),
                                      date_to=last.isoformat(), **args))


def _sources(now, before, links, compared):
    """The top sources of the period (then of the previous one) and the rest as "other"."""
    ranked = sorted(set(now) | set(before), key=lambda s: (-now.get(s, 0), -before.get(s, 0), s))
    top, rest = ranked[:TOP_SOURCES], ranked[TOP_SOURCES:]

    def figure(count, maker, source):
        # The emails list reads utm_source trimmed and at most 200 characters long: a
        # value it would read differently gets no link rather than a wrong one.
        if source != source.strip()[:200]:
            return Figure(count)
        return maker(count, utm_source=source, status="new")

    rows = [
        Comparison(source, source, figure(now.get(source, 0), links.current, source),
                   figure(before.get(source, 0), links.previous, source) if compared else None)
        for source in top
    ]
    other = None
    if rest:
        # No filter of the emails list selects "every source but the top ten": no link.
        other = Comparison("other", _l("Other sources"), Figure(sum(now.get(s, 0) for s in rest)),
                           Figure(sum(before.get(s, 0) for s in rest)) if compared else None)
    return {"rows": rows, "other": other, "count": len(ranked)}


def _chart(unit, bins, per_bin, links, locale):
    """The stacked bar chart of new requests per bin and the table of the same figures."""
    shown = [name for name in SERIES
             if any(per_bin.get(index, {}).get(name) for index in range(len(bins)))]
    values = {index: per_bin.get(index, {}) for index in range(len(bins))}
    skeleton = {"day": "MMMd", "week": "MMMd", "month": "yMMM"}[unit]
    chart = charts.stacked_bars(
        [(index, format_skeleton(skeleton, first, locale=locale))
         for index, (first, _last) in enumerate(bins)],
        shown, values)

    def label(first, last):
        if unit == "day":
            return format_skeleton("yMMMEd", first, locale=locale)
        if unit == "month" and first.day == 1 and (last + timedelta(days=1)).day == 1:
            return format_skeleton("yMMMM", first, locale=locale)
        return "{} – {}".format(format_skeleton("yMMMd", first, locale=locale),
                                format_skeleton("yMMMd", last, locale=locale))

    rows = []
    for (first, last), bar in zip(bins, chart.bars):
        counts = values[bar.index]
        cells = {name: links.days(counts.get(name, 0), first, last, status="new",
                                  **SERIES_ARGS[name]) for name in shown}
        rows.append({"first": first, "last": last, "label": label(first, last), "bar": bar,
                     "cells": cells,
                     "total": links.days(sum(counts.get(n, 0) for n in shown), first, last,
                                         status="new")})
    totals = {name: links.current(sum(values[i].get(name, 0) for i in values), status="new",
                                  **SERIES_ARGS[name]) for name in shown}
    total = links.current(sum(f.count for f in totals.values()), status="new")
    return chart, {"unit": unit, "series": shown, "rows": rows, "totals": totals,
                   "total": total}


# ------------------------------------------------------------------ set-up

def last_page_views(site_ids):
    """{site id: the last page view the script reported}, for sites with any visit.

    A visit's last_seen_at moves on while it lasts; the newest visits of a site hold
    its last page view, so only the RECENT_VISITS newest (by id, on the site_id index)
    are read rather than every visit the site ever had.
    """
    seen = {}
    for site_id in site_ids:
        recent = (select(Visit.last_seen_at).where(Visit.site_id == site_id)
                  .order_by(Visit.id.desc()).limit(RECENT_VISITS).subquery())
        at = db.session.scalar(select(func.max(recent.c.last_seen_at)))
        if at is not None:
            seen[site_id] = at
    return seen


def setup_box(account, sites):
    """Per site its last page view, per mailbox its state and last sync."""
    seen = last_page_views([site.id for site in sites])
    mailboxes = db.session.scalars(
        select(Mailbox).join(Mailbox.credential).options(contains_eager(Mailbox.credential))
        .where(Mailbox.account_id == account.id).order_by(Credential.login, Mailbox.id)
    ).all()
    return {
        "sites": [(site, seen.get(site.id)) for site in sites],
        "mailboxes": mailboxes,
    }


def setup_steps(account, sites):
    """What an account without emails still has to set up, in order: (endpoint, done)."""
    def has(model):
        return db.session.scalar(
            select(model.id).where(model.account_id == account.id).limit(1)) is not None

    return [
        ("sites.new", bool(sites)),
        ("mailboxes.new", has(Mailbox)),
        ("blocks.new", has(Block)),
        ("rules.new", has(Rule)),
    ]

