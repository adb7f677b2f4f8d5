"""The public API that the website script calls: page views and display reports.

Checks run cheapest first and none of the refusals touches the database: body
size (413), JSON shape (400), site key and Origin (403, the key through the
site registry, cached in Redis and briefly per process), then the rate per IP
and per site (429, counted in Redis by the same script that reads the visit).
Page views are answered from Redis; `tracker.ingest` writes them to the database.

This is the busiest path of the service, so it reads the request, the app and
`g` once per request rather than through their proxies at every turn, and the
body and headers it needs straight from the WSGI environ.
"""

import functools
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from flask import Blueprint, current_app, g, request
from limits import parse_many
from redis.exceptions import RedisError

from tracker import pageviews, siteregistry, textclean, visitstate
from tracker.extensions import csrf, redis_client

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

logger = logging.getLogger(__name__)

MAX_BODY = 4096
SCRIPT = "js/tracker.js"


@dataclass
class Call:
    """One API request as the views need it, kept in g.api."""

    app: object
    origin: str
    ip: str
    payload: object = None
    site: pageviews.SiteRef | None = None
    ip_counted: bool = False  # the IP's limits were counted at the site look-up
    origin_ok: bool = False

    def rates(self, scope, ident):
        """[(Redis key, limit, window s)] of the API_RATE_PER_<scope> setting for ident."""
        parsed = self.app.extensions.setdefault("tracker.api_rates", {})
        setting = self.app.config["API_RATE_PER_" + scope.upper()]
        if setting not in parsed:
            parsed[setting] = [(item.amount, item.get_expiry()) for item in parse_many(setting)]
        return [(f"tracker:rate:{scope}:{ident}:{amount}:{seconds}", amount, seconds)
                for amount, seconds in parsed[setting]]

    def all_rates(self):
        site_rates = self.rates("site", self.site.id)
        return site_rates if self.ip_counted else self.rates("ip", self.ip) + site_rates

    def lookup_site(self, key):
        """The site of a key (a SiteRef, or None), kept per process (pageviews.per_process).

        A key this process has not seen lately is charged to the IP's rate limit
        first, so that guessing keys cannot make the registry query the database freely.
        """
        return pageviews.per_process("tracker.api_sites", key, lambda: self._registered(key))

    def _registered(self, key):
        redis = _redis()
        visitstate.check_rates(redis, self.rates("ip", self.ip))
        self.ip_counted = True
        info = siteregistry.lookup(redis, key)
        if info is None:
            return None
        return pageviews.SiteRef(info["id"], info["account_id"], tuple(info["domains"]))


def _redis():
    return redis_client(single=True)


def _json(body, status=200):
    return current_app.response_class(orjson.dumps(body), status=status,
                                      content_type="application/json")


def _error(status, message):
    return _json({"error": message}, status)


def _wake(woke):
    """Queue a writer for the page views in Redis, when the queue asked for one."""
    if woke:
        from tracker.jobs.pageviews import wake_writer

        try:
            wake_writer()
        except RedisError:
            # The queue keeps the page views; the cron run writes them a minute later.
            logger.warning("Could not queue the page-view writer", exc_info=True)


@bp.before_request
def guard():
    """Size first, then shape, then key and Origin; the rate limits come with the visit."""
    req = request._get_current_object()
    environ = req.environ
    call = g.api = Call(current_app._get_current_object(), environ.get("HTTP_ORIGIN") or "",
                        environ.get("REMOTE_ADDR") or "-")
    if req.method == "OPTIONS":
        return None
    length = req.content_length
    if length is None:  # a chunked body: a byte past the limit tells it is too large
        body = req.stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return too_large()
    elif length > MAX_BODY:
        return too_large()
    else:
        body = environ["wsgi.input"].read(length)  # werkzeug's wrappers cost more than this
    try:
        call.payload = orjson.loads(body)
    except orjson.JSONDecodeError:  # also for bytes that are not UTF-8
        pass
    if not isinstance(call.payload, dict):
        return _error(400, "the body must be a JSON object")
    key = call.payload.get("k")
    if not isinstance(key, str) or not 0 < len(key) <= 64:
        return _error(400, "k (the site key) is required")
    try:
        call.site = call.lookup_site(key)
    except visitstate.RateLimited:
        return _error(429, "too many requests; slow down")
    if call.site is None:
        return _error(403, "unknown site key")
    origin = call.origin
    host = urlsplit(origin).hostname if origin.startswith(("http://", "https://")) else None
    if not siteregistry.origin_allowed(host, call.site.domain_names):
        return _error(403, "this Origin is not one of the site's domains")
    call.origin_ok = True
    return None


_NO_STORE = (("Cache-Control", "no-store"), ("Vary", "Origin"),
             ("X-Content-Type-Options", "nosniff"))


@bp.after_request
def no_store(response):
    # Added, not set: no API response carries them yet (set() would look for them).
    headers = response.headers
    for name, value in _NO_STORE:
        headers.add(name, value)
    call = g.get("api")
    if call is not None and call.origin_ok:
        headers.add("Access-Control-Allow-Origin", call.origin)
    return response


@bp.route("/hit", methods=["POST", "OPTIONS"])
def hit():
    call = g.api
    if request.method == "OPTIONS":
        return preflight(call)
    try:
        page_view = pageviews.parse_hit(call.payload)
    except pageviews.PayloadError as exc:
        return _error(400, str(exc))
    try:
        answer, woke = pageviews.record_page_view(
            call.site, page_view,
            textclean.one_line(request.environ.get("HTTP_USER_AGENT", ""))[:500], _redis(),
            call.all_rates(),
        )
    except visitstate.RateLimited:
        return _error(429, "too many requests; slow down")
    _wake(woke)
    return _json(answer)


@bp.route("/display", methods=["POST", "OPTIONS"])
def display():
    call = g.api
    if request.method == "OPTIONS":
        return preflight(call)
    try:
        visit_id, rows = pageviews.parse_displays(call.payload)
    except pageviews.PayloadError as exc:
        return _error(400, str(exc))
    try:
        stored, woke = pageviews.record_displays(call.site, visit_id, rows, _redis(),
                                                 call.all_rates())
    except visitstate.RateLimited:
        return _error(429, "too many requests; slow down")
    _wake(woke)
    return _json({"stored": stored})


def preflight(call):
    """Browsers do not preflight text/plain POSTs; answer politely if one asks anyway."""
    response = current_app.response_class("", status=204)
    if call.origin:
        response.headers.update({
            "Access-Control-Allow-Origin": call.origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400",
        })
    return response


@bp.record_once
def script_headers(state):
    """tracker.js is embedded by other sites: cacheable briefly, loadable cross-origin.

    The static view itself adds the headers, so that no other request pays for the check.
    """
    static = state.app.view_functions["static"]

    @functools.wraps(static)
    def static_file(filename):
        response = static(filename=filename)
        if filename == SCRIPT:
            response.headers["Cache-Control"] = "public, max-age=300"
            response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    state.app.view_functions["static"] = static_file


# Seconds a client is asked to wait while Redis is away.
RETRY_AFTER = 5


@bp.errorhandler(RedisError)
def redis_away(exc):
    """Redis is away (restarting, unreachable): 503 with Retry-After, never a 500.

    A 503 promises nothing either way (Redis may have gone between two commands of the
    request); the visit id the page sends makes a later try safe. Once Redis answers
    again the next request succeeds: its client reconnects by itself.
    """
    logger.warning("Redis unavailable, API answered 503: %s", exc)
    response = _error(503, "temporarily unavailable; try again shortly")
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response


@bp.errorhandler(413)
def too_large(exc=None):
    return _error(413, f"the body is larger than {MAX_BODY} bytes")
