"""Parsing and normalising the domains that users type (pure functions)."""

import ipaddress
import re
from urllib.parse import urlsplit

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SPLIT = re.compile(r"[\s,;]+")


class DomainError(ValueError):
    """A domain that cannot be used; str() is a message for the user."""


def normalize_domain(text):
    """Return the lowercase ASCII (IDNA) form of a domain typed as a host or a URL.

    Accepts "Example.COM", "https://www.example.com/path", "пример.рф",
    "localhost" and IPv4 addresses; rejects everything else with DomainError.
    """
    raw = (text or "").strip()
    if not raw:
        raise DomainError("empty")
    # Strip a scheme, a path, a port and user info, as if it were a URL.
    candidate = raw if "//" in raw else "//" + raw
    try:
        host = urlsplit(candidate).hostname
    except ValueError:
        host = None
    if not host:
        raise DomainError(raw)
    host = host.rstrip(".")
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    if host == "localhost":
        return host
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError):
        raise DomainError(raw) from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise DomainError(raw)
    if labels[-1].isdigit():
        raise DomainError(raw)
    return ascii_host


def display_domain(ascii_host):
    """The Unicode form of a stored domain, for showing to people."""
    try:
        return idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        return ascii_host


def split_domains(text):
    """Split user input into domain candidates (lines, commas, spaces)."""
    return [part for part in _SPLIT.split(text or "") if part]


def parse_domains(text):
    """Normalise a list of domains typed by a user.

    Returns (domains, invalid): the distinct normalised domains in input order,
    and the parts that are not domains.
    """
    domains, invalid = [], []
    for part in split_domains(text):
        try:
            domain = normalize_domain(part)
        except DomainError:
            invalid.append(part)
            continue
        if domain not in domains:
            domains.append(domain)
    return domains, invalid
