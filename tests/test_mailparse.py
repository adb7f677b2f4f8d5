"""Header parsing on a corpus of awkward and hostile messages: every one yields a record."""

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.addresses import canonical_address
from tracker.mailparse import MAX_RECIPIENTS, MAX_SUBJECT, decode_words, parse_headers


def h(text):
    return text.replace("\n", "\r\n").encode("utf-8", "surrogateescape")


def test_plain_message():
    parsed = parse_headers(h(
        "Message-ID: <abc@mail.example>\nDate: Mon, 31 Jul 2023 15:00:00 +0300\n"
        "From: Ivan Petrov <Ivan@Mail.Example>\nTo: info@shop.example\nSubject: Hello\n\n"
    ))
    assert parsed.message_id == "abc@mail.example"
    assert parsed.date == datetime(2023, 7, 31, 12, 0)
    assert (parsed.from_address, parsed.from_name) == ("ivan@mail.example", "Ivan Petrov")
    assert parsed.recipients == ["info@shop.example"]
    assert parsed.subject == "Hello"
    assert parsed.fingerprint == "abc@mail.example"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("=?UTF-8?B?0JfQsNGP0LLQutCwINC90LAg0YHQsNC50YLQtQ==?=", "Заявка на сайте"),
        ("=?koi8-r?B?8MnT2M3P?=", "Письмо"),
        ("=?windows-1251?Q?=CF=F0=E8=E2=E5=F2?=", "Привет"),
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?iso-8859-5?b?vw==?=", "П"),
        ("=?utf-8?q?two?= =?utf-8?q?_words?=", "two words"),
        ("=?bogus-charset?q?abc?=", "abc"),
        ("=?utf-8?b?!!!not base64?=", "=?utf-8?b?!!!not base64?="),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("plain\r\n folded\r\n\tsubject", "plain folded subject"),
        ("bell\x07 and nul\x00", "bell and nul"),
    ],
)
def test_decode_words(header, expected):
    assert decode_words(header) == expected


def test_raw_8bit_headers_in_utf8_and_cp1251():
    utf8 = parse_headers("Subject: Заказ\r\nFrom: Пётр <p@x.example>\r\n\r\n".encode())
    assert utf8.subject == "Заказ" and utf8.from_name == "Пётр"
    cp1251 = parse_headers("Subject: Заказ\r\n\r\n".encode("cp1251"))
    assert cp1251.subject == "Заказ"


def test_recipients_from_all_fields_normalised_and_deduplicated():
    parsed = parse_headers(h(
        "Delivered-To: Info@Shop.Example\nX-Original-To: info+x7k2@shop.example\n"
        "To: \"Shop\" <INFO@shop.example>, other@xn--e1afmkfd.xn--p1ai\n"
        "Cc: =?utf-8?q?=D0=90?= <cc@пример.рф>, broken-address, , <>\n\n"
    ))
    assert parsed.recipients == [
        "info@shop.example", "info+x7k2@shop.example", "other@пример.рф", "cc@пример.рф",
    ]
    assert parsed.recipient == "info@shop.example"
    # Each address with every header it was in, for the email's page.
    assert parsed.recipient_fields == [
        ["Delivered-To", "info@shop.example"], ["X-Original-To", "info+x7k2@shop.example"],
        ["To", "info@shop.example"], ["To", "other@пример.рф"], ["Cc", "cc@пример.рф"],
    ]


def test_missing_everything_still_parses():
    parsed = parse_headers(b"")
    assert parsed.message_id is None and parsed.date is None and parsed.from_address is None
    assert parsed.recipients == [] and parsed.subject == ""
    assert parsed.fingerprint.startswith("sha256:")


def test_missing_message_id_gets_a_stable_digest():
    raw = h("Date: Tue, 1 Aug 2023 10:00:00 +0000\nFrom: a@x.example\nTo: b@y.example\nSubject: Hi\n\n")
    first, second = parse_headers(raw), parse_headers(raw)
    assert first.message_id is None
    assert first.fingerprint == second.fingerprint
    other = parse_headers(raw.replace(b"Hi", b"Ho"))
    assert other.fingerprint != first.fingerprint


def test_duplicate_and_odd_message_ids():
    assert parse_headers(h("Message-ID: <one@x>\nMessage-ID: <two@x>\n\n")).message_id == "one@x"
    assert parse_headers(h("Message-ID: no-brackets@x\n\n")).message_id == "no-brackets@x"
    assert parse_headers(h("Message-ID:\n\n")).message_id is None


@pytest.mark.parametrize(
    "date",
    ["", "yesterday", "Mon, 32 Jul 2023 25:61:00 +0000", "Mon, 31 Jul 99999 12:00:00 +0000",
     "31 Jul 2023 12:00:00 -9999", "\x00\x01"],
)
def test_malformed_dates_become_none(date):
    assert parse_headers(h(f"Date: {date}\nSubject: x\n\n")).date is None


def test_date_without_zone_is_taken_as_utc():
    assert parse_headers(h("Date: 31 Jul 2023 12:00:00\n\n")).date == datetime(2023, 7, 31, 12, 0)


def test_oversized_headers_are_bounded():
    many = ", ".join(f"r{i}@x.example" for i in range(5000))
    parsed = parse_headers(h(f"To: {many}\nSubject: {'S' * 200000}\n\n"))
    assert len(parsed.recipients) == MAX_RECIPIENTS
    assert len(parsed.subject) == MAX_SUBJECT


def test_hostile_markup_is_kept_as_text():
    parsed = parse_headers(h('From: "<script>alert(1)</script>" <x@y.example>\n'
                             "Subject: <img src=x onerror=alert(1)>\n\n"))
    assert parsed.from_name == "<script>alert(1)</script>"
    assert parsed.subject == "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("Info@Shop.Example", "info@shop.example"),
        (" <a@b.example> ", "a@b.example"),
        ("a@xn--e1afmkfd.xn--p1ai", "a@пример.рф"),
        ("a@ПРИМЕР.РФ", "a@пример.рф"),
        ("a@b.example.", "a@b.example"),
        ("no-at-sign", None),
        ("two@@ats", None),
        ("@domain", None),
        ("local@", None),
        ("sp ace@x.example", None),
        ("", None),
        (None, None),
    ],
)
def test_canonical_address(text, canonical):
    assert canonical_address(text) == canonical


header_lines = st.lists(
    st.tuples(
        st.sampled_from(["From", "To", "Cc", "Subject", "Date", "Message-ID", "Delivered-To", "X"]),
        st.binary(max_size=200),
    ),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(header_lines)
def test_parse_never_raises_on_arbitrary_bytes(lines):
    raw = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in lines) + b"\r\n"
    parsed = parse_headers(raw)
    assert isinstance(parsed.subject, str) and parsed.fingerprint


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_garbage(raw):
    parse_headers(raw)


# The fast path for `addr` and `Name <addr>` must read exactly what getaddresses reads.
_atoms = st.text(alphabet=st.sampled_from(list("abcXYZ019.-_+=?!#$%&'*/^`{|}~ЖжéΩ")), min_size=1,
                 max_size=8)
_names = st.one_of(
    st.just(""),
    st.lists(_atoms, min_size=1, max_size=3).map(" ".join),
    st.lists(_atoms, min_size=1, max_size=3).map(lambda w: '"' + ", ".join(w) + '"'),
    st.just("=?UTF-8?B?0JjQstCw0L0=?="),
)
_domains = st.lists(st.text(alphabet=st.sampled_from(list("abcxn-0рф")), min_size=1, max_size=6),
                    min_size=1, max_size=3).map(".".join)


@settings(max_examples=300, deadline=None)
@given(_names, _atoms, _domains, st.booleans(), st.sampled_from(["", " ", "  "]))
def test_simple_addresses_read_as_getaddresses_reads_them(name, local, domain, brackets, pad):
    from email.utils import getaddresses

    from tracker.mailparse import simple_address

    address = f"{local}@{domain}"
    text = f"{pad}{name} <{address}>{pad}" if name or brackets else f"{pad}{address}{pad}"
    fast = simple_address(text)
    [slow] = getaddresses([text])
    if fast is not None and slow != ("", ""):
        assert (" ".join(fast[0].split()), fast[1]) == (" ".join(slow[0].split()), slow[1])


@pytest.mark.parametrize(
    ("header", "address", "name"),
    [
        ("MAILER DAEMON <>", None, "MAILER DAEMON"),
        ('"Mail Delivery System" <>', None, "Mail Delivery System"),
        ("=?utf-8?b?0JjQstCw0L0=?= <>", None, "Иван"),
        ("Ivan <not-an-address>", None, "Ivan"),
        ("MAILER-DAEMON", None, "MAILER-DAEMON"),
        ("<>", None, ""),
        ("<b>Ivan</b> <ivan@example.org>", "ivan@example.org", "<b>Ivan</b>"),
        ("Ivan <script> <Ivan@Example.org>", "ivan@example.org", "Ivan <script>"),
        ('<i>"Shop"</i> <shop@example.org>  ', "shop@example.org", '<i>"Shop"</i>'),
        ("Ivan Petrov <ivan@example.org>", "ivan@example.org", "Ivan Petrov"),
        ("a@example.org, b@example.org", "a@example.org", ""),
    ],
)
def test_from_name_and_address_survive_odd_senders(header, address, name):
    parsed = parse_headers(h(f"From: {header}\n\n"))
    assert (parsed.from_address, parsed.from_name) == (address, name)


def test_c1_controls_and_nul_never_stored_but_invisible_characters_are_kept():
    parsed = parse_headers(h(
        "From: =?utf-8?q?Iv=C2=85an=C2=9B=00?= <i@x.example>\n"
        "Subject: =?utf-8?q?Pay=E2=80=AEfdp.exe=C2=80=C2=9F=00?=\n\n"
    ))
    # C1 controls and NUL are gone (NEL unfolds into a space) ...
    assert parsed.from_name == "Iv an"
    # ... while the bidi override stays in the stored value: pages show it through `visible`.
    assert parsed.subject == "Pay\u202efdp.exe"
    for text in (parsed.from_name, parsed.subject):
        assert not any(c == "\x00" or "\x80" <= c <= "\x9f" for c in text)


def test_nul_byte_does_not_turn_utf8_into_cp1251_letters():
    # "Заказ" in UTF-8 with a NUL inside the first letter's two bytes.
    raw = "Заказ".encode()
    broken = raw[:1] + b"\x00" + raw[1:]
    parsed = parse_headers(b"Subject: " + broken + b"\r\nFrom: " + broken + b" <a@x.example>\r\n\r\n")
    assert parsed.subject == "Заказ"
    assert parsed.from_name == "Заказ"
    assert decode_words(b"\xd0\x00\x97\x01\x02") == "З"
    # Real Windows-1251 text with a control byte still reads as Windows-1251.
    assert decode_words("Заказ".encode("cp1251") + b"\x00") == "Заказ"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_no_stored_text_has_nul_or_c1_controls(value):
    parsed = parse_headers(b"From: " + value + b"\r\nSubject: " + value + b"\r\n"
                           b"Message-ID: " + value + b"\r\n\r\n")
    for text in (parsed.from_name, parsed.subject, parsed.message_id or "",
                 parsed.from_address or "", *parsed.recipients):
        assert not any(c == "\x00" or "\x80" <= c <= "\x9f" for c in text), text


def test_in_reply_to_and_references():
    headers = parse_headers(
        b"Message-ID: <reply@client.example>\r\n"
        b"In-Reply-To: <answer@shop.example>\r\n"
        b"References: <first@client.example>\r\n"
        b"\t<answer@shop.example>\r\n\r\n"
    )
    assert headers.in_reply_to == "answer@shop.example"
    assert headers.references == ["first@client.example", "answer@shop.example"]
    assert parse_headers(b"Subject: x\r\n\r\n").in_reply_to is None
    assert parse_headers(b"Subject: x\r\n\r\n").references == []


@pytest.mark.parametrize("value, expected", [
    # Free text some clients write around the id, or instead of it.
    (b"Ivan's message of Mon, 1 Jan <id1@x> (sent)", "id1@x"),
    (b"Mon, 1 Jan 2024 10:00 +0300", None),
    (b"<>", None),
    (b"<with space@x> <ok@x>", "ok@x"),
    (b"<" + b"a" * 501 + b"@x>", None),
    (b"<" + b"a" * 498 + b"@x>", "a" * 498 + "@x"),
    (b"<ctl\x07@x>", "ctl@x"),
    (b"=?utf-8?b?PGlkQHg+?=", None),
    (b"<\xd0\xb8\xd0\xb4@x>", "\u0438\u0434@x"),
])
def test_hostile_in_reply_to(value, expected):
    headers = parse_headers(b"In-Reply-To: " + value + b"\r\n\r\n")
    assert headers.in_reply_to == expected
    if expected:
        assert not any(ord(ch) < 32 or 0x7f <= ord(ch) <= 0x9f for ch in expected)


def test_references_are_bounded_and_keep_the_nearest_ids():
    ids = b" ".join(b"<r%d@x>" % n for n in range(5000))
    headers = parse_headers(b"References: " + ids + b" <r1@x>\r\n\r\n")
    assert len(headers.references) == 20
    # The last ids, nearest the message, without repeats.
    assert headers.references[-1] == "r4999@x"
    assert headers.references[0] == "r4980@x"
    long_id = b"<" + b"z" * 600 + b"@x>"
    odd = parse_headers(b"References: " + long_id + b" junk <a b@x> <c\x00d@x>\r\n"
                        b"References: <second@x>\r\n\r\n")
    assert all(len(i) <= 500 for i in odd.references)
    assert odd.references == ["cd@x", "second@x"]
    assert all(not any(ord(ch) < 32 for ch in i) for i in odd.references)
