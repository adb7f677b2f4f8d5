"""Reading the headers of hostile, malformed mail without ever giving up on a message."""

import binascii
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime

from tracker.addresses import canonical_address

# The header fields a sync fetches with BODY.PEEK[HEADER.FIELDS (...)].
FETCHED_FIELDS = (
    "MESSAGE-ID", "DATE", "FROM", "TO", "CC", "DELIVERED-TO", "X-ORIGINAL-TO", "SUBJECT",
    "IN-REPLY-TO", "REFERENCES",
)
RECIPIENT_FIELDS = ("Delivered-To", "X-Original-To", "To", "Cc")

MAX_SUBJECT = 1000
MAX_NAME = 200
MAX_MESSAGE_ID = 500
MAX_RECIPIENTS = 100
# Thread headers: the References ids kept (the last ones, nearest the message).
MAX_REFERENCES = 20
# Header values beyond this are cut before parsing: a 1 MB To: line is an attack, not mail.
MAX_HEADER = 64 * 1024

# No control characters: NUL in particular cannot be stored on PostgreSQL.
_MESSAGE_ID = re.compile(r"<([^<>\s\x00-\x1f\x7f-\x9f]{1,998})>")
# C0 and C1 control characters (tabs and line breaks are unfolded into spaces instead).
# Invisible and bidi characters (Cf) are kept as received: pages show names and
# subjects through the `visible` filter, and exports clean their cells.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
# C0 control bytes, dropped from undeclared 8-bit text before guessing its charset:
# a NUL inside a UTF-8 sequence must not turn the rest into Windows-1251 letters.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class ParsedHeaders:
    """What the service keeps of a message's headers."""

    message_id: str | None = None
    date: datetime | None = None  # naive UTC
    from_address: str | None = None
    from_name: str = ""
    subject: str = ""
    recipients: list[str] = field(default_factory=list)  # canonical, in header order
    # Every recipient with the header it came from: [[header, address], ...], in header order.
    recipient_fields: list[list[str]] = field(default_factory=list)
    fingerprint: str = ""  # Message-ID, else a digest of Date, From, To and Subject
    # The thread: the Message-ID this one answers, and the ids of the References header
    # (oldest first, at most MAX_REFERENCES, each at most MAX_MESSAGE_ID characters).
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)

    @property
    def recipient(self):
        """The address the message was delivered to, as best the headers tell."""
        return self.recipients[0] if self.recipients else None


def _bytes_to_text(raw, charset=None):
    """Decode header bytes by the declared charset, then UTF-8, then Windows-1251.

    Control bytes are dropped before the guessing: they are never text, and left in
    place they make valid UTF-8 (`\\xd0\\x00\\x97`) look like Windows-1251 letters.
    """
    if charset:
        try:
            return raw.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    raw = _CONTROL_BYTES.sub(b"", raw)
    for candidate in ("utf-8", "cp1251"):
        try:
            return raw.decode(candidate)
        except UnicodeDecodeError:
            continue
    return raw.decode("cp1251", "replace")


def _raw_text(value):
    """A header value as text: bytes are decoded as UTF-8, else Windows-1251."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return _bytes_to_text(value)
    return str(value)


def split_headers(raw):
    """Split a raw header block into (lowercase name, value bytes), unfolding lines.

    Written by hand rather than with the email package so that 8-bit bytes reach
    the charset fallback intact, and so that no header line can stop the parse.
    """
    fields = []
    for line in re.split(rb"\r?\n", raw):
        if not line.strip():
            if fields:
                break  # the blank line that ends the header block
            continue
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                if len(value) < MAX_HEADER:
                    fields[-1] = (name, value + b" " + line.strip())
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip() or b" " in name.strip():
            continue  # not a header line
        fields.append((name.strip().decode("ascii", "replace").lower(), value.strip()[:MAX_HEADER]))
    return fields


def decode_words(value):
    """Decode RFC 2047 encoded words in any charset; never raises."""
    text = _raw_text(value)
    if "=?" not in text:
        return _clean(text)
    try:
        parts = decode_header(text)
    except (HeaderParseError, binascii.Error, ValueError, IndexError, AssertionError):
        return _clean(text)
    out = []
    for chunk, charset in parts:
        out.append(_bytes_to_text(chunk, charset) if isinstance(chunk, bytes) else chunk)
    return _clean("".join(out))


def _clean(text):
    """Unfold, drop C0 and C1 control characters, collapse whitespace."""
    return " ".join(_CONTROL.sub("", text.replace("\r", " ").replace("\n", " ")).split())


def _parse_date(value):
    text = _raw_text(value).strip()
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _message_id(values):
    for value in values:
        found = _MESSAGE_ID.search(_raw_text(value))
        if found:
            return found.group(1)[:MAX_MESSAGE_ID]
        text = _clean(_raw_text(value))
        if text:
            return text.strip("<>")[:MAX_MESSAGE_ID] or None
    return None


def _thread_ids(values):
    """The `<id>` tokens of In-Reply-To or References values, in order, without repeats.

    Only bracketed ids without spaces or control characters count: free text (some
    clients put a name or a date in In-Reply-To) is no message id.
    """
    found = {}  # a dict keeps the order and finds repeats in constant time
    for value in values:
        for match in _MESSAGE_ID.finditer(_raw_text(value)):
            if len(match.group(1)) <= MAX_MESSAGE_ID:
                found[match.group(1)] = None
    return list(found)


# The two shapes nearly every address header has: `addr` and `Name <addr>` (name
# optionally quoted). They are read with one regex; anything else (lists, groups,
# comments, escapes) goes to email.utils.getaddresses, which is exact but slow.
_ADDR = r"[^\s<>,;:\"()\[\]\\@]+@[^\s<>,;:\"()\[\]\\@]+"
_BARE = re.compile(rf"\s*({_ADDR})\s*|\s*<({_ADDR})>\s*")
_NAMED = re.compile(rf'\s*(?:"([^"\\\r\n]*)"|([^"<>,;:()\[\]\\@\r\n]*?))\s*<({_ADDR})>\s*')


def simple_address(text):
    """(name, address) when text is a single plain `addr` or `Name <addr>`, else None."""
    found = _BARE.fullmatch(text)
    if found:
        return "", found.group(1) or found.group(2)
    found = _NAMED.fullmatch(text)
    if found:
        return (found.group(1) if found.group(1) is not None else found.group(2)), found.group(3)
    return None


def _address_pairs(texts):
    pairs = []
    for text in texts:
        simple = simple_address(text)
        if simple is not None:
            pairs.append(simple)
            continue
        try:
            pairs += getaddresses([text])
        except (ValueError, IndexError, TypeError):
            pass
    return pairs


# The last `<addr>` of a From value, with nothing but spaces after it.
_LAST_ADDR = re.compile(rf"<\s*({_ADDR})\s*>\s*\Z")


def _sender_pair(text):
    """(name, address) of a From value; the address may be "" when there is no usable one.

    Markup in an unquoted name (`<b>Ivan</b> <ivan@x>`, `Ivan <script> <ivan@x>`) splits
    it into junk addresses for getaddresses: then the last `<addr>` group is the address
    and the rest is the name. With no usable address at all (`MAILER DAEMON <>`), the
    name is kept.
    """
    simple = simple_address(text)
    if simple is not None:
        return simple
    try:
        pairs = getaddresses([text])
    except (ValueError, IndexError, TypeError):
        pairs = []
    usable = [(n, a) for n, a in pairs if canonical_address(decode_words(a))]
    if usable and len(usable) == len(pairs):
        return usable[0]
    last = _LAST_ADDR.search(text)
    if last:
        name = text[:last.start()].strip()
        if len(name) > 1 and name[0] == name[-1] == '"':
            name = name[1:-1]
        return name, last.group(1)
    if usable:
        return usable[0]
    for name, addr in pairs:
        if name.strip() or (addr.strip() and "@" not in addr):
            return name.strip() or addr.strip(), ""
    return "", ""


def _sender(values):
    """(canonical address or None, decoded name) of the first From value."""
    for value in values:
        name, addr = _sender_pair(_raw_text(value))
        address = canonical_address(decode_words(addr)) if addr else None
        name = decode_words(name)[:MAX_NAME]
        if address or name:
            return address, name
    return None, ""


def _addresses(values):
    """(canonical address, decoded name) pairs from address header values."""
    pairs = _address_pairs([_raw_text(v) for v in values])
    out = []
    for name, addr in pairs:
        canonical = canonical_address(decode_words(addr))
        if canonical:
            out.append((canonical, decode_words(name)[:MAX_NAME]))
    return out


def parse_headers(raw):
    """Parse a header block (bytes) into ParsedHeaders, keeping whatever could be read."""
    if not isinstance(raw, bytes):
        raw = str(raw or "").encode("utf-8", "replace")
    fields = {}
    for key, value in split_headers(raw):
        fields.setdefault(key, []).append(value)
    headers = ParsedHeaders()

    def values(name):
        return fields.get(name.lower(), [])

    def first(name):
        found = values(name)
        return found[0] if found else b""

    headers.message_id = _message_id(values("Message-ID"))
    headers.date = _parse_date(first("Date"))
    headers.from_address, headers.from_name = _sender(values("From"))
    headers.subject = decode_words(first("Subject"))[:MAX_SUBJECT]
    seen, by_field = [], []
    for name in RECIPIENT_FIELDS:
        for address, _name in _addresses(values(name)):
            if len(by_field) < MAX_RECIPIENTS and [name, address] not in by_field:
                by_field.append([name, address])
            if address not in seen and len(seen) < MAX_RECIPIENTS:
                seen.append(address)
    headers.recipients = seen
    replied = _thread_ids(values("In-Reply-To"))
    headers.in_reply_to = replied[0] if replied else None
    # The last ids are the nearest ancestors: those are kept when there are too many.
    headers.references = _thread_ids(values("References"))[-MAX_REFERENCES:]
    headers.recipient_fields = by_field
    headers.fingerprint = headers.message_id or digest(
        [first("Date"), first("From"), first("To"), first("Subject")]
    )
    return headers


def digest(parts):
    """A stable identity for a message without a Message-ID."""
    return "sha256:" + hashlib.sha256(b"\x00".join(parts)).hexdigest()
