"""CSV and Excel exports of the emails report: content, encoding, filters, isolation."""

import contextvars
import csv
import io
import os
from datetime import datetime, timedelta

import pytest
from flask.testing import FlaskClient
from openpyxl import load_workbook

from tracker.extensions import db
from tracker.models import utcnow
from tracker.reports import exports
from tracker.reports.periods import today, zone

HEADER = [
    "Received (Europe/Moscow)", "Mailbox", "Sender name", "Sender address", "Tracked address",
    "Recipient", "Subject", "New request or repeat", "Rule", "Attribution", "Channel",
    "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "Landing page",
    "Referrer", "Visit ID", "Google Analytics client ID", "Yandex Metrica client ID", "Email ID",
]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def streamed(client, url):
    """(context, response) of a GET whose body is read later, chunk by chunk.

    The test client runs each request in a fresh contextvars context; a streamed body
    (stream_with_context) must be read in that same context, as a WSGI server does.
    Read it with context.run(...).
    """
    context = contextvars.Context()
    return context, context.run(FlaskClient.open, client, url, buffered=False)


def get(client, url):
    """A GET whose streamed body is read within the request (buffered)."""
    return client.get(url, buffered=True)


def read_csv(client, url):
    """(header, rows as dicts) of a CSV export; checks the BOM and the download headers."""
    response = get(client, url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="emails-')
    body = response.get_data()
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(text, newline="")))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


def read_xlsx(client, url):
    """(worksheet, header, rows as dicts of cell values) of an Excel export."""
    response = get(client, url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.mimetype == XLSX
    assert response.headers["Content-Disposition"].startswith('attachment; filename="emails-')
    workbook = load_workbook(io.BytesIO(response.get_data()))
    sheet = workbook.active
    values = [["" if v is None else v for v in row] for row in sheet.iter_rows(values_only=True)]
    header, *rows = values
    return sheet, header, [dict(zip(header, row, strict=True)) for row in rows]


@pytest.fixture
def seeded(factory, user):
    """Six emails of the account an hour apart (oldest first), and one of another account."""
    account = user.account
    account.timezone = "Europe/Moscow"
    db.session.commit()
    site = factory.site(account, name="Shop")
    ads = factory.rule(account, name="Реклама", address="ads@shop.example")
    seo = factory.rule(account, name="Organic", address="seo@shop.example")
    credential = factory.credential(account, login="sales@shop.example")
    box = factory.mailbox(account, credential=credential)
    visit = factory.visit(site, utm_source="google", channel="paid")
    base = utcnow().replace(microsecond=0) - timedelta(hours=10)
    full_source = {
        "channel": "paid", "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "весна",
        "utm_content": "banner-1", "utm_term": "прайс лист",
        "landing_url": "https://shop.example/?a=1",
        "referrer": "https://www.google.com/", "ga_client_id": "GA1.1.123.456",
        "ym_client_id": "1700000000123",
    }
    plan = [  # sender, name, subject, counted, rule, channel, kind, source, visit
        ("ivan@mail.ru", "Иван Петров", "Прайс-лист, пожалуйста", True, ads, "paid", "pool",
         full_source, visit),
        ("ivan@mail.ru", "Иван Петров", "Re: прайс-лист", False, ads, "paid", "pool",
         full_source, visit),
        ("anna@yandex.ru", "Anna", "Need a quote", True, seo, "organic", "static",
         {"channel": "organic", "utm_source": "yandex"}, None),
        ("bob@corp.example", "", "Hello", True, None, None, None, None, None),
        ("eve@gmail.com", "Eve", "Order", True, ads, "paid", "fallback",
         {"channel": "paid", "utm_source": "yandex"}, None),
        ("bob@corp.example", "", "Hello again", False, None, None, None, None, None),
    ]
    rows = []
    for n, (sender, name, subject, counted, rule, channel, kind, source, the_visit) in \
            enumerate(plan):
        rows.append(factory.email(
            box, at=base + timedelta(hours=n), sender=sender, from_name=name, subject=subject,
            counted=counted, rule_id=rule.id if rule else None, channel=channel,
            utm_source=(source or {}).get("utm_source"), attribution=kind, source=source,
            tracked_address=rule.static_address if rule else None,
            visit_id=the_visit.id if the_visit else None, site_id=site.id if rule else None))
    stranger = factory.user()
    foreign_box = factory.mailbox(stranger.account)
    foreign = factory.email(foreign_box, at=base + timedelta(hours=3), sender="spy@evil.example",
                            subject="Foreign price list")
    return {"ids": [row.id for row in rows], "rows": rows, "box": box, "ads": ads, "seo": seo,
            "visit": visit, "base": base, "foreign": foreign}


def newest_first(ids, *positions):
    return [ids[p] for p in sorted(positions, reverse=True)]


def moscow(at):
    """A naive UTC time as Moscow local time (UTC+3, no daylight saving)."""
    return at + timedelta(hours=3)


# ------------------------------------------------------------------ CSV


def test_csv_has_bom_header_and_every_column_newest_first(logged_in, seeded):
    header, rows = read_csv(logged_in, "/emails.csv")
    assert header == HEADER
    ids = seeded["ids"]
    assert [int(row["Email ID"]) for row in rows] == list(reversed(ids))
    first = rows[-1]  # the oldest: a pool lease with every source field
    assert first == {
        "Received (Europe/Moscow)": f"{moscow(seeded['base']):%Y-%m-%d %H:%M:%S}",
        "Mailbox": "sales@shop.example",
        "Sender name": "Иван Петров",
        "Sender address": "ivan@mail.ru",
        "Tracked address": "ads@shop.example",
        "Recipient": "info@shop.example",
        "Subject": "Прайс-лист, пожалуйста",
        "New request or repeat": "New",
        "Rule": "Реклама",
        "Attribution": "Pool of addresses",
        "Channel": "Paid ads",
        "utm_source": "google",
        "utm_medium": "cpc",
        "utm_campaign": "весна",
        "utm_content": "banner-1",
        "utm_term": "прайс лист",
        "Landing page": "https://shop.example/?a=1",
        "Referrer": "https://www.google.com/",
        "Visit ID": str(seeded["visit"].id),
        "Google Analytics client ID": "GA1.1.123.456",
        "Yandex Metrica client ID": "1700000000123",
        "Email ID": str(ids[0]),
    }
    assert rows[-2]["New request or repeat"] == "Repeat"
    assert rows[-3]["Attribution"] == "Static"
    assert rows[-3]["Channel"] == "Organic search"
    assert rows[-3]["Landing page"] == "" and rows[-3]["Visit ID"] == ""
    untracked = rows[-4]
    assert untracked["Attribution"] == "Not tracked"
    assert untracked["Rule"] == untracked["Channel"] == untracked["utm_source"] == ""
    assert rows[-5]["Attribution"] == "Fallback address"


@pytest.mark.parametrize("query, positions", [
    ("channel=paid", (0, 1, 4)),
    ("channel=none", (3, 5)),
    ("status=repeat", (1, 5)),
    ("status=new&tracked=yes", (0, 2, 4)),
    ("tracked=no", (3, 5)),
    ("utm_source=yandex", (2, 4)),
    ("q=прайс", (0, 1)),
    ("q=channel:paid+from:ivan", (0, 1)),
    ("q=nothing-matches-this", ()),
    # Search keys that look up the mailbox and the rule, tables the export also joins.
    ("q=rule:реклама", (0, 1, 4)),
    ("q=rule:Organic+status:new", (2,)),
    ("q=mailbox:sales@shop", (0, 1, 2, 3, 4, 5)),
    ("q=mailbox:nobody", ()),
])
def test_csv_applies_the_report_filters(logged_in, seeded, query, positions):
    _header, rows = read_csv(logged_in, f"/emails.csv?{query}")
    assert [int(row["Email ID"]) for row in rows] == newest_first(seeded["ids"], *positions)


def test_csv_filters_by_rule_and_mailbox_ids(logged_in, seeded, factory, user):
    other_box = factory.mailbox(user.account)
    extra = factory.email(other_box, subject="other box")
    _header, rows = read_csv(logged_in, f"/emails.csv?rule={seeded['seo'].id}")
    assert [int(row["Email ID"]) for row in rows] == [seeded["ids"][2]]
    _header, rows = read_csv(logged_in, f"/emails.csv?mailbox={other_box.id}")
    assert [int(row["Email ID"]) for row in rows] == [extra.id]


def test_csv_custom_period_is_in_the_account_time_zone(logged_in, seeded, factory):
    box = seeded["box"]
    # 2026-03-09 22:30 UTC is already 10 March in Moscow; 21:00 UTC the day before is 9 March.
    late = factory.email(box, at=datetime(2026, 3, 9, 22, 30), subject="late")
    early = factory.email(box, at=datetime(2026, 3, 9, 20, 0), subject="early")
    factory.email(box, at=datetime(2026, 3, 11, 21, 0), subject="after")  # 12 March local
    _header, rows = read_csv(
        logged_in, "/emails.csv?period=custom&date_from=2026-03-10&date_to=2026-03-11")
    assert [int(row["Email ID"]) for row in rows] == [late.id]
    assert rows[0]["Received (Europe/Moscow)"] == "2026-03-10 01:30:00"
    _header, rows = read_csv(logged_in, "/emails.csv?period=custom&date_from=2026-03-09"
                                        "&date_to=2026-03-09")
    assert [int(row["Email ID"]) for row in rows] == [early.id]


def test_csv_neutralises_formulas_and_removes_invisible_characters(logged_in, user, factory):
    box = factory.mailbox(user.account)
    email = factory.email(
        box, sender="@evil.example", from_name="+cmd|' /C calc'!A0",
        subject='=HYPERLINK("http://evil.example","click")', utm_source="-2+3",
        channel="paid", attribution="static",
        source={"utm_source": "-2+3", "utm_campaign": "\u200b=1+1",
                "utm_medium": "\tcpc", "utm_term": "ok\u202etxt.exe",
                "utm_content": "a\u2066b\ufeffc",
                "landing_url": "https://shop.example/\u200f?x", "referrer": "\r=cmd"},
        tracked_address="moc.live\u202e@evil.example")
    _header, [row] = read_csv(logged_in, "/emails.csv")
    assert row["Email ID"] == str(email.id)
    assert row["Sender address"] == "'@evil.example"
    assert row["Sender name"] == "'+cmd|' /C calc'!A0"
    assert row["Subject"] == "'=HYPERLINK(\"http://evil.example\",\"click\")"
    assert row["utm_source"] == "'-2+3"
    assert row["utm_campaign"] == "'=1+1"  # the zero-width space is gone, the formula is not
    assert row["utm_medium"] == " cpc"  # a tab becomes a space: no formula follows
    assert row["Referrer"] == "' =cmd"  # a CR becomes a space, and a formula follows
    assert row["utm_term"] == "oktxt.exe"
    assert row["utm_content"] == "abc"
    assert row["Landing page"] == "https://shop.example/?x"
    assert row["Tracked address"] == "moc.live@evil.example"
    assert row["Channel"] == "Paid ads"


def test_odd_json_sources_become_text(logged_in, user, factory):
    box = factory.mailbox(user.account)
    factory.email(box, subject="a", attribution="static", channel="martian",
                  source={"utm_term": 5, "utm_content": None, "utm_campaign": ["x"],
                          "landing_url": {"u": 1}, "referrer": True})
    factory.email(box, subject="b", source=["not", "a", "dict"], utm_source=None)
    _header, rows = read_csv(logged_in, "/emails.csv?q=subject:a")
    [row] = rows
    assert (row["utm_term"], row["utm_content"], row["utm_campaign"]) == ("5", "", "['x']")
    assert row["Referrer"] == "True" and row["Channel"] == "martian"
    _header, rows = read_csv(logged_in, "/emails.csv?q=subject:b")
    assert rows[0]["utm_source"] == "" and rows[0]["Landing page"] == ""
    _sheet, _header, rows = read_xlsx(logged_in, "/emails.xlsx")
    assert len(rows) == 2


def test_csv_of_an_empty_account_is_the_header_alone(logged_in):
    header, rows = read_csv(logged_in, "/emails.csv")
    assert header[1:] == HEADER[1:] and header[0] == "Received (UTC)"
    assert rows == []


def test_file_name_carries_the_account_local_date(logged_in, user):
    user.account.timezone = "Pacific/Kiritimati"  # UTC+14: often a day ahead of UTC
    db.session.commit()
    expected = f"emails-{today(zone('Pacific/Kiritimati')).isoformat()}"
    for extension in ("csv", "xlsx"):
        response = get(logged_in, f"/emails.{extension}")
        assert response.headers["Content-Disposition"] == \
            f'attachment; filename="{expected}.{extension}"'
        assert response.headers["Cache-Control"] == "no-store"


def test_csv_streams_in_chunks(logged_in, user, factory, monkeypatch):
    monkeypatch.setattr(exports, "CSV_CHUNK", 200)
    monkeypatch.setattr(exports, "YIELD_PER", 3)
    box = factory.mailbox(user.account)
    base = utcnow() - timedelta(days=1)
    for n in range(20):
        factory.email(box, at=base + timedelta(minutes=n), subject=f"Письмо {n}", commit=False)
    db.session.commit()
    context, response = streamed(logged_in, "/emails.csv")
    assert response.is_streamed
    chunks = context.run(list, response.response)
    context.run(response.close)
    assert len(chunks) > 5
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"), newline="")))
    assert [row[6] for row in rows[1:]] == [f"Письмо {n}" for n in reversed(range(20))]


@pytest.mark.parametrize("query", [
    "q=%22unterminated", "q=channel:bogus", "q=rule:999999999999999999999", "q=status:",
    "q=" + "x" * 5000, "channel=bogus&status=maybe&tracked=perhaps&site=-1&mailbox=abc&rule=0",
    "period=custom&date_from=9999-99-99&date_to=0000-00-00",
    "period=custom&date_from=0001-01-01&date_to=2026-01-01",
    "period=custom&date_to=9999-12-31", "period=custom&date_from=0001-01-01",
    "period=nonsense",
    "site=99999999999999999999999", "q=%00%EF%BF%BE", "q=mailbox:%25_",
])
def test_no_filter_breaks_an_export(logged_in, seeded, query):
    for extension in ("csv", "xlsx"):
        response = get(logged_in, f"/emails.{extension}?{query}")
        assert response.status_code == 200, (extension, query)


# ------------------------------------------------------------------ XLSX


def test_xlsx_has_the_same_columns_and_rows(logged_in, seeded):
    sheet, header, rows = read_xlsx(logged_in, "/emails.xlsx")
    assert header == HEADER
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.column_dimensions["G"].width >= 40  # the subject
    ids = seeded["ids"]
    assert [row["Email ID"] for row in rows] == list(reversed(ids))
    _csv_header, csv_rows = read_csv(logged_in, "/emails.csv")
    first = rows[-1]
    assert first["Received (Europe/Moscow)"] == moscow(seeded["base"])
    assert first["Visit ID"] == seeded["visit"].id
    # Every other cell is the text the CSV has.
    for xlsx_row, csv_row in zip(rows, csv_rows, strict=True):
        for name in HEADER[1:]:
            value = xlsx_row[name]
            assert ("" if value == "" else str(value)) == csv_row[name], name
    assert first["Sender name"] == "Иван Петров"
    assert first["utm_campaign"] == "весна"


def test_xlsx_applies_the_filters(logged_in, seeded):
    _sheet, _header, rows = read_xlsx(logged_in, "/emails.xlsx?channel=paid&status=new")
    assert [row["Email ID"] for row in rows] == newest_first(seeded["ids"], 0, 4)


def test_xlsx_neutralises_formulas_and_removes_invisible_characters(logged_in, user, factory):
    box = factory.mailbox(user.account)
    factory.email(box, sender="=1+1@evil.example", from_name="@SUM(A1:A9)",
                  subject="\u202e=cmd|' /C calc'!A0", utm_source="+44", channel="direct",
                  attribution="static", source={"utm_term": "x\u200by\u00adz"})
    _sheet, _header, [row] = read_xlsx(logged_in, "/emails.xlsx")
    assert row["Sender address"] == "'=1+1@evil.example"
    assert row["Sender name"] == "'@SUM(A1:A9)"
    assert row["Subject"] == "'=cmd|' /C calc'!A0"
    assert row["utm_source"] == "'+44"
    assert row["utm_term"] == "xyz"


def test_xlsx_stops_at_the_sheet_row_limit_and_says_so(logged_in, user, factory, monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 5)  # the header, 3 emails and the note
    box = factory.mailbox(user.account)
    base = utcnow() - timedelta(days=1)
    emails = [factory.email(box, at=base + timedelta(minutes=n), subject=f"s{n}") for n in range(6)]
    sheet, _header, rows = read_xlsx(logged_in, "/emails.xlsx")
    assert sheet.max_row == 5
    assert [row["Email ID"] for row in rows[:3]] == [e.id for e in reversed(emails)][:3]
    note = rows[3]["Received (UTC)"]
    assert "at most 5 rows" in note and "CSV" in note
    # Exactly as many emails as fit: no note.
    db.session.delete(emails[0])
    db.session.delete(emails[1])
    db.session.commit()
    sheet, _header, rows = read_xlsx(logged_in, "/emails.xlsx")
    assert [row["Email ID"] for row in rows] == [e.id for e in reversed(emails[2:])]


def test_xlsx_temporary_files_are_removed(logged_in, seeded, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))
    context, response = streamed(logged_in, "/emails.xlsx")
    assert response.is_streamed
    context.run(next, iter(response.response))
    assert os.listdir(scratch)  # the workbook being sent
    context.run(response.close)  # the client went away mid-download
    assert os.listdir(scratch) == []
    # A download abandoned before its first byte leaves nothing either.
    context, response = streamed(logged_in, "/emails.xlsx")
    context.run(response.close)
    assert os.listdir(scratch) == []
    get(logged_in, "/emails.xlsx").get_data()
    assert os.listdir(scratch) == []


# ------------------------------------------------------------------ access


def test_another_accounts_emails_never_appear(logged_in, seeded):
    foreign = seeded["foreign"].id
    for query in ("", "?q=price", "?q=from:spy", f"?mailbox={seeded['foreign'].mailbox_id}"):
        _header, rows = read_csv(logged_in, f"/emails.csv{query}")
        assert foreign not in [int(row["Email ID"]) for row in rows]
        assert all(row["Sender address"] != "spy@evil.example" for row in rows)
        _sheet, _header, rows = read_xlsx(logged_in, f"/emails.xlsx{query}")
        assert foreign not in [row["Email ID"] for row in rows]


@pytest.mark.parametrize("path", ["/emails.csv", "/emails.xlsx"])
def test_signed_out_request_goes_to_the_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# ------------------------------------------------------------------ cells


def test_a_row_is_cleaned_as_each_cell_would_be():
    """clean_cells (one check per row) gives what clean gives cell by cell."""
    import random

    alphabet = ["a", "Я", " ", "=", "+", "-", "@", "\t", "\r", "\n", "\x00", "\u202e", "\u200b",
                "\ufeff", "\u00ad", "\u3164", "\u2066", "\u00a0", "\u2028", "é", "'", "1"]
    rnd = random.Random(7)
    for _ in range(3000):
        cells = ["".join(rnd.choices(alphabet, k=rnd.randrange(0, 6))) for _ in range(5)]
        assert exports.clean_cells(cells) == [exports.clean(cell) for cell in cells], cells
    assert exports.clean_cells(["Иван", "ok"]) == ["Иван", "ok"]
    assert exports.clean(None) == ""
    assert exports.clean("  =1") == "'  =1"
    assert exports.clean("\u3164=1") == "'=1"  # a filler letter hid the formula


@pytest.mark.parametrize("name", ["Europe/Berlin", "Australia/Lord_Howe", "America/St_Johns",
                                  "Asia/Kathmandu", "Europe/Moscow", "UTC"])
def test_local_times_are_right_across_daylight_saving_switches(name):
    """The offset remembered per hour never leaks into an hour with a switch."""
    from datetime import UTC

    tz = zone(name)
    as_text, as_datetime = exports._LocalTime(tz), exports._LocalTime(tz)
    at = datetime(2027, 1, 1)
    while at > datetime(2026, 1, 1):  # newest first, as exports read them
        expected = at.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
        text = at.isoformat(" ", "microseconds")
        assert as_text(at, text[:13]) == expected, at
        assert as_datetime(at, at.replace(minute=0, second=0, microsecond=0)) == expected, at
        at -= timedelta(minutes=7, seconds=13)


def test_an_uncertain_attribution_says_so_in_the_export(logged_in, seeded, factory):
    uncertain = factory.email(seeded["box"], subject="Late", rule_id=seeded["ads"].id,
                              attribution="pool", uncertain="lease_ended",
                              tracked_address="ads@shop.example", channel="paid")
    _header, rows = read_csv(logged_in, "/emails.csv")
    by_id = {int(row["Email ID"]): row for row in rows}
    assert by_id[uncertain.id]["Attribution"] == "Pool of addresses (uncertain)"
    assert by_id[seeded["ids"][0]]["Attribution"] == "Pool of addresses"
