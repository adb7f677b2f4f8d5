"""Tokens for dynamic addresses, and the addresses built from them (pure functions).

A token is short, random (from `secrets`) and easy to read aloud or retype:
lowercase letters and digits without the look-alikes 0/o and 1/l/i.
"""

import re
import secrets

ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
# 31 symbols ** 10 ≈ 8e14 (49 bits): guessing a live token is hopeless.
LENGTH = 10
_CUTOFF = 256 - 256 % len(ALPHABET)  # 248: bytes below it map evenly onto the alphabet
ATTEMPTS = 20

_TOKEN = re.compile(rf"^[{ALPHABET}]{{{LENGTH}}}$")


class TokenSpaceExhausted(RuntimeError):
    """Every attempt produced a token that already exists (a broken `exists` callback?)."""


def random_token(length=LENGTH):
    """One random token; not checked for uniqueness.

    Random bytes below _CUTOFF give every symbol the same chance; the others are
    dropped, so a few spare bytes are read.
    """
    symbols = []
    while len(symbols) < length:
        symbols += [ALPHABET[byte % len(ALPHABET)]
                    for byte in secrets.token_bytes(length + 4) if byte < _CUTOFF]
    return "".join(symbols[:length])


def new_token(exists, length=LENGTH, attempts=ATTEMPTS):
    """A token for which `exists(token)` is false (e.g. not yet used on this site).

    The caller should still store it under a unique constraint: two requests can
    draw the same token between the check and the insert.
    """
    for _ in range(attempts):
        token = random_token(length)
        if not exists(token):
            return token
    raise TokenSpaceExhausted(f"no free token after {attempts} attempts")


def is_token(text):
    """Whether text has the shape of a token (case-insensitive, as mail systems may change case)."""
    return bool(_TOKEN.match((text or "").lower()))


def sub_address(base, token):
    """`local+token@domain` for the base address `local@domain`."""
    local, _, domain = base.rpartition("@")
    return f"{local}+{token}@{domain}"


def catch_all_address(domain, token):
    """`token@domain` for a catch-all domain."""
    return f"{token}@{domain}"
