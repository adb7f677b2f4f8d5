"""What the demo's visitors and senders are made of: pages, traffic sources, names, subjects.

Plain data for a furniture shop whose customers write in Russian and English.
Every domain is under .example (RFC 2606), so no address belongs to anyone.
"""

from dataclasses import dataclass

SHOP_DOMAIN = "demo-shop.example"
SITE_URL = f"https://{SHOP_DOMAIN}"
LEAD_DOMAIN = f"lead.{SHOP_DOMAIN}"

# Landing and browsing paths; the category decides what a visitor writes about.
PAGES = {
    "/": "general",
    "/catalog/sofas/": "sofas",
    "/catalog/sofas/oslo-corner-sofa/": "sofas",
    "/catalog/kitchens/": "kitchens",
    "/catalog/office-chairs/": "office",
    "/catalog/office-chairs/comfort-pro/": "office",
    "/sale/": "sale",
    "/delivery/": "delivery",
    "/contacts/": "general",
    "/blog/how-to-choose-a-sofa/": "sofas",
    "/blog/kitchen-layouts/": "kitchens",
}
BROWSE = ("/catalog/sofas/", "/catalog/sofas/oslo-corner-sofa/", "/catalog/kitchens/",
          "/catalog/office-chairs/", "/sale/", "/delivery/", "/contacts/", "/contacts/")


@dataclass(frozen=True)
class Campaign:
    """An ad campaign: its utm_campaign, landing page and search terms."""

    name: str
    path: str
    terms: tuple


@dataclass(frozen=True)
class Source:
    """A kind of traffic: how often it comes, how often it writes, what its links carry.

    Variants are (utm query or "", referrer) pairs; ads pick a campaign instead.
    """

    key: str
    weight: int
    conversion: float
    variants: tuple = ()
    campaigns: tuple = ()
    utm: str = ""  # ads: the fixed utm_source/utm_medium part of the query
    click_id: str = ""  # ads: gclid, yclid...
    referrer: str = ""
    pool: bool = False  # served by the pool rule (kept out of the last hours' traffic)


SOURCES = (
    Source("google_ads", 14, 0.34, utm="utm_source=google&utm_medium=cpc", click_id="gclid",
           referrer="https://www.google.com/", campaigns=(
               Campaign("sofas_search", "/catalog/sofas/",
                        ("купить диван", "угловой диван недорого", "диван-кровать")),
               Campaign("kitchens_search", "/catalog/kitchens/",
                        ("кухня на заказ", "кухонный гарнитур цена")),
               Campaign("brand", "/", ("демо мебель",)),
           )),
    Source("yandex_direct", 12, 0.34, utm="utm_source=yandex&utm_medium=cpc", click_id="yclid",
           referrer="https://yandex.ru/", pool=True, campaigns=(
               Campaign("direct_sofas", "/catalog/sofas/oslo-corner-sofa/",
                        ("угловой диван", "диван осло")),
               Campaign("direct_office", "/catalog/office-chairs/",
                        ("офисное кресло", "кресло руководителя")),
               Campaign("retargeting", "/sale/", ("",)),
           )),
    Source("vk_ads", 3, 0.3, utm="utm_source=vk&utm_medium=cpc", campaigns=(
        Campaign("vk_lookalike", "/catalog/sofas/", ("",)),
    )),
    Source("google_organic", 10, 0.24, variants=(("", "https://www.google.com/"),)),
    Source("yandex_organic", 12, 0.24,
           variants=(("", "https://yandex.ru/"), ("", "https://ya.ru/"))),
    Source("social", 8, 0.2, variants=(
        ("utm_source=vk&utm_medium=social&utm_campaign=post_oslo_sofa", "https://vk.com/"),
        ("", "https://t.me/"),
        ("", "https://dzen.ru/"),
    )),
    Source("newsletter", 6, 0.3, variants=(
        ("utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale",
         "https://mail.yandex.ru/"),
        ("utm_source=newsletter&utm_medium=email&utm_campaign=new_collection", ""),
    )),
    Source("referral", 6, 0.3, variants=(
        ("", "https://interior-blog.example/best-sofas-this-year/"),
        ("", "https://mebel-rating.example/top-shops/"),
        ("utm_source=partner_studio&utm_medium=referral", "https://design-studio.example/"),
    )),
    Source("direct", 12, 0.25, variants=(("", ""),)),
)
SOURCE = {source.key: source for source in SOURCES}
# Returning visitors come back by these.
RETURN_SOURCES = ("direct", "newsletter", "yandex_organic")

BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 13; Redmi Note 12) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 YaBrowser/24.1.5.1 Mobile Safari/537.36",
)
# (user agent, WebDriver flag, follows ad links): crawlers, scripts, and click-fraud browsers.
BOTS = (
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", False, False),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", False, False),
    ("python-requests/2.31.0", False, False),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/124.0.0.0 Safari/537.36", True, True),
)

# Visits per hour of the day in the account's time zone (Moscow): quiet nights, busy days.
HOUR_WEIGHTS = (1, 1, 0.5, 0.5, 0.5, 0.5, 1, 2, 4, 6, 8, 9, 9, 8, 8, 8, 7, 7, 7, 8, 8, 7, 4, 2)

RU_MEN = (("Иван", "ivan"), ("Алексей", "alexey"), ("Дмитрий", "dmitry"), ("Сергей", "sergey"),
          ("Андрей", "andrey"), ("Михаил", "mikhail"), ("Павел", "pavel"), ("Никита", "nikita"))
RU_WOMEN = (("Ольга", "olga"), ("Мария", "maria"), ("Екатерина", "ekaterina"), ("Анна", "anna"),
            ("Наталья", "natalia"), ("Татьяна", "tatiana"), ("Елена", "elena"), ("Юлия", "yulia"))
# (man's form, woman's form, Latin)
RU_SURNAMES = (("Петров", "Петрова", "petrov"), ("Смирнов", "Смирнова", "smirnov"),
               ("Кузнецов", "Кузнецова", "kuznetsov"), ("Соколов", "Соколова", "sokolov"),
               ("Лебедев", "Лебедева", "lebedev"), ("Козлов", "Козлова", "kozlov"),
               ("Новиков", "Новикова", "novikov"), ("Морозов", "Морозова", "morozov"),
               ("Волков", "Волкова", "volkov"), ("Орлов", "Орлова", "orlov"))
EN_FIRST = ("John", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Anna")
EN_LAST = ("Smith", "Clark", "Brown", "Johnson", "Miller", "Wilson", "Taylor", "Walker")
RU_MAIL_DOMAINS = ("example.com", "example.net", "mail.example", "post.example")
EN_MAIL_DOMAINS = ("example.com", "example.org", "inbox.example")
COMPANIES = (("ООО «Ромашка»", "romashka.example"), ("АО «СтройМонтаж»", "stroymontazh.example"),
             ("Acme Interiors", "acme.example"))

RU_SUBJECTS = {
    "sofas": ("Заказ дивана «Осло»", "Есть ли угловой диван в сером цвете?",
              "Диван-кровать: сроки изготовления", "Вопрос по размерам дивана"),
    "kitchens": ("Кухня на заказ — замер", "Сколько стоит кухонный гарнитур 3 м?",
                 "Проект кухни: прошу перезвонить"),
    "office": ("Офисные кресла для компании — 20 шт.", "Кресло Comfort Pro: есть в наличии?",
               "Прошу выставить счёт на кресла"),
    "sale": ("Скидка на диван из распродажи", "Товар из акции ещё доступен?"),
    "delivery": ("Доставка в Казань", "Сколько стоит сборка?", "Доставка в выходные"),
    "general": ("Вопрос", "Запрос прайс-листа", "Консультация", "Сотрудничество с дизайнерами"),
}
EN_SUBJECTS = {
    "sofas": ("Is the Oslo sofa in stock?", "Sofa bed: lead time"),
    "kitchens": ("Custom kitchen — measurement visit", "Kitchen quote request"),
    "office": ("Quote for 20 office chairs", "Comfort Pro chair availability"),
    "sale": ("Sale item still available?",),
    "delivery": ("Delivery to Saint Petersburg", "Assembly service price"),
    "general": ("Price list request", "Question about your showroom"),
}
RU_FOLLOW_UPS = ("Re: {subject}", "Дополнение к заявке", "Забыл приложить фото",
                 "Re: {subject}", "Уточнение по заказу")
EN_FOLLOW_UPS = ("Re: {subject}", "Adding photos", "Re: {subject}")
RU_LATER = ("Повторный вопрос: {subject}", "Снова по поводу заказа", "Хочу оформить заказ")
EN_LATER = ("Following up: {subject}", "Ready to order")

# Mail to the mailbox's own address, which no rule shows: suppliers, partners, old customers.
SUPPLIERS = (
    ("Фабрика «Уют»", "sales@uyut-factory.example", "Счёт на оплату №{n}"),
    ("Nordic Textiles", "invoices@nordic-textiles.example", "Invoice #{n} from Nordic Textiles"),
    ("Бухгалтерия ТК «Деловые линии»", "buh@transport.example", "Акт сверки №{n}"),
    ("", "noreply@marketplace.example", "Новый отзыв о магазине"),
    ("Фурнитура Про", "info@furnitura.example", "Коммерческое предложение: фурнитура"),
)
UNTRACKED_CUSTOMER = ("Заявка с выставки", "Вопрос по заказу №{n}", "Order #{n}: delivery date",
                      "Гарантийный случай", "Отзыв о покупке")
