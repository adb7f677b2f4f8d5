"""The landing redirect and the account settings."""

from flask import Blueprint, redirect, url_for
from flask_login import current_user

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("sites.index"))
    return redirect(url_for("auth.login"))
