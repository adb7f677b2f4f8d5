"""The OAuth providers the operator has registered the app with (settings from the environment).

Each setting is OAUTH_<PROVIDER>_<NAME>, read from the app config and else from the
environment (so the web app and the workers see the same), e.g.
OAUTH_GOOGLE_CLIENT_ID. A provider without CLIENT_ID is not offered. Endpoints and the
IMAP server have defaults for Microsoft and Google and can be changed (tests point
them at a local provider); the generic provider needs them all.
"""

import os
from dataclasses import dataclass

from flask import current_app

from tracker.mailservices import SSL, STARTTLS

MICROSOFT, GOOGLE, GENERIC = "microsoft", "google", "generic"

# Least scopes: Google has no read-only IMAP scope, https://mail.google.com/ is the only
# one IMAP accepts; Microsoft's IMAP scope is IMAP.AccessAsUser.All, and offline_access
# gives the refresh token. openid + email only name the mailbox (the ID token's email).
DEFAULTS = {
    MICROSOFT: {
        "LABEL": "Microsoft",
        "AUTHORIZE_URL": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "TOKEN_URL": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "USERINFO_URL": "",
        # Microsoft has no revocation endpoint: consent is withdrawn in the account's
        # settings (myapps.microsoft.com / account.live.com/consent/Manage).
        "REVOKE_URL": "",
        "SCOPES": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access openid email",
        "LOGIN_FIELD": "email,preferred_username",
        "IMAP_HOST": "outlook.office365.com",
        "IMAP_PORT": "993",
        "IMAP_SECURITY": SSL,
        "MECHANISM": "xoauth2",
        "SERVICE": "outlook",
        "AUTHORIZE_PARAMS": "",
    },
    GOOGLE: {
        "LABEL": "Google",
        "AUTHORIZE_URL": "https://accounts.google.com/o/oauth2/v2/auth",
        "TOKEN_URL": "https://oauth2.googleapis.com/token",
        "USERINFO_URL": "",
        "REVOKE_URL": "https://oauth2.googleapis.com/revoke",
        "SCOPES": "https://mail.google.com/ openid email",
        "LOGIN_FIELD": "email",
        "IMAP_HOST": "imap.gmail.com",
        "IMAP_PORT": "993",
        "IMAP_SECURITY": SSL,
        "MECHANISM": "xoauth2",
        "SERVICE": "gmail",
        # Google gives a refresh token only with offline access (and on a fresh consent).
        "AUTHORIZE_PARAMS": "access_type=offline&prompt=consent",
    },
    GENERIC: {
        "LABEL": "",
        "AUTHORIZE_URL": "",
        "TOKEN_URL": "",
        "USERINFO_URL": "",
        "REVOKE_URL": "",
        "SCOPES": "",
        "LOGIN_FIELD": "email",
        "IMAP_HOST": "",
        "IMAP_PORT": "993",
        "IMAP_SECURITY": SSL,
        "MECHANISM": "xoauth2",
        "SERVICE": "other",
        "AUTHORIZE_PARAMS": "",
    },
}
MECHANISMS = ("xoauth2", "oauthbearer")


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    revoke_url: str
    scopes: tuple
    login_claims: tuple
    imap_host: str
    imap_port: int
    imap_security: str
    mechanism: str
    service: str
    extra_authorize_params: dict


def setting(key, name):
    """OAUTH_<KEY>_<NAME> from the app config, else the environment, else the default."""
    variable = f"OAUTH_{key.upper()}_{name}"
    value = current_app.config.get(variable)
    if value is None:
        value = os.environ.get(variable)
    if value is None:
        value = DEFAULTS[key].get(name, "")
    return str(value).strip()


def get_provider(key):
    """The configured provider `key`, or None when it is unknown or not fully set up."""
    if key not in DEFAULTS:
        return None
    client_id = setting(key, "CLIENT_ID")
    if not client_id:
        return None
    get = lambda name: setting(key, name)  # noqa: E731
    try:
        port = int(get("IMAP_PORT"))
    except ValueError:
        return None
    security = get("IMAP_SECURITY").lower()
    mechanism = get("MECHANISM").lower()
    if not (get("AUTHORIZE_URL") and get("TOKEN_URL") and get("IMAP_HOST")) \
            or security not in (SSL, STARTTLS) or mechanism not in MECHANISMS:
        return None
    params = dict(part.split("=", 1) for part in get("AUTHORIZE_PARAMS").split("&")
                  if "=" in part)
    return Provider(
        key=key,
        label=get("LABEL") or get("IMAP_HOST"),
        client_id=client_id,
        client_secret=get("CLIENT_SECRET"),
        authorize_url=get("AUTHORIZE_URL"),
        token_url=get("TOKEN_URL"),
        userinfo_url=get("USERINFO_URL"),
        revoke_url=get("REVOKE_URL"),
        scopes=tuple(get("SCOPES").split()),
        login_claims=tuple(n.strip() for n in get("LOGIN_FIELD").split(",") if n.strip()),
        imap_host=get("IMAP_HOST").lower(),
        imap_port=port,
        imap_security=security,
        mechanism=mechanism,
        service=get("SERVICE"),
        extra_authorize_params=params,
    )


def enabled_providers():
    """The providers offered on the credentials form, in a fixed order."""
    found = (get_provider(key) for key in (MICROSOFT, GOOGLE, GENERIC))
    return [provider for provider in found if provider is not None]
