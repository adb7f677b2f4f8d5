"""Sites: list, search, create, edit, delete, key, snippet, and account isolation."""

import pytest
from sqlalchemy import select

from tracker.extensions import db
from tracker.models import Site, SiteDomain


def sites_of(account_id):
    return db.session.scalars(select(Site).where(Site.account_id == account_id)).all()


def test_list_requires_login(client):
    response = client.get("/sites/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_create_normalises_domains_and_shows_snippet(logged_in, user):
    response = logged_in.post(
        "/sites/new",
        data={"name": "  Shop ", "domains": "https://WWW.Shop.example/contacts\nпример.рф, shop.example"},
    )
    assert response.status_code == 302
    [site] = sites_of(user.account_id)
    assert site.name == "Shop"
    assert site.domain_names == ["www.shop.example", "xn--e1afmkfd.xn--p1ai", "shop.example"]
    page = logged_in.get(response.headers["Location"]).get_data(as_text=True)
    snippet = f'src="http://localhost/static/js/tracker.js" data-site="{site.key}"'
    assert snippet.replace('"', "&#34;") in page or snippet.replace('"', "&quot;") in page
    assert "пример.рф" in page


def test_snippet_uses_base_url(app_config, fernet_keys):
    from tests.conftest import Client
    from tests.factories import Factory
    from tracker import create_app

    app_config["BASE_URL"] = "https://track.example.org/"
    app = create_app(app_config)
    app.test_client_class = Client
    with app.app_context():
        db.create_all()
        factory = Factory(password="secret password")
        user = factory.user()
        site = factory.site(db.session.get(type(user.account), user.account_id))
        client = app.test_client()
        client.login(user, "secret password")
        page = client.get(f"/sites/{site.id}").get_data(as_text=True)
        assert "https://track.example.org/static/js/tracker.js" in page
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "domains": "a.example"}, "Give the site a name."),
        ({"name": "x" * 201, "domains": "a.example"}, "under 200 characters"),
        ({"name": "Shop", "domains": ""}, "Enter at least one domain."),
        ({"name": "Shop", "domains": "bad_domain.com"}, "Not a domain: bad_domain.com"),
        ({"name": "Shop", "domains": "ok.example bad! worse?"}, "Not domains: bad!, worse?"),
        ({"name": "Shop", "domains": "x" * 10001}, "Too long."),
        ({"name": "Shop", "domains": " ".join(f"d{i}.example" for i in range(51))}, "at most 50"),
        ({}, "Give the site a name."),
    ],
)
def test_bad_input_is_an_inline_message(logged_in, user, data, message):
    response = logged_in.post("/sites/new", data=data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert sites_of(user.account_id) == []


def test_hostile_input_is_escaped(logged_in, user):
    response = logged_in.post("/sites/new", data={"name": "<script>alert(1)</script>",
                                                  "domains": "<img src=x onerror=alert(1)>"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "<img src=x" not in body and "&lt;img src=x" in body
    logged_in.post("/sites/new", data={"name": "<script>alert(1)</script>", "domains": "a.example"})
    body = logged_in.get("/sites/").get_data(as_text=True)
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


def test_domain_taken_by_another_site_of_the_account(logged_in, user, factory):
    factory.site(user.account, name="First", domains=["shop.example"])
    response = logged_in.post("/sites/new", data={"name": "Second", "domains": "SHOP.example"})
    assert response.status_code == 422
    assert "Already used by another of your sites: shop.example." in response.get_data(as_text=True)


def test_same_domain_in_another_account_is_fine(logged_in, user, factory):
    factory.site(factory.account(), domains=["shop.example"])
    response = logged_in.post("/sites/new", data={"name": "Mine", "domains": "shop.example"})
    assert response.status_code == 302


def test_edit_keeps_own_domains_and_replaces_others(logged_in, user, factory):
    site = factory.site(user.account, name="Old", domains=["a.example", "b.example"])
    response = logged_in.post(f"/sites/{site.id}/edit",
                              data={"name": "New", "domains": "b.example\nc.example"})
    assert response.status_code == 302
    db.session.expire_all()
    site = db.session.get(Site, site.id)
    assert site.name == "New"
    assert site.domain_names == ["b.example", "c.example"]
    assert db.session.scalars(select(SiteDomain.domain).order_by(SiteDomain.domain)).all() == [
        "b.example", "c.example"]


def test_edit_form_is_prefilled(logged_in, user, factory):
    site = factory.site(user.account, name="Prefilled", domains=["pre.example"])
    body = logged_in.get(f"/sites/{site.id}/edit").get_data(as_text=True)
    assert 'value="Prefilled"' in body and "pre.example" in body


def test_delete_asks_then_deletes(logged_in, user, factory):
    site = factory.site(user.account, name="Doomed")
    page = logged_in.get(f"/sites/{site.id}/delete")
    assert page.status_code == 200 and "Delete site “Doomed”?" in page.get_data(as_text=True)
    assert len(sites_of(user.account_id)) == 1
    response = logged_in.post(f"/sites/{site.id}/delete")
    assert response.status_code == 302
    assert sites_of(user.account_id) == []
    assert db.session.scalars(select(SiteDomain)).all() == []


def test_regenerate_key(logged_in, user, factory):
    site = factory.site(user.account)
    old = site.key
    response = logged_in.post(f"/sites/{site.id}/key")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Site, site.id).key not in (old, "")


def test_search_and_pagination(logged_in, user, factory, app):
    app.config["PAGE_SIZE"] = 3
    for i in range(5):
        factory.site(user.account, name=f"Alpha {i}", domains=[f"alpha{i}.example"])
    factory.site(user.account, name="Beta", domains=["beta-shop.example"])
    first = logged_in.get("/sites/").get_data(as_text=True)
    assert "Page 1 of 2" in first and "Alpha 0" in first and "Beta" not in first
    second = logged_in.get("/sites/?page=2").get_data(as_text=True)
    assert "Beta" in second and "Alpha 0" not in second
    by_domain = logged_in.get("/sites/?q=BETA-SHOP").get_data(as_text=True)
    assert "Beta" in by_domain and "Alpha" not in by_domain
    nothing = logged_in.get("/sites/?q=zzz").get_data(as_text=True)
    assert "No sites match “zzz”." in nothing
    # % and _ are searched for as typed, not as wildcards.
    assert "No sites match “_”." in logged_in.get("/sites/?q=_").get_data(as_text=True)
    assert "No sites match" in logged_in.get("/sites/?q=%25").get_data(as_text=True)
    assert logged_in.get("/sites/?page=abc").status_code == 200
    assert logged_in.get("/sites/?page=-4").status_code == 200


def test_htmx_search_returns_the_results_fragment(logged_in, user, factory):
    factory.site(user.account, name="Fragmented")
    response = logged_in.get("/sites/?q=frag", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert "Fragmented" in body
    assert "<html" not in body and "<table" in body
    assert "HX-Request" in response.headers["Vary"]
    full = logged_in.get("/sites/?q=frag", headers={"HX-Request": "true",
                                                    "HX-History-Restore-Request": "true"})
    assert "<html" in full.get_data(as_text=True)


def test_htmx_form_errors_come_back_as_the_form(logged_in):
    response = logged_in.post("/sites/new", data={"name": ""}, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert body.lstrip().startswith("<form") and "Give the site a name." in body


def test_htmx_success_redirects_with_header(logged_in):
    response = logged_in.post("/sites/new", data={"name": "X", "domains": "x.example"},
                              headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/sites/")


SITE_ROUTES = [
    ("GET", "/sites/{id}"),
    ("GET", "/sites/{id}/edit"),
    ("POST", "/sites/{id}/edit"),
    ("GET", "/sites/{id}/delete"),
    ("POST", "/sites/{id}/delete"),
    ("POST", "/sites/{id}/key"),
]


@pytest.mark.parametrize(("method", "route"), SITE_ROUTES)
def test_another_accounts_site_answers_404(logged_in, factory, method, route):
    foreign = factory.site(factory.account(), name="Foreign", domains=["foreign.example"])
    key, name = foreign.key, foreign.name
    response = logged_in.open(route.format(id=foreign.id), method=method,
                              data={"name": "Hijacked", "domains": "evil.example"})
    assert response.status_code == 404
    db.session.expire_all()
    after = db.session.get(Site, foreign.id)
    assert (after.key, after.name, after.domain_names) == (key, name, ["foreign.example"])


def test_list_shows_only_own_sites(logged_in, user, factory):
    factory.site(user.account, name="Mine")
    factory.site(factory.account(), name="Theirs")
    body = logged_in.get("/sites/").get_data(as_text=True)
    assert "Mine" in body and "Theirs" not in body
    assert "No sites match" in logged_in.get("/sites/?q=Theirs").get_data(as_text=True)


def test_missing_site_is_404(logged_in):
    assert logged_in.get("/sites/999999").status_code == 404
