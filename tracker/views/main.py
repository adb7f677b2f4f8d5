"""The start page: the dashboard once signed in, else the sign-in form."""

from flask import Blueprint, redirect, url_for
from flask_login import current_user

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        from tracker.views.reports import dashboard

        return dashboard()
    return redirect(url_for("auth.login"))
