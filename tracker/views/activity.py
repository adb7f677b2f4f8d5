"""Settings → Activity log (owners): who created, changed or deleted what, and the
account's email that could not be sent."""

from flask import Blueprint
from flask_login import current_user
from sqlalchemy import select

from tracker import activity
from tracker.extensions import db
from tracker.models import ActivityEntry, OutgoingMail
from tracker.security import require_role
from tracker.views.helpers import paginate, render

bp = Blueprint("activity", __name__, url_prefix="/settings/activity")

FAILED_SHOWN = 50


@bp.get("/")
@require_role("owner")
def index():
    page = paginate(select(ActivityEntry)
                    .where(ActivityEntry.account_id == current_user.account_id)
                    .order_by(ActivityEntry.created_at.desc(), ActivityEntry.id.desc()))
    failed = db.session.scalars(
        select(OutgoingMail).where(OutgoingMail.account_id == current_user.account_id,
                                   OutgoingMail.state == "failed")
        .order_by(OutgoingMail.failed_at.desc(), OutgoingMail.id.desc()).limit(FAILED_SHOWN)).all()
    pending = db.session.scalars(
        select(OutgoingMail).where(OutgoingMail.account_id == current_user.account_id,
                                   OutgoingMail.state == "pending", OutgoingMail.attempts > 0)
        .order_by(OutgoingMail.id.desc()).limit(FAILED_SHOWN)).all()
    return render("activity/index.html", block="results", page=page, failed=failed,
                  retrying=pending, actions=activity.ACTIONS, types=activity.TYPE_NAMES)
