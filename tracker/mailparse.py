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
)
RECIPIENT_FIELDS = ("Delivered-To", "X-Original-To", "To", "Cc")

MAX_SUBJECT = 1000
MAX_NAME = 200
MAX_MESSAGE_ID = 500
MAX_RECIPIENTS = 100
# Header values beyond this are cut before parsing: a 1 MB To: line is an attack, not mail.
MAX_HEADER = 64 * 1024

# No control characters: NUL in particular cannot be stored on PostgreSQL.
_MESSAGE_ID = re.compile(r"<([^<>\s\x00-\x1f\x7f]{1,998})>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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

    @property
    def recipient(self):
        """The address the message was delivered to, as best the headers tell."""
        return self.recipients[0] if self.recipients else None


def _bytes_to_text(raw, charset=None):
    """Decode header bytes by the declared charset, then UTF-8, then Windows-1251."""
    for candidate in (charset, "utf-8", "cp1251"):
        if not candidate:
            continue
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1")


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
    """Unfold, drop control characters, collapse whitespace."""
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
    senders = _addresses(values("From"))
    if senders:
        headers.from_address, headers.from_name = senders[0]
    headers.subject = decode_words(first("Subject"))[:MAX_SUBJECT]
    seen, by_field = [], []
    for name in RECIPIENT_FIELDS:
        for address, _name in _addresses(values(name)):
            if len(by_field) < MAX_RECIPIENTS and [name, address] not in by_field:
                by_field.append([name, address])
            if address not in seen and len(seen) < MAX_RECIPIENTS:
                seen.append(address)
    headers.recipients = seen
    headers.recipient_fields = by_field
    headers.fingerprint = headers.message_id or digest(
        [first("Date"), first("From"), first("To"), first("Subject")]
    )
    return headers


def digest(parts):
    """A stable identity for a message without a Message-ID."""
    return "sha256:" + hashlib.sha256(b"\x00".join(parts)).hexdigest()
