"""The channel of a visit, from real referrers and utm tags."""

import pytest

from tracker.channels import CHANNELS, derive_channel, referrer_host

REFERRERS = [
    ("https://www.google.com/", "organic"),
    ("https://www.google.ru/", "organic"),
    ("https://www.google.co.uk/search?q=flowers", "organic"),
    ("https://google.com.tr/", "organic"),
    ("https://yandex.ru/search/?text=цветы", "organic"),
    ("https://ya.ru/", "organic"),
    ("https://yandex.kz/", "organic"),
    ("https://yandex.com.tr/", "organic"),
    ("https://www.bing.com/search?q=x", "organic"),
    ("https://go.mail.ru/search?q=x", "organic"),
    ("https://duckduckgo.com/", "organic"),
    ("https://search.yahoo.com/search?p=x", "organic"),
    ("https://nova.rambler.ru/search?query=x", "organic"),
    ("https://www.baidu.com/", "organic"),
    ("android-app://com.google.android.googlequicksearchbox/https/www.google.com", "organic"),
    ("https://vk.com/away.php", "social"),
    ("https://m.vk.com/wall-1_2", "social"),
    ("https://ok.ru/group/1", "social"),
    ("https://t.me/channel/42", "social"),
    ("https://web.telegram.org/", "social"),
    ("android-app://org.telegram.messenger/", "social"),
    ("https://l.facebook.com/l.php?u=x", "social"),
    ("https://m.facebook.com/", "social"),
    ("https://l.instagram.com/?u=x", "social"),
    ("https://t.co/abc", "social"),
    ("https://x.com/someone", "social"),
    ("https://www.youtube.com/watch?v=x", "social"),
    ("https://dzen.ru/a/xyz", "social"),
    ("https://zen.yandex.ru/media/x", "social"),
    ("https://www.linkedin.com/feed/", "social"),
    ("https://my.mail.ru/community/x", "social"),
    ("https://mail.google.com/mail/u/0/", "email"),
    ("https://mail.yandex.ru/?uid=1", "email"),
    ("https://e.mail.ru/inbox/", "email"),
    ("https://outlook.live.com/mail/0/", "email"),
    ("https://mail.rambler.ru/", "email"),
    ("android-app://com.google.android.gm/", "email"),
    ("https://habr.com/ru/articles/1/", "referral"),
    ("https://partner-shop.ru/links", "referral"),
    ("https://news.ycombinator.com/", "referral"),
    ("https://notgoogle.com/", "referral"),
    ("https://мойсайт.рф/", "referral"),
    ("", "direct"),
    (None, "direct"),
    ("not a url at all", "referral"),
    ("http://[::1", "direct"),
]


@pytest.mark.parametrize(("referrer", "channel"), REFERRERS)
def test_channel_from_referrer(referrer, channel):
    assert derive_channel(referrer=referrer) == channel


UTM = [
    # (utm_source, utm_medium, referrer, channel)
    ("yandex", "cpc", "https://yandex.ru/", "paid"),
    ("google", "CPC", "https://www.google.com/", "paid"),
    ("google", "ppc", None, "paid"),
    ("vk", "paid_social", "https://vk.com/", "paid"),
    ("mytarget", "cpm", None, "paid"),
    ("admitad", "cpa", None, "paid"),
    ("yandex", "display", None, "paid"),
    ("facebook", "paid-social", None, "paid"),
    ("telegram", "paid", None, "paid"),
    ("newsletter", "email", "https://mail.google.com/", "email"),
    ("sendpulse", "e-mail", None, "email"),
    ("unisender", None, None, "email"),
    ("vk", "social", None, "social"),
    ("telegram", None, None, "social"),
    ("Instagram", None, None, "social"),
    ("google", "organic", None, "organic"),
    ("yandex", None, None, "organic"),
    ("partner", "referral", None, "referral"),
    ("some-blog", "post", None, "referral"),
    ("some-blog", "post", "https://vk.com/", "social"),
    (None, "weird", "https://www.google.com/", "organic"),
    ("  ", "  ", None, "direct"),
]


@pytest.mark.parametrize(("source", "medium", "referrer", "channel"), UTM)
def test_channel_from_utm(source, medium, referrer, channel):
    assert derive_channel(utm_source=source, utm_medium=medium, referrer=referrer) == channel


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/?gclid=abc",
        "https://shop.example/landing?yclid=123&x=1",
        "https://shop.example/?msclkid=z",
        "https://shop.example/?GCLID=abc",
    ],
)
def test_ad_click_ids_mean_paid(url):
    assert derive_channel(referrer="https://www.google.com/", landing_url=url) == "paid"


def test_empty_click_id_is_no_signal():
    assert derive_channel(landing_url="https://shop.example/?gclid=") == "direct"


def test_own_domain_referrer_is_not_a_source():
    own = ["shop.example"]
    assert derive_channel(referrer="https://www.shop.example/catalog", own_domains=own) == "direct"
    assert derive_channel(referrer="https://blog.shop.example/", own_domains=own) == "direct"
    assert derive_channel(referrer="https://othershop.example/", own_domains=own) == "referral"


def test_every_answer_is_a_known_channel():
    for referrer, _ in REFERRERS:
        assert derive_channel(referrer=referrer) in CHANNELS


@pytest.mark.parametrize(
    ("referrer", "host"),
    [
        ("https://WWW.Google.COM/search", "google.com"),
        ("https://пример.рф/", "xn--e1afmkfd.xn--p1ai"),
        ("vk.com/away", "vk.com"),
        ("", ""),
        ("https://user:pw@mail.ru:443/x", "mail.ru"),
    ],
)
def test_referrer_host(referrer, host):
    assert referrer_host(referrer) == host
