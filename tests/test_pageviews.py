"""Pure helpers of the page-view path: utm values of a landing URL."""

import pytest

from tracker.pageviews import utm_from

NONE = {"utm_source": "", "utm_medium": "", "utm_campaign": "", "utm_content": "",
        "utm_term": ""}


def test_no_utm_values_give_empty_strings():
    assert utm_from("https://shop.example/prices") == NONE
    assert utm_from("https://shop.example/?page=2&sort=price") == NONE


def test_values_are_decoded():
    utm = utm_from("https://shop.example/?utm_source=yandex&utm_medium=cpc"
                   "&utm_campaign=%D0%B2%D0%B5%D1%81%D0%BD%D0%B0+2024&utm_term=a%26b")
    assert utm == {**NONE, "utm_source": "yandex", "utm_medium": "cpc",
                   "utm_campaign": "весна 2024", "utm_term": "a&b"}


@pytest.mark.parametrize(("query", "source"), [
    ("utm_source=&utm_source=vk", "vk"),  # the first value that is not empty
    ("utm_source=vk&utm_source=ok", "vk"),
    ("xutm_source=vk", ""),  # another parameter whose name ends the same
    ("utm_sources=vk", ""),
    ("UTM_SOURCE=vk", ""),  # names are case-sensitive, as in analytics tools
    ("utm_source=a=b", "a=b"),
])
def test_which_value_counts(query, source):
    assert utm_from("https://shop.example/?" + query)["utm_source"] == source


def test_the_fragment_is_not_the_query_and_values_are_cut():
    assert utm_from("https://shop.example/#utm_source=vk") == NONE
    assert utm_from("https://shop.example/?utm_term=" + "z" * 300)["utm_term"] == "z" * 200


PEOPLE = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.2 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; arm_64; Android 12; SM-A515F) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 YaBrowser/23.11.5.99.00 SA/3 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S908B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/440.0.0.33.118;FBBV/545634431]",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.6045.163 Mobile Safari/537.36 Instagram 309.1.0.41.113 Android",
    "Mozilla/5.0 (Linux; U; Android 11; ru-ru; Redmi Note 8 Pro Build/RP1A.200720.011) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile "
    "Safari/537.36 XiaoMi/MiuiBrowser/14.4.0-g",
]

BOTS = [
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; YandexMetrika/2.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; "
    "+http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.0.0 Safari/537.36",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "TelegramBot (like TwitterBot)",
    "WhatsApp/2.23.20.0",
    "curl/8.5.0",
    "Wget/1.21.4",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "okhttp/4.12.0",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse",
    "Mozilla/5.0 (compatible; Pingdom.com_bot_version_1.4_(http://www.pingdom.com/))",
    "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Mozilla/5.0 (compatible; GPTBot/1.0; +https://openai.com/gptbot)",
]


@pytest.mark.parametrize("agent", PEOPLE)
def test_browsers_are_people(agent):
    from tracker.pageviews import is_bot

    assert not is_bot(agent, webdriver=False)


@pytest.mark.parametrize("agent", BOTS)
def test_crawlers_and_tools_are_bots(agent):
    from tracker.pageviews import is_bot

    assert is_bot(agent, webdriver=False)


def test_webdriver_or_no_user_agent_is_a_bot():
    from tracker.pageviews import is_bot

    assert is_bot(PEOPLE[0], webdriver=True)
    assert is_bot("", webdriver=False)


def test_the_maintained_list_is_used():
    """The verdicts come from crawler-user-agents (hundreds of patterns), not a short list."""
    import crawleruseragents

    from tracker.pageviews import is_crawler

    assert len(crawleruseragents.CRAWLER_USER_AGENTS_DATA) > 500
    # A crawler that no hand-written pattern of ours names.
    assert is_crawler("Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)/2.4w")


@pytest.mark.parametrize("agent", [
    "Mozilla/5.0 (compatible; YandexBot/3.0)",
    "Mozilla/5.0 (compatible; SomeNewBot/0.1)",
    "NewsCrawler 2.0",
])
def test_agents_that_call_themselves_bots_are_bots(agent):
    from tracker.pageviews import is_bot

    assert is_bot(agent, webdriver=False)


def test_a_phone_named_cubot_is_a_person():
    from tracker.pageviews import is_bot

    assert not is_bot("Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, "
                      "like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", webdriver=False)
