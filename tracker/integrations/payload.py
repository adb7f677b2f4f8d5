"""One email as JSON: what webhooks send and the read API answers.

The shape is part of the public interface (receivers and API clients parse it):
add fields, never rename or drop them. Times are ISO 8601 in UTC with a "Z".
Codes (attribution kind, channel, uncertain reason) are the stored codes, not
translated words, so that a receiver can rely on them.

The visit part is the snapshot the email kept when it was attributed
(Email.source): it survives the visit being deleted later.
"""

from tracker.extensions import db
from tracker.models import Rule, Visit
from tracker.models.visits import UTM_FIELDS

# The source fields an attributed email keeps (Visit.source), in output order.
VISIT_FIELDS = ("landing_url", "referrer", *UTM_FIELDS, "channel", "ga_client_id",
                "ym_client_id")


def iso(value):
    """A naive UTC datetime as ISO 8601 with a Z (None stays None)."""
    if value is None:
        return None
    return value.replace(microsecond=0).isoformat() + "Z"


def _text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _owned(model, row_id, account_id):
    if row_id is None:
        return None
    row = db.session.get(model, row_id)
    return row if row is not None and row.account_id == account_id else None


def attribution_payload(email, rule=None):
    """How the email got its source: the rule, how (the stored kind), certain or not."""
    if not email.tracked:
        return None
    rule = rule if rule is not None else _owned(Rule, email.rule_id, email.account_id)
    return {
        # static, subaddress, catchall, pool or fallback.
        "how": email.attribution,
        "rule": {"id": rule.id, "name": rule.name} if rule is not None else None,
        "tracked_address": email.tracked_address,
        "certain": email.uncertain is None,
        # Why it is a guess ("lease_ended": the pool address's lease had ended), or None.
        "uncertain_reason": email.uncertain,
        # The earlier email whose thread this one continues (it took that attribution).
        "thread_of": email.thread_of,
    }


def visit_payload(email, visit=None):
    """The visit behind the email: its kept source snapshot, and the visit's id and time."""
    source = email.source if isinstance(email.source, dict) else None
    if source is None and email.visit_id is None:
        return None
    visit = visit if visit is not None else _owned(Visit, email.visit_id, email.account_id)
    fields = {name: _text((source or {}).get(name)) for name in VISIT_FIELDS}
    if not fields["channel"] and email.channel:
        fields["channel"] = email.channel
    return {
        "id": email.visit_id,
        "started_at": iso(visit.started_at) if visit is not None else None,
        **fields,
    }


def email_payload(email, rule=None, visit=None):
    """The email as a JSON-ready dict (rule and visit: pass them when already loaded)."""
    return {
        "id": email.id,
        "time": iso(email.internaldate),
        "mailbox_id": email.mailbox_id,
        "message_id": email.message_id,
        "sender": {"address": email.from_address, "name": email.from_name or ""},
        "recipients": list(email.recipients or []),
        "recipient": email.recipient,
        "subject": email.subject or "",
        # A new request (counted) or a repeat within the mailbox's repeat period.
        "new_request": bool(email.counted),
        "status": "new" if email.counted else "repeat",
        "attribution": attribution_payload(email, rule),
        "visit": visit_payload(email, visit),
    }
