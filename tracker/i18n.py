"""Language selection: the user's own setting, else the browser's Accept-Language."""

from flask import current_app, has_request_context, request
from flask_login import current_user

from flask_babel import get_locale

from tracker.extensions import babel


def select_locale():
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        # Workers and commands (no request): the default language.
        return languages[0]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    return request.accept_languages.best_match(languages) or languages[0]


def select_timezone():
    """The signed-in user's account time zone: dates and days on its pages are local to it."""
    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user.account.timezone
    return None


def init_app(app):
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.jinja_env.globals["get_locale"] = get_locale
