"""The activity log: `record(action, obj)` after a mailbox, credential, block, rule, site,
webhook or API token was created, changed or deleted.

Called right after the view's commit for created and changed objects, and right
before it for deleted ones (a deleted row can no longer be read afterwards):
the entry is added to the session and committed with the change, or on its own.
A failure to write the entry is logged and never fails the request.
"""

import logging

from flask import has_request_context
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError

from tracker.extensions import db
from tracker.models.activity import ActivityEntry

logger = logging.getLogger(__name__)

ACTIONS = {"created": _l("created"), "changed": _l("changed"), "deleted": _l("deleted"),
           "revoked": _l("revoked")}
OBJECTS = {
    "Mailbox": ("mailbox", _l("Mailbox")),
    "Credential": ("credential", _l("Credential")),
    "Block": ("block", _l("Block")),
    "Rule": ("rule", _l("Rule")),
    "Site": ("site", _l("Site")),
    "Webhook": ("webhook", _l("Webhook")),
    "ApiToken": ("api_token", _l("API token")),
}
TYPE_NAMES = dict(OBJECTS.values())


def label_of(obj):
    """The text the log shows for an object: its name, or its address or URL."""
    for attribute in ("name", "address", "url", "login"):
        value = getattr(obj, attribute, None)
        if value:
            return str(value)[:300]
    return ""


def record(action, obj, commit=True):
    """Log that the current user did `action` (a key of ACTIONS) to obj.

    commit=False only adds the entry: for a delete, call it before the view's commit.
    """
    if action not in ACTIONS:
        raise ValueError(action)
    object_type = OBJECTS[type(obj).__name__][0]
    user = current_user if has_request_context() and current_user.is_authenticated else None
    try:
        entry = ActivityEntry(
            account_id=obj.account_id, user_id=user.id if user else None,
            user_email=user.email if user else None, action=action, object_type=object_type,
            object_id=obj.id, object_label=label_of(obj))
        db.session.add(entry)
        if commit:
            db.session.commit()
        return entry
    except SQLAlchemyError:
        db.session.rollback()
        logger.exception("Activity entry not written: %s %s", action, object_type)
        return None
