"""Mail service presets: the IMAP server of each well-known provider, and how to sign in there."""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

SSL = "ssl"
STARTTLS = "starttls"
# Protocol names: the same in every language.
SECURITY_LABELS = {SSL: "SSL/TLS", STARTTLS: "STARTTLS"}
OTHER = "other"


@dataclass(frozen=True)
class MailService:
    """A provider's IMAP server and a hint on the password it accepts."""

    key: str
    label: str
    host: str
    hint: str
    port: int = 993
    security: str = SSL


PRESETS = [
    MailService(
        "yandex", "Yandex", "imap.yandex.ru",
        _l("Yandex: allow mail programs in Mail settings → Email clients, then create an app "
           "password (type “Mail”) in Yandex ID → Security → App passwords and use it here."),
    ),
    MailService(
        "gmail", "Gmail", "imap.gmail.com",
        _l("Gmail: turn on 2-Step Verification in your Google Account first, then create an app "
           "password under Security → App passwords. Your usual Google password will not work."),
    ),
    MailService(
        "mailru", "Mail.ru", "imap.mail.ru",
        _l("Mail.ru: create a password for external applications in account settings → "
           "Security → App passwords and use it here."),
    ),
    MailService(
        "outlook", "Outlook.com", "outlook.office365.com",
        _l("Outlook.com: since September 2024 personal Microsoft accounts (outlook.com, "
           "hotmail.com, live.com) no longer accept passwords over IMAP, so they cannot be "
           "connected with a password. Work or school accounts work only if their administrator "
           "allows IMAP basic authentication."),
    ),
    MailService(
        "yahoo", "Yahoo", "imap.mail.yahoo.com",
        _l("Yahoo: generate an app password in Account security → App passwords and use it "
           "here; your usual password will not work."),
    ),
    MailService(
        "icloud", "iCloud", "imap.mail.me.com",
        _l("iCloud: two-factor authentication must be on; create an app-specific password at "
           "account.apple.com → Sign-In and Security → App-Specific Passwords."),
    ),
    MailService(
        "rambler", "Rambler", "imap.rambler.ru",
        _l("Rambler: allow access for mail programs in Mail settings → Mail programs, then "
           "use your mailbox password."),
    ),
    MailService(
        "zoho", "Zoho", "imap.zoho.com",
        _l("Zoho: enable IMAP access in Mail settings → Mail Accounts; with two-factor "
           "authentication on, create an app-specific password and use it here."),
    ),
]
SERVICES = {service.key: service for service in PRESETS}
OTHER_HINT = _l("Enter the IMAP server, port and security that your mail provider or "
                "administrator gives; 993 with SSL/TLS is the most common.")
OTHER_LABEL = _l("Other service")


def service_label(key):
    """The name of a service key, for showing ("Other service" for manual servers)."""
    service = SERVICES.get(key)
    return service.label if service else OTHER_LABEL


def service_hint(key):
    """The sign-in hint of a service key."""
    service = SERVICES.get(key)
    return service.hint if service else OTHER_HINT
