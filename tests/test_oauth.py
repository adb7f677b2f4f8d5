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
    provider.requests.clear()
    provider.user = None


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


# ------------------------------------------------------------ the browser flow

def test_sign_in_with_the_provider_in_chromium_then_a_worker_syncs(
        page, live_server, app, ctx, user, oauth_dovecot, oauth_user, provider):
    """Credentials form → the provider's consent page → callback → saved credential →
    a mailbox with it → a real worker stores the mailbox's emails."""
    from playwright.sync_api import expect

    from tests.test_browser_sites import sign_in

    provider.user = oauth_user
    provider.redirect_uris.add(f"{live_server.url}/credentials/oauth/callback")
    for n in (1, 2, 3):
        oauth_dovecot.deliver(oauth_user, mail(n), internaldate=now())
    sign_in(page, live_server, user)
    # From the mailbox form's "New credentials" dialog to the provider's buttons.
    page.get_by_role("link", name="Mailboxes").click()
    page.get_by_role("button", name="Add mailbox").click()
    page.get_by_role("button", name="New credentials").click()
    page.locator("#credential-dialog").get_by_role(
        "link", name="sign in with the provider instead of a password").click()
    expect(page).to_have_url(f"{live_server.url}/credentials/new?next=/mailboxes/new")
    expect(page.get_by_role("button", name="Sign in with Microsoft")).to_be_visible()
    page.get_by_role("button", name="Sign in with Example ID").click()

    # The provider's own page, with PKCE and the least scopes asked for.
    expect(page.get_by_role("heading", name="Allow access to your mailbox?")).to_be_visible()
    assert page.url.startswith(f"{provider.url}/authorize?")
    assert "code_challenge_method=S256" in page.url and "state=" in page.url
    expect(page.locator("#who")).to_have_text(oauth_user)
    page.get_by_role("button", name="Allow").click()

    # Back in the mailbox form, the new credentials chosen.
    expect(page.get_by_text(f"Signed in with Example ID as {oauth_user}")).to_be_visible()
    db.session.expire_all()
    credential = db.session.scalars(select(Credential).where(Credential.login == oauth_user)).one()
    expect(page).to_have_url(f"{live_server.url}/mailboxes/new?credential_id={credential.id}")
    assert credential.oauth_provider == "generic" and credential.account_id == user.account.id
    assert (credential.host, credential.port) == ("127.0.0.1", oauth_dovecot.tls_port)
    assert credential.refresh_token.startswith("rt-") and credential.access_token.startswith("at-")
    expect(page.locator("#credential option:checked")).to_have_text(
        f"Example ID — {oauth_user} — {oauth_user}")

    # The mailbox form checks the credentials (an OAuth sign-in to Dovecot) and saves.
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#mailbox-check-result")).to_have_text("Integration works.")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Mailbox {oauth_user} saved.")).to_be_visible()
    page.goto(f"{live_server.url}/credentials/")
    expect(page.locator("tr", has_text=oauth_user)).to_contain_text("Signed in with Example ID")

    db.session.expire_all()
    mailbox = credential.mailbox
    job = sync_now(app, mailbox.id)
    assert job.get_status() == "finished", job.exc_info
    assert [e.subject for e in emails(mailbox.id)] == ["Request 1", "Request 2", "Request 3"]

    # No token in the pages the owner sees.
    for path in ("/credentials/", f"/credentials/{credential.id}/edit", "/mailboxes/"):
        page.goto(live_server.url + path)
        html = page.content()
        assert credential.refresh_token not in html and credential.access_token not in html


def test_the_provider_denies_access(page, live_server, ctx, user, oauth_user, provider):
    from playwright.sync_api import expect

    from tests.test_browser_sites import sign_in

    provider.user = oauth_user
    provider.redirect_uris.add(f"{live_server.url}/credentials/oauth/callback")
    sign_in(page, live_server, user)
    page.goto(f"{live_server.url}/credentials/new")
    page.get_by_role("button", name="Sign in with Example ID").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_text("Example ID did not grant access (access_denied)")).to_be_visible()
    assert db.session.scalar(select(Credential.id)) is None


# ------------------------------------------------------- refresh and withdrawal

def test_an_expired_access_token_is_refreshed_before_signing_in(app, ctx, oauth_box, provider,
                                                                oauth_dovecot, oauth_user):
    mailbox, credential, tokens = oauth_box
    oauth_dovecot.deliver(oauth_user, mail(1), internaldate=now())
    provider.expire_access_tokens()
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    job = sync_now(app, mailbox.id)

    assert job.get_status() == "finished", job.exc_info
    assert len(emails(mailbox.id)) == 1
    assert provider.count("/token", "refresh_token") == 1
    db.session.expire_all()
    assert credential.access_token != tokens["access_token"]
    assert credential.access_token_expires_at > utcnow() + timedelta(minutes=50)
    assert credential.refresh_token == tokens["refresh_token"]  # not rotated by this provider

    # The next sync uses the cached new token: no second refresh.
    sync_now(app, mailbox.id)
    assert provider.count("/token", "refresh_token") == 1
    assert last_run(mailbox.id).status == "ok"


def test_a_token_withdrawn_early_is_refreshed_once(app, ctx, oauth_box, provider):
    """The cached token looks valid but the provider has dropped it: Dovecot refuses it,
    the sign-in is tried once more with a refreshed token."""
    mailbox, credential, tokens = oauth_box
    provider.expire_access_tokens()  # the cache still says an hour

    job = sync_now(app, mailbox.id)

    assert job.get_status() == "finished", job.exc_info
    assert last_run(mailbox.id).status == "ok"
    assert provider.count("/token", "refresh_token") == 1


def test_a_revoked_refresh_token_asks_the_owner_to_sign_in_again(
        app, ctx, logged_in, oauth_box, provider, oauth_user):
    mailbox, credential, tokens = oauth_box
    provider.revoke_all(oauth_user)
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    job = sync_now(app, mailbox.id)

    # Recorded, not raised: RQ does not retry it.
    assert job.get_status() == "finished", job.exc_info
    assert job.return_value()["status"] == "oauth_revoked"
    assert provider.count("/token", "refresh_token") == 1
    db.session.expire_all()
    assert mailbox.status == "oauth_revoked"
    assert credential.oauth_revoked_at is not None
    assert credential.refresh_token_token is None and credential.access_token_token is None

    # The owner sees it on the mailbox list and the credentials.
    page = logged_in.get("/mailboxes/").get_data(as_text=True)
    assert "Access was withdrawn" in page and "Sign in again" in page
    page = logged_in.get("/credentials/").get_data(as_text=True)
    assert "Access was withdrawn — sign in again." in page

    # The next scheduled sync does not ask the provider again: no loop.
    job = sync_now(app, mailbox.id, trigger="schedule")
    assert job.return_value()["status"] == "oauth_revoked"
    assert provider.count("/token", "refresh_token") == 1


def test_a_provider_that_cannot_be_reached_is_retried(app, ctx, oauth_box, provider):
    """Network trouble is not a withdrawal: the sync fails and RQ retries it later."""
    mailbox, credential, tokens = oauth_box
    app.config["OAUTH_GENERIC_TOKEN_URL"] = "http://127.0.0.1:9/token"  # nothing listens
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    job = sync_now(app, mailbox.id)

    assert job.get_status() == "scheduled"  # waiting for its retry
    db.session.expire_all()
    assert mailbox.status == "oauth_unavailable"
    assert credential.oauth_revoked_at is None
    assert credential.refresh_token == tokens["refresh_token"]


# ------------------------------------------------------------- the callback

def _start(client, provider, redirect="http://localhost/credentials/oauth/callback"):
    """Start a flow with the test client; the provider's authorization URL's query."""
    from urllib.parse import parse_qs, urlsplit

    provider.redirect_uris.add(redirect)
    client.get("/credentials/new")
    response = client.post("/credentials/oauth/generic/start")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(f"{provider.url}/authorize?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _consent(provider, query):
    """What the browser would do on the consent page: the code for the callback."""
    import urllib.request
    from urllib.parse import parse_qs, urlencode, urlsplit

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    body = urlencode({**query, "decision": "allow"}).encode()
    try:
        opener.open(f"{provider.url}/authorize", data=body)
    except urllib.error.HTTPError as exc:
        location = exc.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_forged_and_replayed_callbacks_are_refused(app, ctx, logged_in, provider, oauth_user,
                                                   factory):
    provider.user = oauth_user
    query = _start(logged_in, provider)
    assert query["code_challenge_method"] == "S256" and query["scope"] == "imap offline_access"
    answer = _consent(provider, query)

    # A state this session never started: refused, nothing saved, the code not spent.
    forged = logged_in.get("/credentials/oauth/callback",
                           query_string={"code": answer["code"], "state": "forged-state"})
    assert forged.status_code == 400
    assert "not started here" in forged.get_data(as_text=True)
    assert db.session.scalar(select(Credential.id)) is None

    # Another user's session with the victim's state: refused too.
    other = app.test_client()
    other.login(factory.user())
    stolen = other.get("/credentials/oauth/callback", query_string=answer)
    assert stolen.status_code == 400

    # The real callback works once...
    ok = logged_in.get("/credentials/oauth/callback", query_string=answer)
    assert ok.status_code == 302
    assert db.session.scalars(select(Credential.login)).all() == [oauth_user]
    # ...and replaying it is refused.
    again = logged_in.get("/credentials/oauth/callback", query_string=answer)
    assert again.status_code == 400


def test_a_code_without_the_right_verifier_is_refused(app, ctx, logged_in, provider, oauth_user):
    """The PKCE verifier belongs to the state: a code issued for another challenge fails."""
    provider.user = oauth_user
    first = _start(logged_in, provider)
    second = _start(logged_in, provider)
    # A code obtained with the first flow's challenge, brought back under the second state.
    answer = _consent(provider, first)
    response = logged_in.get("/credentials/oauth/callback",
                             query_string={"code": answer["code"], "state": second["state"]})
    assert response.status_code == 400
    assert "refused the sign-in (invalid_grant)" in response.get_data(as_text=True)
    assert db.session.scalar(select(Credential.id)) is None


def test_without_a_client_id_the_buttons_are_hidden(app, ctx, logged_in):
    page = logged_in.get("/credentials/new").get_data(as_text=True)
    assert "Sign in with Example ID" in page and "Sign in with Microsoft" in page
    app.config["OAUTH_GENERIC_CLIENT_ID"] = ""
    app.config["OAUTH_MICROSOFT_CLIENT_ID"] = ""
    page = logged_in.get("/credentials/new").get_data(as_text=True)
    assert "Sign in with" not in page
    assert logged_in.post("/credentials/oauth/generic/start").status_code == 404


# ------------------------------------------------------------ secrets at rest

def test_tokens_are_stored_encrypted_and_rotated_with_the_keys(app, ctx, runner, oauth_box,
                                                               redis_server):
    from cryptography.fernet import Fernet
    from redis import Redis

    mailbox, credential, tokens = oauth_box
    sync_now(app, mailbox.id)
    secrets_ = (tokens["refresh_token"], tokens["access_token"])
    row = db.session.execute(text("SELECT * FROM credential")).mappings().one()
    stored = " ".join(str(v) for v in row.values())
    assert not any(s in stored for s in secrets_)
    # Nor in Redis (job arguments, results, meta).
    redis = Redis.from_url(app.config["REDIS_URL"])
    for key in redis.keys("*"):
        kind = redis.type(key)
        if kind == b"string":
            value = redis.get(key) or b""
        elif kind == b"hash":
            value = b" ".join(k + b" " + v for k, v in redis.hgetall(key).items())
        elif kind == b"list":
            value = b" ".join(redis.lrange(key, 0, -1))
        elif kind == b"zset":
            value = b" ".join(redis.zrange(key, 0, -1))
        elif kind == b"set":
            value = b" ".join(redis.smembers(key))
        else:
            value = b""
        assert not any(s.encode() in value for s in secrets_), key
    redis.close()

    old = list(app.config["FERNET_KEYS"])
    app.config["FERNET_KEYS"] = [Fernet.generate_key().decode()] + old
    result = runner.invoke(args=["credentials", "rotate-keys"])
    assert result.exit_code == 0, result.output
    app.config["FERNET_KEYS"] = app.config["FERNET_KEYS"][:1]  # only the new key now
    db.session.expire_all()
    assert credential.refresh_token == tokens["refresh_token"]
    assert credential.access_token == tokens["access_token"]


def test_tokens_never_reach_the_logs(app, ctx, oauth_box, provider, caplog):
    import logging

    mailbox, credential, tokens = oauth_box
    caplog.set_level(logging.DEBUG)
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    sync_now(app, mailbox.id)  # one refresh
    provider.revoke_all(credential.login)
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    sync_now(app, mailbox.id)  # a refused refresh
    db.session.expire_all()
    assert mailbox.status == "oauth_revoked"
    assert "tokens" not in repr(credential.server_params())
    logged = caplog.text
    assert "AUTHENTICATE **REDACTED**" in logged  # imapclient's debug log was on
    assert "rt-" not in logged and "at-" not in logged and "Bearer" not in logged


def test_microsoft_login_comes_from_the_id_token(app, ctx, logged_in, provider, oauth_user,
                                                 oauth_dovecot):
    from urllib.parse import parse_qs, urlsplit

    provider.user = oauth_user
    provider.redirect_uris.add("http://localhost/credentials/oauth/callback")
    logged_in.get("/credentials/new")
    response = logged_in.post("/credentials/oauth/microsoft/start")
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    # The least scopes for IMAP, documented in the README.
    assert query["scope"] == ("https://outlook.office.com/IMAP.AccessAsUser.All "
                              "offline_access openid email")
    answer = _consent(provider, query)
    assert logged_in.get("/credentials/oauth/callback", query_string=answer).status_code == 302
    assert provider.count("/userinfo") == 0  # the ID token named the mailbox
    credential = db.session.scalars(select(Credential)).one()
    assert (credential.login, credential.oauth_provider, credential.service) == (
        oauth_user, "microsoft", "outlook")
    assert credential.server_params().mechanism == "xoauth2"


def test_signing_in_again_brings_a_withdrawn_mailbox_back(app, ctx, logged_in, oauth_box,
                                                          provider, oauth_user, oauth_dovecot):
    mailbox, credential, tokens = oauth_box
    provider.revoke_all(oauth_user)
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    sync_now(app, mailbox.id)
    db.session.expire_all()
    assert mailbox.status == "oauth_revoked"

    page = logged_in.get(f"/credentials/{credential.id}/edit").get_data(as_text=True)
    assert "Access was withdrawn — sign in again." in page
    assert "Sign in again with Example ID" in page
    # Renaming keeps the sign-in.
    response = logged_in.post(f"/credentials/{credential.id}/edit", data={"name": "Sales"})
    assert response.status_code == 302
    db.session.expire_all()
    assert credential.name == "Sales" and credential.oauth_provider == "generic"

    provider.user = oauth_user
    provider.redirect_uris.add("http://localhost/credentials/oauth/callback")
    response = logged_in.post("/credentials/oauth/generic/start",
                              data={"credential_id": credential.id})
    from urllib.parse import parse_qs, urlsplit
    query = {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}
    answer = _consent(provider, query)
    assert logged_in.get("/credentials/oauth/callback", query_string=answer).status_code == 302
    db.session.expire_all()
    assert credential.oauth_revoked_at is None and credential.name == "Sales"
    assert db.session.scalar(select(text("count(*)")).select_from(Credential)) == 1

    oauth_dovecot.deliver(oauth_user, mail(7), internaldate=now())
    job = sync_now(app, mailbox.id)
    assert job.return_value()["status"] == "ok"
    assert [e.subject for e in emails(mailbox.id)] == ["Request 7"]


def test_another_accounts_credentials_cannot_be_signed_in_again(app, ctx, client, factory,
                                                                oauth_box):
    mailbox, credential, tokens = oauth_box
    stranger = factory.user()
    client.login(stranger)
    assert client.post("/credentials/oauth/generic/start",
                       data={"credential_id": credential.id}).status_code == 404
    assert client.get(f"/credentials/{credential.id}/edit").status_code == 404


def test_the_oauth_pages_in_russian(app, ctx, logged_in, oauth_box):
    mailbox, credential, tokens = oauth_box
    headers = {"Accept-Language": "ru"}
    page = logged_in.get("/credentials/new", headers=headers).get_data(as_text=True)
    assert "Войти через Example ID" in page and "Вход через почтового провайдера" in page
    page = logged_in.get(f"/credentials/{credential.id}/edit",
                         headers=headers).get_data(as_text=True)
    assert "Войти заново через Example ID" in page
    forged = logged_in.get("/credentials/oauth/callback?state=x&code=y", headers=headers)
    assert forged.status_code == 400
    assert "Этот вход начат не здесь" in forged.get_data(as_text=True)


def test_deleting_oauth_credentials_revokes_the_refresh_token(app, ctx, logged_in, factory,
                                                              user, oauth_dovecot, oauth_user,
                                                              provider):
    app.config["OAUTH_GENERIC_REVOKE_URL"] = f"{provider.url}/revoke"
    credential, tokens = oauth_credential(factory, user, oauth_dovecot, oauth_user, provider)
    assert tokens["refresh_token"] in provider.refresh_tokens
    logged_in.get(f"/credentials/{credential.id}/delete")
    response = logged_in.post(f"/credentials/{credential.id}/delete")
    assert response.status_code == 302
    assert provider.count("/revoke") == 1
    assert tokens["refresh_token"] not in provider.refresh_tokens
    assert tokens["access_token"] not in provider.access_tokens
    assert db.session.scalar(select(Credential.id)) is None


def test_deleting_still_works_when_the_provider_cannot_be_reached(app, ctx, logged_in, factory,
                                                                  user, oauth_dovecot,
                                                                  oauth_user, provider):
    app.config["OAUTH_GENERIC_REVOKE_URL"] = "http://127.0.0.1:9/revoke"  # nothing listens
    credential, tokens = oauth_credential(factory, user, oauth_dovecot, oauth_user, provider)
    logged_in.get(f"/credentials/{credential.id}/delete")
    assert logged_in.post(f"/credentials/{credential.id}/delete").status_code == 302
    assert db.session.scalar(select(Credential.id)) is None


def test_a_separate_worker_process_takes_the_provider_from_its_environment(
        app, ctx, oauth_box, provider, oauth_dovecot, oauth_user, worker_env, tmp_path):
    """`rq worker` as its own process, configured by environment variables only: it
    refreshes the expired token and syncs; its output holds no token."""
    import subprocess
    import sys

    from tracker.jobs.sync import enqueue_sync

    mailbox, credential, tokens = oauth_box
    oauth_dovecot.deliver(oauth_user, mail(1), internaldate=now())
    credential.access_token_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    env = worker_env(
        ALLOW_PRIVATE_IMAP_HOSTS="1",
        IMAP_ALLOWED_PORTS=f"993,{oauth_dovecot.tls_port}",
        IMAP_CA_FILE=str(oauth_dovecot.ca_path),
        **{k: str(v) for k, v in app.config.items() if k.startswith("OAUTH_GENERIC_")},
    )
    enqueue_sync(mailbox.id, trigger="manual")
    done = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--worker-class",
         "tracker.jobs.worker.Worker", "--url", app.config["REDIS_URL"], app.config["RQ_QUEUE"]],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [e.subject for e in emails(mailbox.id)] == ["Request 1"]
    assert provider.count("/token", "refresh_token") == 1
    db.session.expire_all()
    output = done.stdout + done.stderr
    assert credential.access_token not in output and tokens["refresh_token"] not in output
