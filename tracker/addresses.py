"""Email addresses in one canonical form, so that headers, rules and reports agree."""

import re
import unicodedata

import idna

# Whitespace and control characters (C0, DEL, C1) never belong in a stored address.
_UNUSABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def canonical_address(text):
    """Return `local@domain` lowercased with a Unicode (not punycode) domain, or None.

    Accepts what appears in headers: surrounding spaces and angle brackets, an
    uppercase or IDNA-encoded domain. Anything without exactly one usable `@`
    gives None.
    """
    if not text:
        return None
    value = unicodedata.normalize("NFC", str(text).strip().strip("<>").strip())
    if value.count("@") != 1:
        return None
    local, domain = value.split("@")
    domain = domain.rstrip(".").lower()
    if not local or not domain or len(value) > 320 or _UNUSABLE.search(value):
        return None
    if "xn--" in domain:
        try:
            domain = idna.decode(domain)
        except (idna.IDNAError, UnicodeError):
            pass
    return f"{local.lower()}@{domain}"


def address_domain(address):
    """The domain part of a canonical address."""
    return address.rsplit("@", 1)[1] if address and "@" in address else None
