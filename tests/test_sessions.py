"""Sessions end: at sign-out, and everywhere else on a password change.

Every test copies real cookies out of one test client into another, as an
attacker with a stolen cookie would, and replays them against the app.
"""

import time

from flask_login import current_user, login_required
from flask_login.utils import encode_cookie

from tests.conftest import PASSWORD
from tracker.extensions import db
from tracker.models import User
from tracker.security import end_other_sessions

REMEMBER = "remember_token"


def sign_in(client, user, remember=False):
    client.get("/login")
    data = {"email": user.email, "password": PASSWORD}
    if remember:
        data["remember"] = "y"
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert client.get("/sites/").status_code == 200


def cookie(client, name):
    found = client.get_cookie(name)
    assert found is not None, f"no {name} cookie"
    return found.value


def replay(app, **cookies):
    """A fresh browser holding only the given cookies: does it reach a signed-in page?"""
    other = app.test_client()
    for name, value in cookies.items():
        other.set_cookie(name, value)
    return other.get("/sites/").status_code == 200


def test_a_copied_session_cookie_stops_working_at_sign_out(app, client, user):
    sign_in(client, user)
    stolen = cookie(client, "session")
    assert replay(app, session=stolen)  # the copy works while the session lives
    client.post("/logout")
    assert client.get("/sites/").status_code == 302
    assert not replay(app, session=stolen)


def test_a_copied_remember_me_cookie_stops_working_at_sign_out(app, client, user):
    sign_in(client, user, remember=True)
    stolen = cookie(client, REMEMBER)
    assert replay(app, **{REMEMBER: stolen})  # it signs a new browser in by itself
    client.post("/logout")
    assert not replay(app, **{REMEMBER: stolen})
    assert not replay(app, session=cookie(client, "session"), **{REMEMBER: stolen})


def test_each_sign_in_after_a_sign_out_gets_another_remember_me_cookie(client, user):
    seen = set()
    for _ in range(3):
        sign_in(client, user, remember=True)
        seen.add(cookie(client, REMEMBER))
        client.post("/logout")
    assert len(seen) == 3


def test_sign_out_ends_the_sessions_of_the_other_browsers_too(app, client, user):
    laptop, phone = client, app.test_client()
    sign_in(laptop, user)
    sign_in(phone, user, remember=True)
    laptop.post("/logout")
    assert phone.get("/sites/").status_code == 302
    # The phone signs in again as usual.
    sign_in(phone, user)


def set_session_user(client, value):
    """Rewrite the user id inside a real signed-in session (signed with the app's key)."""
    with client.session_transaction() as session:
        assert session["_user_id"]
        session["_user_id"] = value


def test_a_session_from_before_the_session_tokens_is_refused(client, user):
    sign_in(client, user)
    # Version 0010 and older stored the bare user id.
    set_session_user(client, str(user.id))
    assert client.get("/sites/").status_code == 302


def test_a_session_with_another_users_token_is_refused(client, factory):
    one, two = factory.user(), factory.user()
    now = int(time.time())
    sign_in(client, one)
    set_session_user(client, f"{one.id}:{two.session_token}:{now}")
    assert client.get("/sites/").status_code == 302
    sign_in(client, one)
    set_session_user(client, f"{one.id}:{one.session_token}:{now}")
    assert client.get("/sites/").status_code == 200
    for forged in (f"{one.id}:", f"{one.id}", "", ":", "::", f"{one.id}:{one.session_token}",
                   f"{one.id}:{one.session_token}x:{now}", f"{2**70}:{one.session_token}:{now}",
                   f"x:{one.session_token}:{now}", f"{one.id}:{one.session_token}:x",
                   f"{one.id}:{one.session_token}:{now}:1", f"-{one.id}:{one.session_token}:{now}"):
        set_session_user(client, forged)
        assert client.get("/sites/").status_code == 302, forged
        sign_in(client, one)


def test_a_sign_in_older_than_the_remember_me_duration_is_refused(app, client, user):
    """The remember-me cookie no longer lasts until SECRET_KEY changes: its sign-in time
    is checked on every request, for a copy of the cookie (or session) kept too."""
    max_age = app.config["REMEMBER_COOKIE_DURATION"]
    now = int(time.time())
    for signed_in, works in ((now - max_age + 120, True), (now - max_age - 1, False),
                             (now + 3600, False)):
        value = f"{user.id}:{user.session_token}:{signed_in}"
        with app.test_request_context():
            remember = encode_cookie(value)  # as Flask-Login signs it, with SECRET_KEY
        assert replay(app, **{REMEMBER: remember}) is works, signed_in
        sign_in(client, user)
        set_session_user(client, value)
        assert (client.get("/sites/").status_code == 200) is works, signed_in


def test_end_other_sessions_keeps_this_browser_only(app, factory):
    """What a password change calls: this browser stays in, every other one is out."""

    @login_required
    def password_changed():
        end_other_sessions(current_user)
        return "ok"

    app.add_url_rule("/test/password-changed", view_func=password_changed)
    user = factory.user()
    here, there = app.test_client(), app.test_client()
    sign_in(here, user, remember=True)
    sign_in(there, user, remember=True)
    old_remember = cookie(here, REMEMBER)
    old_there_session = cookie(there, "session")
    before = user.session_token

    assert here.get("/test/password-changed").get_data(as_text=True) == "ok"

    db.session.expire_all()
    assert db.session.get(User, user.id).session_token != before
    assert here.get("/sites/").status_code == 200
    # This browser's remember-me cookie was reissued with the new token and works alone.
    new_remember = cookie(here, REMEMBER)
    assert new_remember != old_remember
    assert replay(app, **{REMEMBER: new_remember})
    # Everything issued before is refused.
    assert not replay(app, **{REMEMBER: old_remember})
    assert not replay(app, session=old_there_session)
    assert there.get("/sites/").status_code == 302


def test_a_deactivated_user_is_signed_out_at_the_next_request(client, user):
    sign_in(client, user)
    user.active = False
    db.session.commit()
    assert client.get("/sites/").status_code == 302


def test_upgrade_to_0011_gives_each_existing_user_a_token_of_their_own(app_config, tmp_path):
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import inspect

    from tracker import create_app

    app = create_app(dict(app_config,
                          DATABASE_URL=f"sqlite:///{tmp_path / 'migrated.sqlite3'}"))
    with app.app_context():
        upgrade(revision="0010")
        with db.engine.begin() as connection:
            run = connection.exec_driver_sql
            run("INSERT INTO account (id, name, created_at) VALUES (1, 'A', '2026-11-01')")
            for n in (1, 2, 3):
                run("INSERT INTO user (id, account_id, email, password_hash, active, "
                    f"created_at) VALUES ({n}, 1, 'u{n}@example.com', 'h', 1, '2026-11-01')")
        upgrade(revision="0011")
        with db.engine.connect() as connection:
            tokens = [row[0] for row in connection.exec_driver_sql(
                "SELECT session_token FROM user ORDER BY id")]
            nullable = {c["name"]: c["nullable"] for c in inspect(connection).get_columns("user")}
        downgrade(revision="0010")
        with db.engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("user")}
        db.engine.dispose()
    assert len(tokens) == 3 and len(set(tokens)) == 3
    assert all(len(token) >= 32 for token in tokens)
    assert nullable["session_token"] is False
    assert "session_token" not in columns
