"""Email addresses: typed by users into blocks and rules, or read from mail headers.

Both come out in one form (lowercase, Unicode domain), so that rules, headers and
reports agree. Pure functions.
"""

import re
import unicodedata

import idna

from email_validator import EmailNotValidError, validate_email

from tracker.domains import DomainError, normalize_domain

MAX_ADDRESS = 320
_SPLIT = re.compile(r"[\s,;]+")


class AddressError(ValueError):
    """Not an email address this service can use."""


def normalize_address(text):
    """The normalised form of an email address: IDN domains allowed, all lowercase.

    Local parts are lowercased too: mail services treat them so, and the
    service matches recipients by address. Raises AddressError for anything
    that is not a single plain address.
    """
    raw = (text or "").strip()
    if not raw or len(raw) > MAX_ADDRESS:
        raise AddressError(raw)
    try:
        return validate_email(raw, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise AddressError(raw) from None


def parse_addresses(text, keep_as_typed=False):
    """Addresses typed one per line (commas and spaces also separate).

    Returns (addresses, invalid): the distinct addresses in input order (normalised,
    or as typed with keep_as_typed) and the parts that are not addresses.
    """
    addresses, invalid, seen = [], [], set()
    for part in _SPLIT.split(text or ""):
        if not part:
            continue
        try:
            normalized = normalize_address(part)
        except AddressError:
            invalid.append(part)
            continue
        if normalized.casefold() not in seen:
            seen.add(normalized.casefold())
            addresses.append(part if keep_as_typed else normalized)
    return addresses, invalid


def canonical_address(text):
    """An address as found in a header, in the normalised form, or None.

    Lenient where validation is strict: headers carry angle brackets, uppercase
    and IDNA-encoded domains, and addresses that email_validator would refuse but
    that still name a real mailbox.
    """
    if not text:
        return None
    value = unicodedata.normalize("NFC", str(text).strip().strip("<>").strip())
    if (value.count("@") != 1 or len(value) > MAX_ADDRESS
            or any(c.isspace() or unicodedata.category(c) == "Cc" for c in value)):
        return None
    local, domain = value.split("@")
    domain = domain.rstrip(".").lower()
    if not local or not domain:
        return None
    if "xn--" in domain:
        try:
            domain = idna.decode(domain)
        except (idna.IDNAError, UnicodeError):
            pass
    return f"{local.lower()}@{domain}"


def address_domain(address):
    """The ASCII (IDNA) domain of an address, or "" when it has none."""
    domain = (address or "").rpartition("@")[2]
    try:
        return normalize_domain(domain)
    except DomainError:
        return ""


def unreceived(addresses, domains):
    """The addresses whose domain is not among `domains` (ASCII), in order, each once."""
    received = {d.lower() for d in domains}
    found = []
    for address in addresses:
        if address and address_domain(address) not in received and address not in found:
            found.append(address)
    return found
