"""The demo's emails: who writes to which address they were shown, when, and in which words.

Each message is the raw header block a mail server would hand the sync (RFC 2047
encoded names and subjects, in UTF-8, KOI8-R or Windows-1251), so the sync's own
parser reads it. Visitors write to the address they saw; some write again within
the repeat period (a repeat), some days later (a new request, and for a pool
address one whose lease has ended); suppliers and old customers write to the
mailbox's own address, which no rule shows.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr

from tracker.demo import content
from tracker.demo.traffic import DAY_MS, DAYS, day_seconds

MINUTE_MS, HOUR_MS = 60_000, 3_600_000
FOLLOW_UP_SHARE = 0.22
LATER_SHARE, POOL_LATER_SHARE = 0.12, 0.4
CC_SHARE = 0.1
UNTRACKED_SHARE = 0.06  # of the visits
UNTRACKED_REPEAT_SHARE = 0.3
RU_ZONES = (timezone(timedelta(hours=3)),) * 4 + (timezone(timedelta(hours=5)),)
EN_ZONES = (UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)))


@dataclass
class Person:
    """Someone who writes: display name (may be empty), address, language, time zone."""

    name: str
    address: str
    lang: str
    zone: timezone
    charset: str = "utf-8"


@dataclass
class Message:
    """One email as the server has it: when it arrived (ms), in which mailbox, its headers."""

    at_ms: int
    mailbox: str  # "main" or "lead"
    headers: bytes
    size: int

    @property
    def internaldate(self):
        """The arrival time as naive UTC, as the sync stores INTERNALDATE."""
        return datetime.fromtimestamp(self.at_ms / 1000, UTC).replace(tzinfo=None)


def _charset(text, preferred):
    """The sender's charset when it can carry the text (KOI8-R has no « or —), else UTF-8."""
    try:
        text.encode(preferred)
    except UnicodeEncodeError:
        return "utf-8"
    return preferred


def mailbox_of(address):
    """Which demo mailbox receives an address: the catch-all domain has its own."""
    return "lead" if address.endswith("@" + content.LEAD_DOMAIN) else "main"


class Writer:
    """Makes people and messages from one seeded random.Random."""

    def __init__(self, rng):
        self.rng = rng
        self.taken = set()
        self.numbers = itertools.count(1041)  # order and invoice numbers

    def unique_address(self, local, domain):
        """local@domain, or with a number when someone has it already."""
        address = f"{local}@{domain}"
        while address in self.taken:
            address = f"{local}{self.rng.randint(2, 99)}@{domain}"
        self.taken.add(address)
        return address

    def person(self, lang):
        """A new customer with a name in their language and an address nobody else has."""
        rng = self.rng
        if lang == "en":
            first, last = rng.choice(content.EN_FIRST), rng.choice(content.EN_LAST)
            name, first_lat, last_lat = f"{first} {last}", first.lower(), last.lower()
            domain, zone = rng.choice(content.EN_MAIL_DOMAINS), rng.choice(EN_ZONES)
            charset = "utf-8"
        else:
            woman = rng.random() < 0.5
            first, first_lat = rng.choice(content.RU_WOMEN if woman else content.RU_MEN)
            man_form, woman_form, last_lat = rng.choice(content.RU_SURNAMES)
            name = f"{first} {woman_form if woman else man_form}"
            if woman and last_lat.endswith(("ov", "ev", "in")):
                last_lat += "a"
            domain, zone = rng.choice(content.RU_MAIL_DOMAINS), rng.choice(RU_ZONES)
            charset = rng.choices(("utf-8", "koi8-r", "windows-1251"), (8, 1, 1))[0]
        if rng.random() < 0.12:  # writes from work
            company, domain = rng.choice(content.COMPANIES)
            if lang != "en" and not company.isascii():
                name = f"{name} ({company})"
        local = rng.choice((f"{first_lat}.{last_lat}", f"{first_lat[0]}{last_lat}",
                            f"{last_lat}.{first_lat[0]}", f"{first_lat}{rng.randint(70, 99)}"))
        if rng.random() < 0.12:
            name = ""  # no display name, only the address
        return Person(name, self.unique_address(local, domain), lang, zone, charset)

    def subject(self, lang, category):
        subjects = content.EN_SUBJECTS if lang == "en" else content.RU_SUBJECTS
        return self.rng.choice(subjects[category])

    def follow_up(self, lang, subject, later=False):
        if later:
            options = content.EN_LATER if lang == "en" else content.RU_LATER
        else:
            options = content.EN_FOLLOW_UPS if lang == "en" else content.RU_FOLLOW_UPS
        return self.rng.choice(options).format(subject=subject)

    def message(self, person, to, subject, at_ms, cc=()):
        """The message `person` sent to `to`, arriving at at_ms."""
        rng = self.rng
        sent = datetime.fromtimestamp(at_ms / 1000 - rng.randint(2, 90), UTC)
        domain = person.address.rpartition("@")[2]
        lines = [
            f"Message-ID: <{rng.getrandbits(64):016x}.{next(self.numbers)}@{domain}>",
            f"Date: {format_datetime(sent.astimezone(person.zone))}",
            "From: " + (formataddr((person.name, person.address),
                                   charset=_charset(person.name, person.charset))
                        if person.name else person.address),
            f"To: {to}",
        ]
        if cc:
            lines.append("Cc: " + ", ".join(cc))
        if subject:
            text = subject
            if not subject.isascii():
                text = Header(subject, _charset(subject, person.charset),
                              header_name="Subject").encode(linesep="\r\n")
            lines.append(f"Subject: {text}")
        headers = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        body = rng.randint(1_500, 60_000) if rng.random() < 0.9 else rng.randint(200_000, 2_000_000)
        return Message(at_ms, mailbox_of(to), headers, len(headers) + body)


def visit_emails(writer, visits, anchor_ms, now_ms):
    """The emails visitors write to the addresses the site showed them."""
    rng, out = writer.rng, []
    for visit in visits:
        if visit.visitor.bot or rng.random() >= visit.source.conversion:
            continue
        page = rng.randrange(len(visit.pages))
        to = visit.shown[page]
        if not to:
            continue
        # Past days end at midnight and the last hours at now, so no email is in the future.
        limit = now_ms - MINUTE_MS if visit.recent else anchor_ms
        at = visit.pages[page][0] + rng.randint(40, 720) * 1000
        if at >= limit:
            continue
        visitor = visit.visitor
        person = visitor.person = visitor.person or writer.person(visitor.lang)
        subject = writer.subject(person.lang, visit.category)
        cc = ()
        if rng.random() < CC_SHARE:
            cc = (writer.unique_address("zakaz", person.address.rpartition("@")[2]),)
        out.append(writer.message(person, to, subject, at, cc))
        if rng.random() < FOLLOW_UP_SHARE:  # within the repeat period: a repeat
            again = at + rng.randint(20, 20 * 60) * MINUTE_MS
            if again < limit:
                out.append(writer.message(person, to, writer.follow_up(person.lang, subject),
                                          again))
        if rng.random() < (POOL_LATER_SHARE if visit.source.pool else LATER_SHARE):
            # Days later to the same address: a new request; to a pool address, one whose
            # lease has ended (beyond a week, not even its last holder is known).
            days = 10 if visit.source.pool else 6
            later = at + rng.randint(36 * 60, days * 24 * 60) * MINUTE_MS
            if later < limit:
                out.append(writer.message(
                    person, to, writer.follow_up(person.lang, subject, later=True), later))
    return out


def untracked_emails(writer, visits, anchor_ms, own_address):
    """Mail to the mailbox's own address: suppliers, and customers who kept it from before."""
    rng, out = writer.rng, []
    for _ in range(max(4, round(visits * UNTRACKED_SHARE))):
        at = anchor_ms - rng.randint(1, DAYS) * DAY_MS + day_seconds(rng) * 1000
        if rng.random() < 0.5:
            name, address, subject = rng.choice(content.SUPPLIERS)
            person = Person(name, address, "ru", RU_ZONES[0])
            subject = subject.format(n=next(writer.numbers))
        else:
            lang = "en" if rng.random() < 0.2 else "ru"
            person = writer.person(lang)
            subject = rng.choice(content.UNTRACKED_CUSTOMER).format(n=next(writer.numbers))
        out.append(writer.message(person, own_address, subject, at))
        if rng.random() < UNTRACKED_REPEAT_SHARE:  # sent twice the same day: a repeat
            again = at + rng.randint(15, 8 * 60) * MINUTE_MS
            if again < anchor_ms:
                out.append(writer.message(person, own_address, f"Re: {subject}", again))
    return out


def emails(rng, visits, anchor_ms, now_ms, own_address):
    """Every demo email, in arrival order."""
    writer = Writer(rng)
    found = visit_emails(writer, visits, anchor_ms, now_ms)
    found += untracked_emails(writer, len(visits), anchor_ms, own_address)
    return sorted(found, key=lambda m: m.at_ms)
