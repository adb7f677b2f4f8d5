"""Settings → API tokens: create (shown once), list and revoke the account's read-API tokens."""

from flask import Blueprint, flash, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from tracker import activity
from tracker.extensions import db
from tracker.forms.apitokens import ApiTokenForm
from tracker.integrations import apitokens
from tracker.models import ApiToken
from tracker.views.helpers import get_owned, owned, redirect_to, render

bp = Blueprint("apitokens", __name__, url_prefix="/settings/api-tokens")


@bp.before_request
@login_required
def require_login():
    """Every token page needs a signed-in user."""


def _page(form, created=None, status=200):
    tokens = db.session.scalars(
        owned(ApiToken).order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc(),
                                 ApiToken.id.desc())).all()
    response = render("apitokens/index.html", form=form, tokens=tokens, created=created,
                      status=status)
    # The page may show a token in clear: keep it out of every cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/")
def index():
    return _page(ApiTokenForm())


@bp.post("/")
def create():
    form = ApiTokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    row, token = apitokens.create(current_user.account_id, form.name.data.strip(),
                                  user_id=current_user.id)
    activity.record("created", row)
    # Shown in this answer only: it is not stored and cannot be shown again.
    return _page(ApiTokenForm(formdata=None), created=(row, token), status=201)


@bp.post("/<int:token_id>/revoke")
def revoke(token_id):
    row = get_owned(ApiToken, token_id)
    if row.active:
        apitokens.revoke(row)
        activity.record("revoked", row)
    flash(_("Token “%(name)s” revoked: requests with it are refused from now on.",
            name=row.name), "success")
    return redirect_to(url_for("apitokens.index"))
