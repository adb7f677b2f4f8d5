"""Teammates: the invitation, the role of a member, the sign-up of an invited person."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField
from wtforms.validators import DataRequired, Email, EqualTo, Length

PASSWORD_MIN, PASSWORD_MAX = 8, 1024


def role_choices():
    return [("viewer", _l("Viewer: reports only")),
            ("editor", _l("Editor: sites, mailboxes, blocks and rules too")),
            ("owner", _l("Owner: everything, teammates and integrations too"))]


class InviteForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        validators=[
            DataRequired(_l("Enter your teammate's email address.")),
            Length(max=320),
            Email(_l("Enter a valid email address."), check_deliverability=False),
        ],
    )
    role = SelectField(_l("Role"), choices=role_choices, default="viewer",
                       validate_choice=True)


class RoleForm(FlaskForm):
    role = SelectField(_l("Role"), choices=role_choices, validate_choice=True)


class SignUpForm(FlaskForm):
    password = PasswordField(
        _l("Password"),
        validators=[
            DataRequired(_l("Choose a password.")),
            Length(min=PASSWORD_MIN, max=PASSWORD_MAX,
                   message=_l("Use a password of %(min)d to %(max)d characters.",
                              min=PASSWORD_MIN, max=PASSWORD_MAX)),
        ],
    )
    confirm = PasswordField(
        _l("Password again"),
        validators=[DataRequired(_l("Repeat the password.")),
                    EqualTo("password", _l("The two passwords differ."))],
    )
