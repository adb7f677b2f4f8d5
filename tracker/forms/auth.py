"""Sign-in and personal settings."""

import functools
import zoneinfo

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length


class LoginForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=320),
            Email(_l("Enter a valid email address."), check_deliverability=False),
        ],
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Enter your password.")), Length(max=1024)],
    )
    remember = BooleanField(_l("Remember me"))


class SettingsForm(FlaskForm):
    locale = SelectField(
        _l("Language"),
        choices=[
            SelectChoice("", _l("As in my browser")),
            SelectChoice("en", "English"),
            SelectChoice("ru", "Русский"),
        ],
    )
    timezone = SelectField(
        _l("Time zone of the account"),
        description=_l("Report days begin at midnight in this zone; times are shown in it."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timezone.choices = [(name, name) for name in time_zones()]


@functools.cache
def time_zones():
    """IANA zone names people pick from (no legacy aliases such as Etc/GMT+3 or posix/...)."""
    names = {n for n in zoneinfo.available_timezones()
             if "/" in n and not n.startswith(("Etc/", "posix/", "right/", "SystemV/", "US/"))}
    return sorted(names | {"UTC"})
