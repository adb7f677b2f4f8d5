"""Text from outside cleaned at the door, before it is queued or stored.

Control characters have no place in a URL, a referrer, a utm value, an address or a
user agent, and PostgreSQL cannot store NUL at all (one such value once stopped every
later page view from being written). Lone surrogates cannot be encoded as UTF-8
either. They are removed, not refused: a page view stays counted whatever its URL
carries.
"""

import re

# C0 controls (tab and newline too: none of these values has lines), DEL, C1 controls,
# lone surrogates.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def one_line(text):
    """`text` without control characters or lone surrogates."""
    return _CONTROL.sub("", text)
