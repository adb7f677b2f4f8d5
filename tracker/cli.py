"""Command-line tools: `flask users ...` and `flask credentials ...`."""

import secrets

import click
from email_validator import EmailNotValidError, validate_email
from flask.cli import AppGroup
from sqlalchemy import func, select

from tracker import crypto
from tracker.extensions import db
from tracker.models import Account, Credential, User

users = AppGroup("users", help="Manage accounts and their users.")
credentials = AppGroup("credentials", help="Manage stored mailbox credentials.")


def _create(email, password, account_name=None):
    account = Account(name=account_name or email.split("@", 1)[1])
    user = User(email=email, account=account)
    user.set_password(password)
    db.session.add_all([account, user])
    db.session.commit()
    return user


def _normalized_email(email):
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None


@users.command("create")
@click.argument("email")
@click.option("--account", "account_name", help="Account name (default: the email's domain).")
@click.option("--generate", is_flag=True, help="Generate a password and print it once.")
def create_user(email, account_name, generate):
    """Create an account and its owner EMAIL; the password is prompted or generated."""
    email = _normalized_email(email)
    if db.session.scalar(select(User).where(func.lower(User.email) == email)):
        raise click.ClickException(f"A user {email} already exists.")
    if generate:
        password = secrets.token_urlsafe(12)
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        if len(password) < 8:
            raise click.ClickException("Use a password of at least 8 characters.")
    _create(email, password, account_name)
    click.echo(f"Created {email}.")
    if generate:
        click.echo(f"Password (shown once): {password}")


def create_first_login(email):
    """Create a first account and owner when there is no user; return its password or None."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    password = secrets.token_urlsafe(12)
    _create(_normalized_email(email), password, "My company")
    return password


@users.command("ensure-first")
@click.option("--email", default="admin@example.com", show_default=True)
def ensure_first(email):
    """Create a first login when there is no user yet, and print it once."""
    password = create_first_login(email)
    if password:
        click.echo(f"First login created. Email: {email}  Password: {password}")


@credentials.command("rotate-keys")
def rotate_keys():
    """Re-encrypt every stored password under the newest key of FERNET_KEYS.

    Run it after putting a new key first in FERNET_KEYS; the old keys can be removed
    afterwards. Nothing is changed if any password cannot be decrypted.
    """
    rows = db.session.scalars(select(Credential).order_by(Credential.id)).all()
    unreadable = []
    for credential in rows:
        try:
            credential.password_token = crypto.rotate(credential.password_token)
        except crypto.InvalidToken:
            unreadable.append(credential.id)
    if unreadable:
        db.session.rollback()
        raise click.ClickException(
            "No key in FERNET_KEYS decrypts the password of credentials "
            f"{', '.join(map(str, unreadable))}; nothing was changed. Put the old key back "
            "(after the new one) and run this again."
        )
    db.session.commit()
    click.echo(f"Re-encrypted {len(rows)} stored password(s) under the newest key.")


def init_app(app):
    app.cli.add_command(users)
    app.cli.add_command(credentials)
