"""Password change, "forgot password" and reset forms."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from tracker.passwords import MAX_LENGTH, MIN_LENGTH


def _new_password():
    return PasswordField(
        _l("New password"),
        validators=[
            DataRequired(_l("Enter a new password.")),
            Length(min=MIN_LENGTH, max=MAX_LENGTH,
                   message=_l("Use a password of %(min)d to %(max)d characters.")),
        ],
    )


def _confirm():
    return PasswordField(
        _l("New password again"),
        validators=[DataRequired(_l("Repeat the new password.")),
                    EqualTo("new_password", _l("The two passwords differ."))],
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(_l("Enter your current password.")), Length(max=MAX_LENGTH)],
    )
    new_password = _new_password()
    confirm = _confirm()


class ResetPasswordForm(FlaskForm):
    new_password = _new_password()
    confirm = _confirm()


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter your email address.")),
            Length(max=320),
            Email(_l("Enter a valid email address."), check_deliverability=False),
        ],
    )
