"""The form of credentials signed in with an OAuth provider: only their name is editable."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length


class OAuthCredentialForm(FlaskForm):
    name = StringField(
        _l("Name"),
        description=_l("For you, e.g. “Sales mailbox”."),
        validators=[
            DataRequired(_l("Give the credentials a name.")),
            Length(max=200, message=_l("Keep the name under 200 characters.")),
        ],
    )
