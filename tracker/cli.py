"""Command-line tools: `flask users ...`, `flask credentials ...` and `flask demo`."""

import os
import secrets

import click
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from tracker import crypto, demo
from tracker.extensions import db
from tracker.models import Account, Credential, User

users = AppGroup("users", help="Manage accounts and their users.")
credentials = AppGroup("credentials", help="Manage stored mailbox credentials.")
pageviews_cli = AppGroup("pageviews", help="The page-view writer's queue.")


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


@users.command("reset-password")
@click.argument("email")
def reset_password(email):
    """Print a one-time link that sets a new password for EMAIL (valid PASSWORD_RESET_SECONDS)."""
    from tracker import passwords

    email = _normalized_email(email)
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if user is None:
        raise click.ClickException(f"No user {email}.")
    if not user.active:
        raise click.ClickException(f"The user {email} is deactivated.")
    token = passwords.create_reset(user)
    minutes = current_app.config["PASSWORD_RESET_SECONDS"] // 60
    click.echo(f"A link to choose a new password for {email} (works once, for {minutes} "
               f"minutes):")
    click.echo(passwords.reset_url(token))


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
            # OAuth credentials: their refresh and access tokens too.
            if credential.refresh_token_token:
                credential.refresh_token_token = crypto.rotate(credential.refresh_token_token)
            if credential.access_token_token:
                credential.access_token_token = crypto.rotate(credential.access_token_token)
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


@click.command("demo")
@click.option("--email", default=demo.DEMO_EMAIL, show_default=True, help="The demo login.")
@click.option("--visits", type=click.IntRange(30, 100_000), default=demo.DEFAULT_VISITS,
              show_default=True, help="Visits over the month (emails: about half as many).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Another seed makes other, equally repeatable, data.")
@with_appcontext
def demo_command(email, visits, seed):
    """Create or refresh the demo account: a site, rules, a month of visits and emails.

    Running it again replaces the demo account's data with the same data (shifted to
    now) and a new password; no other account is touched.
    """
    email = _normalized_email(email)
    password = secrets.token_urlsafe(12)
    try:
        made = demo.make_demo(email, password, visits, seed)
    except demo.DemoError as exc:
        raise click.ClickException(str(exc)) from None
    url = current_app.config.get("BASE_URL") or "http://{}:{}/".format(
        os.environ.get("HOST", "127.0.0.1"), os.environ.get("WEB_PORT", "5000"))
    click.echo(f"Demo account ready in {made.seconds:.1f} s: {made.visits} visits "
               f"({made.bots} by bots), {made.emails} emails ({made.counted} new requests, "
               f"{made.tracked} tracked).")
    click.echo(f"Sign in at {url} (run `make run` first)")
    click.echo(f"Email: {email}  Password (shown once): {password}")


@pageviews_cli.command("rejected")
@click.option("--count", default=50, show_default=True, help="How many to list, newest first.")
@with_appcontext
def pageviews_rejected(count):
    """List the page-view entries the database refused (set aside with their reason)."""
    from tracker import ingest

    total = ingest.rejected_count()
    click.echo(f"{total} page-view entries set aside (about the last {ingest.REJECTED_KEEP} kept).")
    for item in ingest.rejected(count=count):
        fields = " ".join(f"{name}={value!r}" for name, value in item["fields"].items())
        click.echo(f"{item['id']}  queued {item['queued']:%Y-%m-%d %H:%M:%S} UTC  "
                   f"set aside {item['set_aside']:%Y-%m-%d %H:%M:%S} UTC\n"
                   f"  reason: {item['reason']}\n  entry: {fields}")


def init_app(app):
    app.cli.add_command(users)
    app.cli.add_command(credentials)
    app.cli.add_command(pageviews_cli)
    app.cli.add_command(demo_command)
