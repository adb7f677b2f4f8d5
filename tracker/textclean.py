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


# In forms only NUL, which no database column of PostgreSQL can hold: other control
# characters are left to the forms, several of which refuse them with a message.
_FORM_CONTROL = re.compile("[\x00\ud800-\udfff]")


# Fields whose exact value matters (a mailbox's login and password): never altered,
# their forms refuse control characters with a message instead.
_KEPT = re.compile(r"password|login", re.I)


def _cleaned(data, pattern):
    """An ImmutableMultiDict without the characters of `pattern`, or None if it had none."""
    from werkzeug.datastructures import ImmutableMultiDict

    items = list(data.items(multi=True))
    if not any(pattern.search(v) for k, v in items if not _KEPT.search(k)):
        return None
    return ImmutableMultiDict([(k, v if _KEPT.search(k) else pattern.sub("", v))
                               for k, v in items])


def clean_request():
    """Before every page request: the query string without control characters and the
    posted form without NUL (login and password fields are left to their forms'
    checks), so that no view stores a NUL (PostgreSQL refuses it: a 500). The public
    API cleans its own fields."""
    from flask import request

    req = request._get_current_object()
    if req.blueprint == "api":
        return
    if req.args and (args := _cleaned(req.args, _CONTROL)) is not None:
        req.args = args
    if req.method in ("POST", "PUT", "PATCH") and req.mimetype in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        if (form := _cleaned(req.form, _FORM_CONTROL)) is not None:
            req.form = form


def init_app(app):
    app.before_request(clean_request)
