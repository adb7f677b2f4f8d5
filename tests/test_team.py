"""Teammates: invitations (one use, 7 days, stored hashed), roles, the last owner,
several accounts per person and the switch between them."""

import re
import threading
from datetime import timedelta

from sqlalchemy import func, select

from tests.conftest import PASSWORD
from tests.test_roles import add_member
from tracker import team
from tracker.extensions import db
from tracker.models import Account, Invitation, Membership, User, utcnow

LINK = re.compile(r'id="invitation-link" value="(http://[^"]+/team/join/([A-Za-z0-9_-]+))"')


def invite_through_page(client, email, role="viewer"):
    client.get("/team/")
    response = client.post("/team/invitations", data={"email": email, "role": role})
    assert response.status_code == 201, response.get_data(as_text=True)
    url, token = LINK.search(response.get_data(as_text=True)).groups()
    assert response.headers["Cache-Control"] == "no-store"
    return url, token


def membership_of(user, account):
    return db.session.scalar(select(Membership).where(
        Membership.user_id == user.id, Membership.account_id == account.id))


def test_the_owner_invites_and_a_new_person_signs_up_with_the_role(app, client, factory, user):
    client.login(user)
    url, token = invite_through_page(client, "New.Person@Example.com", "editor")
    stored = db.session.scalar(select(Invitation))
    assert stored.email == "new.person@example.com" and stored.role == "editor"
    assert token not in stored.token_hash and len(stored.token_hash) == 64
    assert timedelta(days=6, hours=23) < stored.expires_at - utcnow() <= timedelta(days=7)
    # The owner sees it pending.
    assert f'id="invitation-{stored.id}"' in client.get("/team/").get_data(as_text=True)
    client.post("/logout")

    newcomer = app.test_client()
    page = newcomer.get(url.replace("http://localhost", ""))
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Choose a password for new.person@example.com" in text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    short = newcomer.post(f"/team/join/{token}", data={"password": "short", "confirm": "short"})
    assert short.status_code == 422
    joined = newcomer.post(f"/team/join/{token}",
                           data={"password": "a good password", "confirm": "a good password"})
    assert joined.status_code == 302
    db.session.expire_all()
    person = db.session.scalar(select(User).where(User.email == "new.person@example.com"))
    assert person.check_password("a good password")
    assert [(m.account_id, m.role) for m in person.memberships] == [(user.account_id, "editor")]
    # Signed in, in the owner's account, as an editor: rules yes, credentials no.
    assert newcomer.get("/rules/").status_code == 200
    assert newcomer.get("/credentials/").status_code == 403
    # The invitation is used: no longer pending, and the link works no more.
    assert db.session.get(Invitation, stored.id).accepted_by == person.id
    client.login(user)
    listing = client.get("/team/").get_data(as_text=True)
    assert f'id="invitation-{stored.id}"' not in listing
    member = db.session.scalar(select(Membership).where(Membership.user_id == person.id))
    assert f'id="member-{member.id}"' in listing
    again = app.test_client().get(f"/team/join/{token}")
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    replay = app.test_client()
    replay.get(f"/team/join/{token}")
    assert replay.post(f"/team/join/{token}",
                       data={"password": "another password", "confirm": "another password"}
                       ).status_code == 410
    assert db.session.scalar(select(func.count()).select_from(User)) == 2


def test_a_signed_in_user_of_that_email_joins_and_keeps_their_own_account(app, client, factory, user):
    other = factory.user(email="colleague@example.com")
    row, token = team.invite(user.account_id, "colleague@example.com", "viewer", invited_by=user.id)
    # Not signed in: that email has a login, so the page asks to sign in first.
    page = client.get(f"/team/join/{token}")
    assert page.status_code == 200 and "already has a login" in page.get_data(as_text=True)
    assert client.post(f"/team/join/{token}", data={}).status_code == 409
    client.login(other)
    assert "Join" in client.get(f"/team/join/{token}").get_data(as_text=True)
    assert client.post(f"/team/join/{token}").status_code == 302
    db.session.expire_all()
    assert sorted((m.account_id, m.role) for m in db.session.get(User, other.id).memberships) == \
        sorted([(other.home_account_id, "owner"), (user.account_id, "viewer")])
    # The join switched this browser to the new account.
    assert client.get("/emails").status_code == 200
    assert client.get("/sites/").status_code == 403


def test_someone_else_signed_in_cannot_use_the_link(client, factory, user):
    row, token = team.invite(user.account_id, "right@example.com", "owner")
    wrong = factory.user(email="wrong@example.com")
    client.login(wrong)
    page = client.get(f"/team/join/{token}")
    assert "This invitation is for right@example.com" in page.get_data(as_text=True)
    assert client.post(f"/team/join/{token}").status_code == 403
    assert membership_of(wrong, user.account) is None
    assert db.session.get(Invitation, row.id).accepted_at is None


def test_expired_forged_and_revoked_links_are_refused(app, client, user):
    row, token = team.invite(user.account_id, "late@example.com", "viewer")
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    expired = client.get(f"/team/join/{token}")
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    client.get("/login")
    assert client.post(f"/team/join/{token}",
                       data={"password": "a good password", "confirm": "a good password"}
                       ).status_code == 410
    assert db.session.scalar(select(User).where(User.email == "late@example.com")) is None

    forged = client.get("/team/join/" + token[:-4] + "AAAA")
    assert forged.status_code == 404 and "not valid" in forged.get_data(as_text=True)
    assert client.get("/team/join/x").status_code == 404

    live, live_token = team.invite(user.account_id, "revoked@example.com", "viewer")
    client.login(user)
    client.get("/team/")
    assert client.post(f"/team/invitations/{live.id}/revoke").status_code == 302
    assert app.test_client().get(f"/team/join/{live_token}").status_code == 404


def test_an_invitation_link_works_once_under_simultaneous_use(app, user):
    row, token = team.invite(user.account_id, "twice@example.com", "viewer")
    clients = [app.test_client() for _ in range(4)]
    for client in clients:
        client.get(f"/team/join/{token}")  # each its CSRF token
    statuses = [None] * len(clients)

    def use(i):
        statuses[i] = clients[i].post(f"/team/join/{token}", data={
            "password": f"password number {i}", "confirm": f"password number {i}"}).status_code

    threads = [threading.Thread(target=use, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # One signs up; the others are told the link is used (or that the email has a login).
    assert sorted(statuses)[0] == 302 and statuses.count(302) == 1, statuses
    assert set(statuses) - {302} <= {409, 410}, statuses
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(User).where(
        User.email == "twice@example.com")) == 1
    assert db.session.get(Invitation, row.id).accepted_at is not None


def test_invitations_to_members_and_bad_roles_are_refused(client, factory, user):
    client.login(user)
    client.get("/team/")
    me = client.post("/team/invitations", data={"email": user.email.upper(), "role": "viewer"})
    assert me.status_code == 422 and "already a member" in me.get_data(as_text=True)
    bad = client.post("/team/invitations", data={"email": "x@example.com", "role": "admin"})
    assert bad.status_code == 422
    assert client.post("/team/invitations", data={"email": "not an email", "role": "viewer"}
                       ).status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Invitation)) == 0


def test_the_owner_changes_roles_and_removes_people(client, factory, user):
    mate = factory.user(email="mate@example.com")
    membership = add_member(mate, user.account, "viewer")
    client.login(user)
    page = client.get("/team/").get_data(as_text=True)
    assert "mate@example.com" in page
    assert client.post(f"/team/members/{membership.id}/role", data={"role": "editor"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Membership, membership.id).role == "editor"
    bad = client.post(f"/team/members/{membership.id}/role", data={"role": "god"})
    assert bad.status_code == 422 and "Choose one of the roles" in bad.get_data(as_text=True)
    assert db.session.get(Membership, membership.id).role == "editor"
    assert client.post(f"/team/members/{membership.id}/remove").status_code == 302
    assert db.session.scalar(select(Membership).where(Membership.id == membership.id)) is None
    db.session.expire_all()
    # The person keeps their login and their own account.
    assert db.session.get(User, mate.id).memberships[0].account_id == mate.home_account_id


def test_the_last_owner_can_be_neither_removed_nor_demoted(client, factory, user):
    mine = membership_of(user, user.account)
    client.login(user)
    client.get("/team/")
    demote = client.post(f"/team/members/{mine.id}/role", data={"role": "editor"})
    assert demote.status_code == 409 and "needs an owner" in demote.get_data(as_text=True)
    leave = client.post(f"/team/members/{mine.id}/remove")
    assert leave.status_code == 409
    db.session.expire_all()
    assert db.session.get(Membership, mine.id).role == "owner"

    # With a second owner, the first may step down; then the second is the last one.
    second = factory.user(email="second@example.com")
    theirs = add_member(second, user.account, "owner")
    assert client.post(f"/team/members/{mine.id}/role", data={"role": "editor"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(Membership, mine.id).role == "editor"
    assert client.get("/team/").status_code == 403  # no longer an owner
    other = client.application.test_client()
    other.login(second)
    other.post("/team/switch", data={"account_id": user.account_id})
    other.get("/team/")
    assert other.post(f"/team/members/{theirs.id}/remove").status_code == 409
    assert other.post(f"/team/members/{mine.id}/remove").status_code == 302
    db.session.expire_all()
    assert db.session.scalars(select(Membership.role).where(
        Membership.account_id == user.account_id)).all() == ["owner"]


def test_switching_accounts_changes_what_is_shown(client, factory, user):
    shop = factory.account("Shop")
    factory.site(user.account, name="Home site")
    factory.site(shop, name="Shop site")
    add_member(user, shop, "editor")
    client.login(user)
    home = client.get("/sites/").get_data(as_text=True)
    assert "Home site" in home and "Shop site" not in home
    nav = client.get("/").get_data(as_text=True)
    assert 'name="account_id"' in nav and "Shop" in nav
    assert client.post("/team/switch", data={"account_id": shop.id}).status_code == 302
    there = client.get("/sites/").get_data(as_text=True)
    assert "Shop site" in there and "Home site" not in there
    assert client.get("/team/").status_code == 403  # an editor there
    # An account the user does not belong to cannot be chosen.
    stranger = factory.account("Stranger")
    assert client.post("/team/switch", data={"account_id": stranger.id}).status_code == 404
    assert client.post("/team/switch", data={"account_id": "x"}).status_code == 404
    assert "Shop site" in client.get("/sites/").get_data(as_text=True)
    # Removed from Shop by its owner, the session falls back to the home account.
    shop_owner = factory.user(shop)
    db.session.delete(membership_of(user, shop))
    db.session.commit()
    assert shop_owner.account_id == shop.id
    back = client.get("/sites/").get_data(as_text=True)
    assert "Home site" in back and "Shop site" not in back
    assert 'name="account_id"' not in client.get("/").get_data(as_text=True)


def test_a_teammate_of_another_account_finds_nothing_of_this_one(client, factory, user):
    other_account = factory.account("B")
    mate = factory.user(other_account)
    add_member(factory.user(email="b-viewer@example.com"), other_account, "viewer")
    site = factory.site(user.account)
    mailbox = factory.mailbox(user.account)
    email = factory.email(mailbox)
    mine = membership_of(user, user.account)
    client.login(mate)
    for path in (f"/sites/{site.id}", f"/emails/{email.id}", f"/mailboxes/{mailbox.id}/edit"):
        assert client.get(path).status_code == 404, path
    client.get("/team/")
    assert client.post(f"/team/members/{mine.id}/remove").status_code == 404
    assert client.post(f"/team/members/{mine.id}/role", data={"role": "viewer"}).status_code == 404
    assert db.session.get(Membership, mine.id).role == "owner"


def test_users_create_makes_a_new_account_and_its_owner(runner, ctx):
    result = runner.invoke(args=["users", "create", "boss@example.com", "--generate"])
    assert result.exit_code == 0, result.output
    boss = db.session.scalar(select(User).where(User.email == "boss@example.com"))
    assert [(m.account_id, m.role) for m in boss.memberships] == [(boss.home_account_id, "owner")]
    assert db.session.get(Account, boss.home_account_id).name == "example.com"


def test_the_pages_speak_russian(client, factory, user):
    user.locale = "ru"
    db.session.commit()
    client.login(user, PASSWORD)
    page = client.get("/team/").get_data(as_text=True)
    assert "Участники" in page and "Пригласить" in page


def test_upgrade_to_0015_makes_every_user_the_owner_of_their_account(app_config, empty_database_url):
    from flask_migrate import downgrade, upgrade

    from tests.test_migrations import driver_sql, migrated_app

    app = migrated_app(app_config, empty_database_url)
    with app.app_context():
        upgrade(revision="0014")
        with db.engine.begin() as connection:
            run = driver_sql(connection)
            run("INSERT INTO account (id, name, timezone, created_at) VALUES "
                "(1, 'A', 'UTC', '2026-11-01'), (2, 'B', 'UTC', '2026-11-01')")
            for user_id, account_id in ((1, 1), (2, 2), (3, 1)):
                run('INSERT INTO "user" (id, account_id, email, password_hash, active, '
                    "created_at, session_token) VALUES (?, ?, ?, 'h', TRUE, '2026-11-01', ?)",
                    (user_id, account_id, f"u{user_id}@example.com", f"t{user_id}"))
        upgrade(revision="0015")
        with db.engine.connect() as connection:
            rows = driver_sql(connection)(
                "SELECT user_id, account_id, role FROM membership ORDER BY user_id").all()
        downgrade(revision="0014")
        with db.engine.connect() as connection:
            from sqlalchemy import inspect

            tables = set(inspect(connection).get_table_names())
        db.engine.dispose()
    assert [tuple(row) for row in rows] == [(1, 1, "owner"), (2, 2, "owner"), (3, 1, "owner")]
    assert not {"membership", "invitation"} & tables


def test_the_invitation_is_emailed_when_mail_sending_is_configured(app_config, factory):
    """A real SMTP server on loopback receives the link from a real RQ worker; it works.
    (An app of its own with SMTP_URL, on the test's database, which `factory` set up.)"""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from tests.conftest import Client
    from tests.services.smtpserver import SmtpServer
    from tracker import create_app

    smtp = SmtpServer().start()
    try:
        app_config.update(SMTP_URL=smtp.url(), MAIL_FROM="Tracker <noreply@tracker.test>",
                          BASE_URL="http://tracker.test")
        app = create_app(app_config)
        app.test_client_class = Client
        with app.app_context():
            owner = factory.user(factory.account("Shop & Co"))
            client = app.test_client()
            client.login(owner)
            client.get("/team/")
            response = client.post("/team/invitations",
                                   data={"email": "mate@example.org", "role": "editor"})
            page = response.get_data(as_text=True)
            assert response.status_code == 201 and "has been emailed" in page
            shown = LINK.search(page).group(1)
            redis = Redis.from_url(app.config["REDIS_URL"])
            SimpleWorker([Queue("default", connection=redis)], connection=redis).work(burst=True)
            redis.close()
            received = smtp.wait_for(1)[0]
            message = received["message"]
            assert received["rcpt_tos"] == ["mate@example.org"]
            assert message["Subject"] == "Invitation to “Shop & Co”"
            body = message.get_content()
            assert shown in body and shown.startswith("http://tracker.test/team/join/")
            assert owner.email in body and "editor" in body
            newcomer = app.test_client()
            path = shown.removeprefix("http://tracker.test")
            assert newcomer.get(path).status_code == 200
            assert newcomer.post(path, data={"password": "a good password",
                                             "confirm": "a good password"}).status_code == 302
            assert newcomer.get("/rules/").status_code == 200
            db.session.remove()
            db.engine.dispose()
    finally:
        smtp.stop()


def test_someone_removed_from_their_only_account_sees_nothing_of_it(app, client, user, factory):
    row, token = team.invite(user.account_id, "temp@example.com", "viewer")
    client.get(f"/team/join/{token}")
    client.post(f"/team/join/{token}", data={"password": "a good password",
                                             "confirm": "a good password"})
    factory.site(user.account, name="Secret site")
    assert client.get("/emails").status_code == 200
    temp = db.session.scalar(select(User).where(User.email == "temp@example.com"))
    owner = app.test_client()
    owner.login(user)
    owner.get("/team/")
    assert owner.post(f"/team/members/{membership_of(temp, user.account).id}/remove"
                      ).status_code == 302
    for path in ("/", "/emails", "/emails.csv", "/sites/"):
        assert client.get(path, buffered=True).status_code == 403, path
    assert client.post("/rules/new", data={"name": "x"}).status_code == 403


def test_an_owner_leaves_when_another_owner_stays(client, factory, user):
    shop = factory.account("Shop")
    add_member(user, shop, "owner")
    add_member(factory.user(email="other-owner@example.com"), shop, "owner")
    client.login(user)
    client.post("/team/switch", data={"account_id": shop.id})
    page = client.get("/team/").get_data(as_text=True)
    assert "Leave the account" in page
    response = client.post(f"/team/members/{membership_of(user, shop).id}/remove")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert membership_of(user, shop) is None
    # Back in their home account, still its owner.
    assert client.get("/team/").status_code == 200
    assert "Shop" not in client.get("/").get_data(as_text=True).split("</nav>")[0]
