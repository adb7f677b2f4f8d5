"""A visit's detail: its source, the device it came from, the addresses it was given,
what the script displayed, and the emails attributed to it.

Every related row is read with the visit's account in the query, so a row of
another account never shows up here even if ids were ever mixed up.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, func, select
from ua_parser import parse

from tracker.extensions import db
from tracker.forms.rules import CHANNEL_LABELS, MODE_LABELS
from tracker.models import Assignment, Block, Display, Email, Rule, Site
from tracker.models.visits import UTM_FIELDS
from tracker.reports.text import visible

# A visit has a handful of each; these bound a pathological one (a bot hammering a page).
MAX_ROWS = 200

# Assignment.kind: the rule's mode, or the fallback address of a full pool (and of bots).
ASSIGNMENT_KINDS = {**MODE_LABELS, "fallback": _l("Fallback address")}


@dataclass(frozen=True)
class Device:
    """What ua-parser made of a user agent (None where it could not tell)."""

    browser: str | None
    os: str | None
    device: str | None
    # ua-parser's device family "Spider": a crawler, whatever the visit's own bot flag says.
    spider: bool = False


def _version(*parts):
    numbers = []
    for part in parts:
        if not part:
            break
        numbers.append(part)
    return ".".join(numbers)


def _named(family, *parts):
    if not family or family == "Other":
        return None
    version = _version(*parts)
    return visible(f"{family} {version}" if version else family)


def parse_device(user_agent):
    """The browser, operating system and device of a user agent, parsed by ua-parser."""
    if not user_agent:
        return Device(None, None, None)
    result = parse(user_agent)
    browser = os = device = None
    spider = False
    if result.user_agent:
        ua = result.user_agent
        browser = _named(ua.family, ua.major)
    if result.os:
        os = _named(result.os.family, result.os.major, result.os.minor)
    if result.device:
        spider = result.device.family == "Spider"
        device = _named(result.device.family)
    return Device(browser, os, device, spider)


def web_link(url):
    """The URL when it is an http(s) address that is safe to put in href, else None."""
    url = visible(url).strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def _limited(query):
    rows = db.session.execute(query.limit(MAX_ROWS + 1)).all()
    return rows[:MAX_ROWS], len(rows) > MAX_ROWS


def visit_detail(visit):
    """The template context of /visits/<id> for a visit of the signed-in user's account."""
    account_id = visit.account_id
    site = db.session.scalar(
        select(Site).where(Site.id == visit.site_id, Site.account_id == account_id))
    assignments, more_assignments = _limited(
        select(Assignment, Rule.name)
        .outerjoin(Rule, and_(Rule.id == Assignment.rule_id, Rule.account_id == account_id))
        .where(Assignment.account_id == account_id, Assignment.visit_id == visit.id)
        .order_by(Assignment.assigned_at, Assignment.id))
    displays, more_displays = _limited(
        select(Display, Block.name)
        .outerjoin(Block, and_(Block.id == Display.block_id, Block.account_id == account_id))
        .where(Display.account_id == account_id, Display.visit_id == visit.id)
        .order_by(Display.at, Display.id))
    email_filter = (Email.account_id == account_id, Email.visit_id == visit.id)
    emails = db.session.scalars(
        select(Email).where(*email_filter)
        .order_by(Email.internaldate.desc(), Email.id.desc()).limit(MAX_ROWS)).all()
    email_total, new_emails = len(emails), sum(1 for email in emails if email.counted)
    if email_total == MAX_ROWS:
        email_total, new_emails = db.session.execute(
            select(func.count(), func.coalesce(func.sum(case((Email.counted, 1), else_=0)), 0))
            .select_from(Email).where(*email_filter)).one()
    return {
        "site": site,
        "channel_label": CHANNEL_LABELS.get(visit.channel) or visible(visit.channel),
        "utm_fields": UTM_FIELDS,
        "assignment_kinds": ASSIGNMENT_KINDS,
        "max_rows": MAX_ROWS,
        "device": parse_device(visit.user_agent),
        "landing_link": web_link(visit.landing_url),
        "referrer_link": web_link(visit.referrer),
        "assignments": assignments,
        "more_assignments": more_assignments,
        "displays": displays,
        "more_displays": more_displays,
        "emails": emails,
        "email_total": email_total,
        "new_emails": new_emails,
    }
