"""The form that creates a read-API token."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class ApiTokenForm(FlaskForm):
    name = StringField(
        _l("Name"),
        description=_l("What uses the token, e.g. “CRM import”."),
        validators=[
            DataRequired(_l("Give the token a name.")),
            Length(max=100, message=_l("Keep the name under 100 characters.")),
        ],
    )
