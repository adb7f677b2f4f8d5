"""Pages clean the text they are sent: no NUL reaches the database (PostgreSQL refuses
it outright), searches lose every control character, line breaks of forms stay."""

from sqlalchemy import select

from tracker.extensions import db
from tracker.models import Site


def test_a_form_value_with_control_characters_is_stored_without_them(logged_in, user):
    response = logged_in.post("/sites/new", data={
        "name": "Sh\x00op one",
        "domains": "shop.example\r\nwww.shop.example\x00",
    })
    assert response.status_code == 302, response.get_data(as_text=True)
    site = db.session.scalar(select(Site).where(Site.account_id == user.account_id))
    assert site.name == "Shop one"
    assert site.domain_names == ["shop.example", "www.shop.example"]  # the lines stayed


def test_searches_with_control_characters_answer(logged_in, factory, user):
    factory.site(user.account, name="Shop")
    for path in ("/sites/?q=Sh%00op", "/emails?q=%00%01price", "/emails.csv?q=%00",
                 "/emails?utm_source=%00x&status=%00"):
        response = logged_in.get(path, buffered=True)  # the CSV is streamed
        assert response.status_code == 200, (path, response.status_code)
    assert "Shop" in logged_in.get("/sites/?q=Sh%00op").get_data(as_text=True)


def test_login_and_password_fields_are_left_to_their_forms(logged_in):
    """A password is never altered behind its owner's back: the form refuses it."""
    logged_in.get("/credentials/new")
    page = logged_in.post("/credentials/new", data={
        "name": "Box\x00", "protocol": "imap", "service": "other", "host": "imap.example.com",
        "port": "993", "security": "ssl", "login": "box@example.com", "password": "pa\x00ss",
    }).get_data(as_text=True)
    assert "The password cannot contain line breaks or other control characters." in page
