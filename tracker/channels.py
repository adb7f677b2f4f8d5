"""The traffic channel of a visit, from its utm fields and referrer (pure functions).

Precedence: ad click ids and utm_medium first (the advertiser tagged the link on
purpose), then utm_source, then the referrer's domain; no signal at all is direct.
"""

import re
from urllib.parse import parse_qsl, urlsplit

import idna

PAID = "paid"
ORGANIC = "organic"
SOCIAL = "social"
EMAIL = "email"
REFERRAL = "referral"
DIRECT = "direct"
CHANNELS = (PAID, ORGANIC, SOCIAL, EMAIL, REFERRAL, DIRECT)

_PAID_MEDIA = {
    "cpc", "ppc", "paid", "cpm", "cpa", "cpv", "cpi", "cpl", "cpo", "paidsearch",
    "paid_search", "paid-search", "paidsocial", "paid_social", "paid-social", "display",
    "banner", "retargeting", "remarketing", "ad", "ads", "context", "cpc_yandex_direct",
}
_EMAIL_MEDIA = {"email", "e-mail", "e_mail", "mail", "newsletter", "mailing", "mailout",
                "рассылка", "емейл"}
_SOCIAL_MEDIA = {"social", "social-network", "social_network", "socialnetwork", "social-media",
                 "social_media", "sm", "smm"}
_ORGANIC_MEDIA = {"organic", "seo"}
_REFERRAL_MEDIA = {"referral", "referal", "referrer", "partner", "affiliate", "link"}

# Click ids that ad networks add to the landing URL of a paid click.
_PAID_CLICK_IDS = ("gclid", "gbraid", "wbraid", "yclid", "ysclid_ad", "msclkid", "dclid")

# Referrer hosts by channel; the longest matching suffix wins (mail.yandex.ru is email,
# yandex.ru is search), so subdomains are included.
_HOSTS = {
    EMAIL: [
        "mail.google.com", "mail.yandex.ru", "mail.yandex.com", "e.mail.ru", "touch.mail.ru",
        "outlook.live.com", "outlook.office.com", "outlook.office365.com", "mail.yahoo.com",
        "mail.rambler.ru", "mail.proton.me", "mail.zoho.com", "icloud.com",
        "com.google.android.gm", "ru.mail.mailapp", "ru.yandex.mail",
    ],
    ORGANIC: [
        "yandex.ru", "ya.ru", "go.mail.ru", "mail.ru", "bing.com", "duckduckgo.com",
        "search.yahoo.com", "yahoo.co.jp", "baidu.com", "ecosia.org", "nova.rambler.ru",
        "rambler.ru", "search.brave.com", "startpage.com", "qwant.com", "naver.com",
        "seznam.cz", "sogou.com", "so.com", "ask.com", "search.aol.com", "yandex.com",
        "com.google.android.googlequicksearchbox", "ru.yandex.searchplugin",
    ],
    SOCIAL: [
        "vk.com", "vk.ru", "vkontakte.ru", "ok.ru", "odnoklassniki.ru", "my.mail.ru",
        "t.me", "telegram.org", "telegram.me", "org.telegram.messenger", "facebook.com",
        "fb.com", "fb.me", "messenger.com", "instagram.com", "twitter.com", "t.co", "x.com",
        "youtube.com", "youtu.be", "linkedin.com", "lnkd.in", "pinterest.com", "pin.it",
        "reddit.com", "tiktok.com", "dzen.ru", "zen.yandex.ru", "whatsapp.com", "wa.me",
        "threads.net", "snapchat.com", "tumblr.com", "rutube.ru", "vc.ru", "pikabu.ru",
        "livejournal.com", "quora.com", "discord.com", "max.ru",
    ],
}
_SUFFIXES = sorted(
    ((host, channel) for channel, hosts in _HOSTS.items() for host in hosts),
    key=lambda item: -len(item[0]),
)
# Search engines with a domain per country: google.de, google.co.uk, yandex.kz, yahoo.com.
_SEARCH_BRANDS = re.compile(r"(^|\.)(google|yandex|yahoo|bing)\.((com?|org)\.)?[a-z]{2,3}$")

# utm_source values that name a channel when utm_medium does not.
_SOURCES = {
    ORGANIC: {"google", "yandex", "bing", "mail.ru", "mailru", "duckduckgo", "yahoo",
              "baidu", "rambler", "ecosia", "yandex.ru", "google.com"},
    SOCIAL: {"vk", "vkontakte", "ok", "odnoklassniki", "telegram", "tg", "facebook", "fb",
             "instagram", "ig", "twitter", "x", "youtube", "linkedin", "pinterest", "reddit",
             "tiktok", "dzen", "zen", "whatsapp", "threads", "vk.com", "ok.ru", "t.me"},
    EMAIL: {"email", "newsletter", "mailchimp", "sendpulse", "unisender", "sendsay",
            "mailing", "dashamail"},
}


# Any click id name followed by "=" somewhere in the URL (the query is parsed only then).
_CLICK_ID_NAME = re.compile("(?:%s)=" % "|".join(sorted(map(re.escape, _PAID_CLICK_IDS))), re.I)


def referrer_host(referrer):
    """The lowercase host of a referrer URL without `www.`, or "" when there is none."""
    text = (referrer or "").strip()
    if not text:
        return ""
    try:
        parts = urlsplit(text if "//" in text else "//" + text)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return ""
    host = host.lower()
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            return ""
    if host.startswith("www."):
        host = host[4:]
    return host


def _host_channel(host):
    for suffix, channel in _SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return channel
    if _SEARCH_BRANDS.search(host):
        return ORGANIC
    return None


def _is_own(host, own_domains):
    return any(host == d or host.endswith("." + d) for d in own_domains)


def _has_click_id(landing_url):
    if not landing_url or not _CLICK_ID_NAME.search(landing_url):
        return False  # most landings: no need to parse the query
    try:
        query = urlsplit(landing_url).query
    except ValueError:
        return False
    return any(key.lower() in _PAID_CLICK_IDS and value
               for key, value in parse_qsl(query, keep_blank_values=True))


def _medium_channel(medium):
    if medium in _PAID_MEDIA or medium.startswith(("paid", "cpc")):
        return PAID
    for channel, media in ((EMAIL, _EMAIL_MEDIA), (SOCIAL, _SOCIAL_MEDIA),
                           (ORGANIC, _ORGANIC_MEDIA), (REFERRAL, _REFERRAL_MEDIA)):
        if medium in media:
            return channel
    return None


def derive_channel(utm_source=None, utm_medium=None, referrer=None, landing_url=None,
                   own_domains=()):
    """One of CHANNELS for a visit.

    own_domains: the site's domains; a referrer from them (an internal link) is no source.
    """
    if _has_click_id(landing_url):
        return PAID
    medium = (utm_medium or "").strip().casefold()
    if medium:
        channel = _medium_channel(medium)
        if channel:
            return channel
    source = (utm_source or "").strip().casefold()
    if source:
        for channel, names in _SOURCES.items():
            if source in names:
                return channel
    host = referrer_host(referrer)
    if host and not _is_own(host, own_domains):
        return _host_channel(host) or REFERRAL
    if source or medium:
        # A tagged link with an unknown tag and no referrer: someone linked to us.
        return REFERRAL
    return DIRECT
