"""Text from outside (URLs, utm values, user agents, subjects) made safe to show.

Escaping is Jinja's job (autoescape; never `|safe`). This module removes what
escaping leaves through: characters that are invisible or that reorder the text
around them, such as the bidi controls U+202A–U+202E and U+2066–U+2069 (which
can make `moc.evil` read as `live.com`), the zero-width characters U+200B–U+200F,
U+2060 and U+FEFF, soft hyphens, tag characters, and C0/C1 control characters.

`visible(text)` is the pure function (exports can use it for their cells);
`init_app(app)` registers it as the template filter `visible`.
"""

import unicodedata

from markupsafe import Markup

# Removed: control characters (Cc), format characters (Cf: bidi controls, zero-width
# characters, U+FEFF, soft hyphen, tag characters...) and lone surrogates (Cs).
REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
# Line breaks and tabs become one space, so that words on either side stay apart.
AS_SPACE = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
# Letters (Lo) and symbols that draw nothing: filler characters used to fake blank text.
INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _kept(char):
    if char in AS_SPACE:
        return " "
    if char in INVISIBLE or unicodedata.category(char) in REMOVED_CATEGORIES:
        return ""
    return char


def visible(text):
    """`text` without invisible or direction-changing characters (None gives "").

    Markup stays Markup (removing characters adds no markup), anything else
    becomes a plain string that Jinja will escape as usual.
    """
    if text is None:
        return ""
    value = text if isinstance(text, str) else str(text)
    if value.isprintable() and INVISIBLE.isdisjoint(value):
        # Fast path: printable text has no Cc, Cf, Cs, Zl or Zp characters.
        cleaned = value
    else:
        cleaned = "".join(_kept(char) for char in value)
    if isinstance(text, Markup):
        return Markup(cleaned)
    return str(cleaned)


def short_url(url):
    """A URL for a narrow column: visible() text without the scheme and a leading www."""
    text = visible(url)
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    return text[4:] if text.startswith("www.") else text


def init_app(app):
    """Register `visible` and `short_url` as Jinja filters of the app."""
    app.add_template_filter(short_url, "short_url")
    app.add_template_filter(visible, "visible")
