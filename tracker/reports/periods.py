"""Report periods in the account's time zone, as naive UTC bounds (pure)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("today", "yesterday", "7d", "30d", "custom", "all")
# The longest custom period a report accepts, so a typo cannot ask for ten thousand years.
MAX_DAYS = 3660


def zone(name):
    """The ZoneInfo of an IANA name; UTC for an unknown or empty one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_utc(day, tz):
    """Local midnight at the start of `day` as naive UTC."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def local_day(at, tz):
    """The local date of a naive UTC datetime."""
    return at.replace(tzinfo=UTC).astimezone(tz).date()


def today(tz, now=None):
    now = now or datetime.now(UTC).replace(tzinfo=None)
    return local_day(now, tz)


def parse_day(text):
    """A YYYY-MM-DD date between 1970 and 2999, or None (the ends of the calendar cannot
    be moved to UTC, and no email is from there)."""
    try:
        day = date.fromisoformat((text or "").strip()[:10])
    except ValueError:
        return None
    return day if 1970 <= day.year <= 2999 else None


@dataclass(frozen=True)
class Period:
    """Days first..last (inclusive, local) and their UTC bounds [start, end); None: unbounded."""

    name: str
    first: date | None
    last: date | None
    start: datetime | None
    end: datetime | None

    @property
    def days(self):
        """The local days of the period, in order (empty when unbounded)."""
        if self.first is None or self.last is None:
            return []
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def previous(self, tz):
        """The period of the same length just before this one (None when unbounded)."""
        if self.first is None or self.last is None:
            return None
        length = (self.last - self.first).days + 1
        last = self.first - timedelta(days=1)
        return between("previous", last - timedelta(days=length - 1), last, tz)


def between(name, first, last, tz):
    start = to_utc(first, tz) if first else None
    end = to_utc(last + timedelta(days=1), tz) if last else None
    return Period(name, first, last, start, end)


def resolve(name, date_from=None, date_to=None, tz=None, now=None):
    """The period `name` (one of PERIODS) in zone tz; custom uses date_from..date_to."""
    tz = tz or ZoneInfo("UTC")
    day = today(tz, now)
    if name == "today":
        return between(name, day, day, tz)
    if name == "yesterday":
        return between(name, day - timedelta(days=1), day - timedelta(days=1), tz)
    if name == "7d":
        return between(name, day - timedelta(days=6), day, tz)
    if name == "30d":
        return between(name, day - timedelta(days=29), day, tz)
    if name == "custom" and (date_from or date_to):
        if date_from and date_to and date_from > date_to:
            date_from, date_to = date_to, date_from
        if date_from and date_to and (date_to - date_from).days > MAX_DAYS:
            date_from = date_to - timedelta(days=MAX_DAYS)
        return between(name, date_from, date_to, tz)
    return Period("all", None, None, None, None)
