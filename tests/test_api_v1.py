"""The read API: tokens (made in settings, shown once, hashed, revoked), account isolation of
every route, the report's filters, keyset pages while mail arrives, rate limits, OpenAPI."""

import hashlib
import re
from datetime import timedelta

import pytest
from jsonschema import Draft202012Validator

from tracker.extensions import db
from tracker.integrations import apitokens
from tracker.models import ApiToken, utcnow
from tracker.views import api_v1

TOKEN = re.compile(r"\bet_[A-Za-z0-9_-]{43}\b")


def auth(token):
    return {"Authorization": f"Bearer {token}"}


def token_of(account, name="CRM"):
    _row, token = apitokens.create(account.id, name)
    return token


@pytest.fixture
def seeded(factory, user):
    """Emails of the user's account (one attributed to a visit), and another account's."""
    account = user.account
    site = factory.site(account, name="Shop")
    rule = factory.rule(account, name="Ads", address="ads@shop.example")
    box = factory.mailbox(account)
    visit = factory.visit(site, utm_source="google", utm_medium="cpc", channel="paid",
                          landing_url="https://shop.example/?utm_source=google",
                          ga_client_id="123.456", ym_client_id="1700000000123")
    base = utcnow().replace(microsecond=0) - timedelta(hours=6)
    attributed = factory.email(
        box, at=base, sender="ivan@mail.ru", from_name="Иван", subject="<b>Прайс</b>",
        counted=True, rule_id=rule.id, visit_id=visit.id, attribution="static",
        tracked_address="ads@shop.example", channel="paid", utm_source="google",
        site_id=site.id, source=visit.source())
    repeat = factory.email(box, at=base + timedelta(hours=1), sender="ivan@mail.ru",
                           subject="Re: Прайс", counted=False)
    untracked = factory.email(box, at=base + timedelta(hours=2), sender="bob@corp.example",
                              subject="Hello", counted=True)
    stranger = factory.user()
    foreign_site = factory.site(stranger.account)
    foreign_visit = factory.visit(foreign_site)
    foreign_box = factory.mailbox(stranger.account)
    foreign = factory.email(foreign_box, at=base + timedelta(minutes=30), subject="Foreign",
                            visit_id=foreign_visit.id)
    return {"account": account, "stranger": stranger, "visit": visit, "rule": rule,
            "box": box, "emails": [attributed, repeat, untracked], "foreign": foreign,
            "foreign_visit": foreign_visit, "base": base}


# ------------------------------------------------------------------ tokens


def test_token_is_made_in_settings_shown_once_and_stored_hashed(logged_in, user, ctx):
    page = logged_in.get("/settings/api-tokens/")
    assert page.status_code == 200
    response = logged_in.post("/settings/api-tokens/", data={"name": "amoCRM import"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    tokens = set(TOKEN.findall(html))
    assert len(tokens) == 1
    token = tokens.pop()
    row = db.session.scalars(db.select(ApiToken)).one()
    assert row.account_id == user.account_id and row.name == "amoCRM import"
    assert row.created_by == user.id
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in (row.name, row.prefix, row.token_hash) and token.startswith(row.prefix)
    # Never shown again: the list shows the name and the first characters only.
    listing = logged_in.get("/settings/api-tokens/").get_data(as_text=True)
    assert "amoCRM import" in listing and row.prefix in listing
    assert token not in listing and not TOKEN.search(listing)
    assert row.last_used_at is None
    api_client = logged_in.application.test_client()  # no session cookie
    response = api_client.get("/api/v1/emails", headers=auth(token))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers  # the API starts no session
    db.session.refresh(row)
    assert row.last_used_at is not None


def test_token_pages_in_russian(logged_in, user, ctx):
    from tests.test_i18n import english_leftovers

    user.locale = "ru"
    db.session.commit()
    created = logged_in.post("/settings/api-tokens/", data={"name": "CRM"})
    assert created.status_code == 201
    row = db.session.scalars(db.select(ApiToken)).one()
    revoked = logged_in.post(f"/settings/api-tokens/{row.id}/revoke", follow_redirects=True)
    invalid = logged_in.post("/settings/api-tokens/", data={"name": ""})
    for response in (created, revoked, invalid, logged_in.get("/settings")):
        html = response.get_data(as_text=True)
        assert "API-токены" in html
        assert english_leftovers(html) == []


def test_token_name_is_required_and_escaped(logged_in, ctx):
    response = logged_in.post("/settings/api-tokens/", data={"name": "  "})
    assert response.status_code == 422
    assert "Give the token a name." in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count(ApiToken.id))) == 0
    response = logged_in.post("/settings/api-tokens/", data={"name": "<script>x</script>"})
    assert response.status_code == 201
    html = response.get_data(as_text=True)
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


@pytest.mark.parametrize("header", [
    None,
    "Bearer",
    "Bearer et_" + "A" * 43,  # well formed, never issued
    "Basic dXNlcjpwYXNz",
    "Bearer not-a-token",
])
def test_missing_or_wrong_token_is_refused_with_www_authenticate(client, seeded, header):
    headers = {"Authorization": header} if header else {}
    for url in ("/api/v1/emails", f"/api/v1/emails/{seeded['emails'][0].id}",
                f"/api/v1/visits/{seeded['visit'].id}"):
        response = client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith('Bearer realm="api"')
        if header:
            assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        body = response.get_json()
        assert body["error"] in ("invalid_token", "unauthorized")
        assert "Прайс" not in response.get_data(as_text=True)


def test_a_session_cookie_is_not_a_token(logged_in, seeded):
    """Signed in to the admin, but no bearer token: the API does not read the session."""
    response = logged_in.get("/api/v1/emails")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def test_revoked_token_is_refused_and_stays_listed(logged_in, seeded):
    token = token_of(seeded["account"])
    assert logged_in.get("/api/v1/emails", headers=auth(token)).status_code == 200
    row = db.session.scalars(db.select(ApiToken)).one()
    response = logged_in.post(f"/settings/api-tokens/{row.id}/revoke")
    assert response.status_code == 302
    response = logged_in.get("/api/v1/emails", headers=auth(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    db.session.refresh(row)
    assert row.revoked_at is not None
    listing = logged_in.get("/settings/api-tokens/").get_data(as_text=True)
    assert "Revoked" in listing and f"/settings/api-tokens/{row.id}/revoke" not in listing


def test_another_accounts_token_cannot_be_seen_or_revoked(logged_in, seeded):
    foreign = token_of(seeded["stranger"].account, name="Stranger's token")
    row = db.session.scalars(db.select(ApiToken)).one()
    assert "Stranger" not in logged_in.get("/settings/api-tokens/").get_data(as_text=True)
    assert logged_in.post(f"/settings/api-tokens/{row.id}/revoke").status_code == 404
    db.session.refresh(row)
    assert row.revoked_at is None
    # And the stranger's token reads only the stranger's emails.
    response = logged_in.get("/api/v1/emails", headers=auth(foreign))
    assert [item["id"] for item in response.get_json()["data"]] == [seeded["foreign"].id]


def test_token_pages_need_sign_in(client, ctx):
    assert client.get("/settings/api-tokens/").status_code == 302
    assert client.post("/settings/api-tokens/", data={"name": "x"}).status_code in (302, 400)
    assert db.session.scalar(db.select(db.func.count(ApiToken.id))) == 0


# ------------------------------------------------------------------ isolation


def _routes(app):
    return sorted((rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api_v1.")),
                  key=lambda rule: rule.rule)


def test_every_route_is_isolated_by_account(app, client, seeded):
    own, foreign = token_of(seeded["account"]), token_of(seeded["stranger"].account)
    ids = {"email_id": (seeded["emails"][0].id, seeded["foreign"].id),
           "visit_id": (seeded["visit"].id, seeded["foreign_visit"].id)}
    checked = set()
    for rule in _routes(app):
        if rule.endpoint in api_v1.PUBLIC:
            assert client.get(rule.rule).status_code == 200
            checked.add(rule.endpoint)
            continue
        if not rule.arguments:
            mine = client.get(rule.rule, headers=auth(own)).get_json()["data"]
            theirs = client.get(rule.rule, headers=auth(foreign)).get_json()["data"]
            assert {item["id"] for item in mine} == {row.id for row in seeded["emails"]}
            assert {item["id"] for item in theirs} == {seeded["foreign"].id}
            checked.add(rule.endpoint)
            continue
        (argument,) = rule.arguments
        own_id, foreign_id = ids[argument]
        url = rule.build({argument: own_id})[1]
        assert client.get(url, headers=auth(own)).get_json()["id"] == own_id
        response = client.get(url, headers=auth(foreign))
        assert response.status_code == 404, url
        assert response.get_json()["error"] == "not_found"
        assert "Прайс" not in response.get_data(as_text=True)
        # The other way round too, and ids that cannot exist.
        assert client.get(rule.build({argument: foreign_id})[1],
                          headers=auth(own)).status_code == 404
        for missing in (10**9, 2**63 + 5):
            assert client.get(rule.build({argument: missing})[1],
                              headers=auth(own)).status_code == 404
        checked.add(rule.endpoint)
    assert checked == {"api_v1.emails", "api_v1.email", "api_v1.visit", "api_v1.openapi"}


def test_read_only_other_methods_are_refused(client, seeded):
    token = token_of(seeded["account"])
    email_id = seeded["emails"][0].id
    for method in ("post", "put", "delete", "patch"):
        response = getattr(client, method)(f"/api/v1/emails/{email_id}", headers=auth(token))
        assert response.status_code == 405
        assert response.get_json()["error"]
    assert db.session.get(type(seeded["emails"][0]), email_id) is not None


def test_website_script_api_still_answers_under_the_same_prefix(client, factory, user):
    """/api/v1/hit keeps its own checks (site key), untouched by the token check."""
    response = client.post("/api/v1/hit", data=b"{}", content_type="application/json")
    assert response.status_code == 400
    assert "WWW-Authenticate" not in response.headers
    assert response.get_json() == {"error": "k (the site key) is required"}


# ------------------------------------------------------------------ content and filters


def test_email_and_visit_content(client, seeded):
    token = token_of(seeded["account"])
    attributed = seeded["emails"][0]
    body = client.get(f"/api/v1/emails/{attributed.id}", headers=auth(token)).get_json()
    assert body["id"] == attributed.id
    assert body["subject"] == "<b>Прайс</b>"  # JSON carries text as received
    assert body["sender"] == {"address": "ivan@mail.ru", "name": "Иван"}
    assert body["new_request"] is True and body["status"] == "new"
    assert body["time"] == seeded["base"].isoformat() + "Z"
    assert body["attribution"]["rule"] == {"id": seeded["rule"].id, "name": "Ads"}
    assert body["attribution"]["certain"] is True
    assert body["visit"]["id"] == seeded["visit"].id
    assert body["visit"]["ym_client_id"] == "1700000000123"
    assert body["visit"]["utm_medium"] == "cpc"
    visit = client.get(f"/api/v1/visits/{seeded['visit'].id}", headers=auth(token))
    assert visit.headers["Cache-Control"] == "no-store"
    visit = visit.get_json()
    assert visit["id"] == seeded["visit"].id and visit["channel"] == "paid"
    assert visit["ga_client_id"] == "123.456"
    assert visit["landing_url"] == "https://shop.example/?utm_source=google"
    untracked = client.get(f"/api/v1/emails/{seeded['emails'][2].id}",
                           headers=auth(token)).get_json()
    assert untracked["attribution"] is None and untracked["visit"] is None


@pytest.mark.parametrize("query, positions", [
    ("", (0, 1, 2)),
    ("status=new", (0, 2)),
    ("status=repeat", (1,)),
    ("tracked=yes", (0,)),
    ("tracked=no", (1, 2)),
    ("channel=paid", (0,)),
    ("channel=none", (1, 2)),
    ("utm_source=google", (0,)),
    ("q=прайс", (0, 1)),
    ("q=from:bob status:new", (2,)),
    ("period=all&status=new", (0, 2)),
])
def test_list_takes_the_reports_filters(client, seeded, query, positions):
    token = token_of(seeded["account"])
    response = client.get(f"/api/v1/emails?{query}", headers=auth(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    emails = seeded["emails"]
    expected = [emails[p].id for p in sorted(positions, reverse=True)]
    assert [item["id"] for item in response.get_json()["data"]] == expected


def test_list_filters_by_rule_site_and_mailbox_ids(client, seeded, factory):
    token = token_of(seeded["account"])
    other_box = factory.mailbox(seeded["account"])
    extra = factory.email(other_box, subject="other box")
    attributed = seeded["emails"][0]
    for query, expected in ((f"rule={seeded['rule'].id}", [attributed.id]),
                            (f"site={attributed.site_id}", [attributed.id]),
                            (f"mailbox={other_box.id}", [extra.id]),
                            (f"mailbox={seeded['foreign'].mailbox_id}", [])):
        data = client.get(f"/api/v1/emails?{query}", headers=auth(token)).get_json()["data"]
        assert [item["id"] for item in data] == expected, query


@pytest.mark.parametrize("query, error", [
    ("status=maybe", "invalid_filter"),
    ("channel=tv", "invalid_filter"),
    ("period=forever", "invalid_filter"),
    ("site=abc", "invalid_filter"),
    ("date_from=2026-13-40&period=custom", "invalid_filter"),
    ("q=channel:tv", "invalid_search"),
    ("before=garbage", "invalid_cursor"),
    ("after=20260101000000000000.1&before=20260101000000000000.1", "invalid_cursor"),
    ("limit=0", "invalid_limit"),
    ("limit=201", "invalid_limit"),
    ("limit=ten", "invalid_limit"),
])
def test_bad_arguments_get_a_clear_400(client, seeded, query, error):
    token = token_of(seeded["account"])
    response = client.get(f"/api/v1/emails?{query}", headers=auth(token))
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == error and body["message"]


# ------------------------------------------------------------------ pages


def test_cursor_pages_cover_every_email_once_while_new_mail_arrives(client, factory, user):
    account = user.account
    box = factory.mailbox(account)
    base = utcnow().replace(microsecond=0) - timedelta(days=1)
    # 23 emails, several sharing one INTERNALDATE (ties are cut by id).
    existing = [factory.email(box, at=base + timedelta(minutes=n // 3)).id for n in range(23)]
    token = token_of(account)
    seen, cursor, first_newer, pages, arrived = [], None, None, 0, []
    while True:
        url = "/api/v1/emails?limit=5" + (f"&before={cursor}" if cursor else "")
        body = client.get(url, headers=auth(token)).get_json()
        pages += 1
        if first_newer is None:
            first_newer = body["newer"]
        seen += [item["id"] for item in body["data"]]
        # Mail arrives between pages: newer than anything listed, and a tie with the newest.
        arrived.append(factory.email(box, at=utcnow()).id)
        arrived.append(factory.email(box, at=base + timedelta(minutes=22 // 3)).id)
        cursor = body["older"]
        if cursor is None:
            break
    assert pages == 5
    assert len(seen) == len(set(seen))
    assert set(existing) <= set(seen)
    # What arrived during the walk is found exactly once from the first page's `newer` on.
    polled, cursor = [], first_newer
    while True:
        body = client.get(f"/api/v1/emails?limit=4&after={cursor}",
                          headers=auth(token)).get_json()
        if not body["data"]:
            assert body["newer"] == cursor
            break
        ids = [item["id"] for item in body["data"]]
        polled += ids
        cursor = body["newer"]
    assert len(polled) == len(set(polled))
    # Nothing is missed and nothing is read twice across the two walks.
    assert not set(polled) & set(seen)
    assert set(polled) | set(seen) == set(existing) | set(arrived)


def test_pages_are_newest_first_and_cut_by_limit(client, factory, user):
    box = factory.mailbox(user.account)
    base = utcnow().replace(microsecond=0) - timedelta(hours=5)
    ids = [factory.email(box, at=base + timedelta(minutes=n)).id for n in range(7)]
    token = token_of(user.account)
    body = client.get("/api/v1/emails?limit=3", headers=auth(token)).get_json()
    assert [item["id"] for item in body["data"]] == ids[::-1][:3]
    body = client.get(f"/api/v1/emails?limit=3&before={body['older']}",
                      headers=auth(token)).get_json()
    assert [item["id"] for item in body["data"]] == ids[::-1][3:6]
    body = client.get(f"/api/v1/emails?limit=3&before={body['older']}",
                      headers=auth(token)).get_json()
    assert [item["id"] for item in body["data"]] == [ids[0]] and body["older"] is None


# ------------------------------------------------------------------ rate limits


def test_each_token_is_rate_limited(app, client, seeded):
    app.config["API_TOKEN_RATE"] = "4 per minute"
    first, second = token_of(seeded["account"]), token_of(seeded["account"], name="second")
    for _ in range(4):
        assert client.get("/api/v1/emails", headers=auth(first)).status_code == 200
    response = client.get("/api/v1/emails", headers=auth(first))
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert client.get("/api/v1/emails", headers=auth(second)).status_code == 200


def test_wrong_tokens_are_rate_limited_per_address(app, client, seeded):
    app.config["API_TOKEN_RATE"] = "4 per minute"
    good = token_of(seeded["account"])
    for n in range(4):
        assert client.get("/api/v1/emails",
                          headers=auth("et_" + f"{n}" * 43)).status_code == 401
    assert client.get("/api/v1/emails", headers=auth("et_" + "x" * 43)).status_code == 429
    # The address waits, whatever it sends next: its refusals are checked before any look-up.
    assert client.get("/api/v1/emails", headers=auth(good)).status_code == 429
    # Another address is not affected.
    response = client.get("/api/v1/emails", headers=auth(good),
                          environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert response.status_code == 200


# ------------------------------------------------------------------ OpenAPI


def _openapi_path(rule):
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def _strict(schema):
    """The schema with no undocumented property allowed anywhere."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if schema.get("type") == "object" and "properties" in schema:
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def test_openapi_describes_every_route(app, client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item}
    routes = {(_openapi_path(rule), method) for rule in _routes(app)
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == described
    for path, item in spec["paths"].items():
        for operation in item.values():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path))
    # Every filter of the report is a documented parameter of the list.
    listed = {p["name"] for p in spec["paths"]["/api/v1/emails"]["get"]["parameters"]}
    assert set(api_v1.FILTERS) | {"before", "after", "limit"} == listed


def test_responses_match_the_documented_schemas(client, seeded):
    token = token_of(seeded["account"])
    spec = client.get("/api/v1/openapi.json").get_json()
    components = _strict(spec["components"])

    def check(response, path, status):
        schema = spec["paths"][path]["get"]["responses"][str(status)]
        schema = schema["content"]["application/json"]["schema"]
        assert response.status_code == status
        validator = Draft202012Validator({**_strict(schema), "components": components})
        errors = [error.message for error in validator.iter_errors(response.get_json())]
        assert not errors, errors

    attributed, _repeat, untracked = seeded["emails"]
    check(client.get("/api/v1/emails", headers=auth(token)), "/api/v1/emails", 200)
    check(client.get("/api/v1/emails?limit=1", headers=auth(token)), "/api/v1/emails", 200)
    check(client.get("/api/v1/emails?status=x", headers=auth(token)), "/api/v1/emails", 400)
    check(client.get("/api/v1/emails?q=channel:tv", headers=auth(token)),
          "/api/v1/emails", 400)
    check(client.get("/api/v1/emails"), "/api/v1/emails", 401)
    for email in (attributed, untracked):
        check(client.get(f"/api/v1/emails/{email.id}", headers=auth(token)),
              "/api/v1/emails/{email_id}", 200)
    check(client.get(f"/api/v1/emails/{seeded['foreign'].id}", headers=auth(token)),
          "/api/v1/emails/{email_id}", 404)
    check(client.get(f"/api/v1/visits/{seeded['visit'].id}", headers=auth(token)),
          "/api/v1/visits/{visit_id}", 200)
    check(client.get(f"/api/v1/visits/{seeded['foreign_visit'].id}", headers=auth(token)),
          "/api/v1/visits/{visit_id}", 404)
    # The documented fields are all there: the schemas require every property.
    email_schema = spec["components"]["schemas"]["Email"]
    assert set(email_schema["required"]) == set(email_schema["properties"])



# ------------------------------------------------------------------ over real HTTP


def _http_get(url, token=None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=auth(token) if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_over_http_with_parallel_clients_the_limit_holds(app, live_server, seeded):
    """A real server, 12 requests at once on one token with room for 5: exactly 5 pass."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    app.config["API_TOKEN_RATE"] = "5 per minute"
    token = token_of(seeded["account"])
    status, headers, body = _http_get(f"{live_server.url}/api/v1/emails")
    assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="api"'
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: _http_get(f"{live_server.url}/api/v1/emails", token),
                                range(12)))
    statuses = sorted(status for status, _headers, _body in answers)
    assert statuses == [200] * 5 + [429] * 7
    ok = [json.loads(body) for status, _headers, body in answers if status == 200]
    assert all({item["id"] for item in page["data"]} == {row.id for row in seeded["emails"]}
               for page in ok)
