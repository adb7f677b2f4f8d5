"""CSS selectors for block elements, built from an attribute and its value (pure functions).

Escaping follows the CSSOM spec: identifiers as `CSS.escape()` serialises them,
attribute values as quoted CSS strings.
"""

import re

KINDS = ("id", "class", "other")
MAX_NAME = 100
MAX_VALUE = 500
MAX_SELECTOR = 1000

# HTML attribute names as people write them: data-*, aria-*, itemprop, xml:lang.
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_WHITESPACE = re.compile(r"[ \t\n\f\r]+")


class SelectorError(ValueError):
    """Input that cannot become a selector; `reason` says why (for a translated message)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _hex(char):
    return f"\\{ord(char):x} "


def css_identifier(text):
    """Serialise text as a CSS identifier, like the browser's `CSS.escape()`."""
    out = []
    for index, char in enumerate(text):
        code = ord(char)
        if code == 0:
            out.append("\ufffd")
        elif 0x01 <= code <= 0x1F or code == 0x7F:
            out.append(_hex(char))
        elif index == 0 and char.isascii() and char.isdigit():
            out.append(_hex(char))
        elif index == 1 and char.isascii() and char.isdigit() and text[0] == "-":
            out.append(_hex(char))
        elif index == 0 and char == "-" and len(text) == 1:
            out.append("\\-")
        elif code >= 0x80 or char in "-_" or (char.isascii() and char.isalnum()):
            out.append(char)
        else:
            out.append("\\" + char)
    return "".join(out)


def css_string(text):
    """Serialise text as a double-quoted CSS string (quotes, backslashes and newlines escaped)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if code == 0:
            out.append("\ufffd")
        elif 0x01 <= code <= 0x1F or code == 0x7F:
            out.append(_hex(char))
        elif char in '"\\':
            out.append("\\" + char)
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def build_selector(kind, value, name=None):
    """The CSS selector for an element with attribute `kind` (id, class or other) = value.

    - id: `#value`; the value may not contain whitespace.
    - class: `.a.b`; several classes separated by spaces must all be present.
    - other: `[name="value"]`; `name` must be an HTML attribute name.

    Raises SelectorError with reason one of: kind, empty, control, spaces, name, too_long.
    """
    if kind not in KINDS:
        raise SelectorError("kind")
    value = (value or "").strip()
    if not value:
        raise SelectorError("empty")
    if len(value) > MAX_VALUE:
        raise SelectorError("too_long")
    if _CONTROL.search(value):
        raise SelectorError("control")
    if kind == "id":
        if _WHITESPACE.search(value):
            raise SelectorError("spaces")
        selector = "#" + css_identifier(value)
    elif kind == "class":
        selector = "".join("." + css_identifier(part) for part in _WHITESPACE.split(value))
    else:
        name = (name or "").strip()
        if not name or len(name) > MAX_NAME or not _ATTRIBUTE_NAME.match(name):
            raise SelectorError("name")
        selector = f"[{css_identifier(name)}={css_string(value)}]"
    if len(selector) > MAX_SELECTOR:
        raise SelectorError("too_long")
    return selector
