"""Mailboxes behind OAuth: a real Dovecot with the oauth2 passdb (XOAUTH2 / OAUTHBEARER)
checking tokens at a local OAuth 2.0 provider, syncs by a real RQ worker, and the whole
sign-in flow in Chromium."""

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from tests.services.dovecot_oauth import OAuthDovecotServer
from tests.services.oauth_provider import OAuthProvider
from tests.test_sync import emails, last_run, mail, now, sync_now
from tracker import oauth
from tracker.extensions import db
from tracker.models import Credential, utcnow

SCOPE = "openid email imap"


@pytest.fixture(scope="session")
def provider():
    server = OAuthProvider().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def oauth_dovecot(tmp_path_factory, provider):
    server = OAuthDovecotServer(tmp_path_factory.mktemp("dovecot-oauth"),
                                f"{provider.url}/introspect")
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def oauth_settings(app_config, oauth_dovecot, provider):
    """The generic provider and the Microsoft one both point at the local provider."""
    app_config.update(
        ALLOW_PRIVATE_IMAP_HOSTS=True,
        IMAP_ALLOWED_PORTS=f"993,143,{oauth_dovecot.port},{oauth_dovecot.tls_port}",
        IMAP_CA_FILE=str(oauth_dovecot.ca_path),
        IMAP_TIMEOUT_SECONDS=5,
        **provider.settings("generic", LABEL="Example ID", USERINFO_URL=f"{provider.url}/userinfo",
                            SCOPES="imap offline_access", IMAP_HOST="127.0.0.1",
                            IMAP_PORT=str(oauth_dovecot.tls_port), MECHANISM="oauthbearer"),
        **provider.settings("microsoft", IMAP_HOST="127.0.0.1",
                            IMAP_PORT=str(oauth_dovecot.tls_port)),
    )
    provider.access_lifetime = 3600


_users = iter(range(1, 10_000))


@pytest.fixture
def oauth_user(oauth_dovecot):
    n = next(_users)
    login = f"oauth{n}@mail.example"
    oauth_dovecot.add_user(login, f"delivery-only-{n}")
    return login


def oauth_credential(factory, user, dovecot, login, provider, key="generic"):
    """A credential as the browser flow leaves it (tokens from the provider)."""
    tokens = provider.grant(login, SCOPE)
    credential = Credential(account_id=user.account.id, name=f"OAuth {login}", service="other",
                            host="127.0.0.1", port=dovecot.tls_port, security="ssl",
                            login=login, oauth_provider=key)
    credential.password = ""
    oauth.store_tokens(credential, tokens)
    db.session.add(credential)
    db.session.commit()
    return credential, tokens


@pytest.fixture
def oauth_box(factory, user, oauth_dovecot, oauth_user, provider):
    credential, tokens = oauth_credential(factory, user, oauth_dovecot, oauth_user, provider)
    mailbox = factory.mailbox(user.account, credential)
    return mailbox, credential, tokens


@pytest.mark.parametrize("key", ["generic", "microsoft"])
def test_a_worker_syncs_with_an_oauth_access_token(app, ctx, factory, user, oauth_dovecot,
                                                   oauth_user, provider, key):
    """XOAUTH2 (Microsoft) and OAUTHBEARER (the generic provider set so) against Dovecot."""
    credential, tokens = oauth_credential(factory, user, oauth_dovecot, oauth_user, provider,
                                          key=key)
    mailbox = factory.mailbox(user.account, credential)
    for n in (1, 2):
        oauth_dovecot.deliver(oauth_user, mail(n), internaldate=now())
    introspections = provider.count("/introspect")

    job = sync_now(app, mailbox.id)

    assert job.get_status() == "finished", job.exc_info
    assert [e.subject for e in emails(mailbox.id)] == ["Request 1", "Request 2"]
    assert last_run(mailbox.id).status == "ok"
    # Dovecot asked the provider about the token: the sign-in really was OAuth.
    assert provider.count("/introspect") > introspections
    assert provider.count("/token", "refresh_token") == 0  # the cached token was valid
    mechanism = "OAUTHBEARER" if key == "generic" else "XOAUTH2"
    log = oauth_dovecot.info_log_path.read_text(errors="replace")
    assert f"method={mechanism}" in log and oauth_user in log
