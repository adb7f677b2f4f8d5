"""Secrets at rest: stored passwords are MultiFernet tokens under FERNET_KEYS (newest first)."""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

__all__ = ["InvalidToken", "decrypt", "encrypt", "rotate"]


def _fernet(keys=None):
    """The MultiFernet of the configured keys: it encrypts with the first, decrypts with any."""
    keys = keys if keys is not None else current_app.config["FERNET_KEYS"]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(text, keys=None):
    """Encrypt a string under the newest key; returns the token as text."""
    return _fernet(keys).encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token, keys=None):
    """Decrypt a token made by encrypt(); raises InvalidToken when no key fits."""
    return _fernet(keys).decrypt(token.encode("ascii")).decode("utf-8")


def rotate(token, keys=None):
    """Re-encrypt a token under the newest key (raises InvalidToken when no key fits)."""
    return _fernet(keys).rotate(token.encode("ascii")).decode("ascii")
