"""The public API that the website script calls: page views and display reports.

Checks run cheapest first and none of the refusals touches the database: body
size (413), rate per IP and per site (429, Redis), JSON shape (400), site key and
Origin (403, the key through the Redis-cached registry).
"""

import json
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, jsonify, make_response, request
from flask_limiter.util import get_remote_address

from tracker import pageviews, siteregistry
from tracker.extensions import csrf, limiter, redis_client

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)

MAX_BODY = 4096
SCRIPT = "js/tracker.js"
def _redis():
    return redis_client()


def _site():
    info = g.api_site
    return pageviews.SiteRef(info["id"], info["account_id"], tuple(info["domains"]))


def _error(status, message):
    response = jsonify(error=message)
    response.status_code = status
    return _cors(response)


def _cors(response):
    origin = request.headers.get("Origin")
    if origin and g.get("origin_ok"):
        response.headers["Access-Control-Allow-Origin"] = origin
    response.vary.add("Origin")
    return response


def _payload():
    """The JSON body, read once, at most MAX_BODY bytes (text/plain: no CORS preflight)."""
    if "api_payload" not in g:
        request.max_content_length = MAX_BODY
        raw = request.get_data(cache=True)
        try:
            g.api_payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            g.api_payload = None
    return g.api_payload


def _site_key():
    payload = _payload()
    key = payload.get("k") if isinstance(payload, dict) else None
    return key if isinstance(key, str) and 0 < len(key) <= 64 else ""


def _per_site_key():
    return "api-site:" + _site_key()


@bp.before_request
def guard():
    """Size first, then shape, then key and Origin; the rate limits ran before this."""
    if request.method == "OPTIONS":
        return None
    if (request.content_length or 0) > MAX_BODY:
        return _error(413, "the body is larger than 4096 bytes")
    payload = _payload()  # a streamed body over the limit raises 413, handled below
    if not isinstance(payload, dict):
        return _error(400, "the body must be a JSON object")
    key = _site_key()
    if not key:
        return _error(400, "k (the site key) is required")
    site = siteregistry.lookup(_redis(), key)
    origin = request.headers.get("Origin") or ""
    host = urlsplit(origin).hostname if origin.startswith(("http://", "https://")) else None
    if site is None:
        return _error(403, "unknown site key")
    if not siteregistry.origin_allowed(host, site["domains"]):
        return _error(403, "this Origin is not one of the site's domains")
    g.origin_ok = True
    g.api_site = site
    return None


@bp.after_request
def no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return _cors(response)


def _limits(name):
    return lambda: current_app.config[name]


@bp.route("/hit", methods=["POST", "OPTIONS"])
@limiter.limit(_limits("API_RATE_PER_IP"), key_func=get_remote_address, scope="api-ip")
@limiter.limit(_limits("API_RATE_PER_SITE"), key_func=_per_site_key, scope="api-site")
def hit():
    if request.method == "OPTIONS":
        return preflight()
    try:
        page_view = pageviews.parse_hit(_payload())
    except pageviews.PayloadError as exc:
        return _error(400, str(exc))
    try:
        answer = pageviews.record_page_view(
            _site(), page_view, request.headers.get("User-Agent", "")[:500], _redis()
        )
    except pageviews.SiteGone:
        _redis().delete(siteregistry.cache_key(_site_key()))
        return _error(403, "unknown site key")
    return jsonify(answer)


@bp.route("/display", methods=["POST", "OPTIONS"])
@limiter.limit(_limits("API_RATE_PER_IP"), key_func=get_remote_address, scope="api-ip")
@limiter.limit(_limits("API_RATE_PER_SITE"), key_func=_per_site_key, scope="api-site")
def display():
    if request.method == "OPTIONS":
        return preflight()
    try:
        visit_id, rows = pageviews.parse_displays(_payload())
    except pageviews.PayloadError as exc:
        return _error(400, str(exc))
    stored = pageviews.record_displays(_site(), visit_id, rows)
    return jsonify(stored=stored)


def preflight():
    """Browsers do not preflight text/plain POSTs; answer politely if one asks anyway."""
    response = make_response("", 204)
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        response.headers["Access-Control-Max-Age"] = "86400"
    return response


@bp.after_app_request
def script_headers(response):
    """tracker.js is embedded by other sites: cacheable briefly, loadable cross-origin."""
    if request.endpoint == "static" and (request.view_args or {}).get("filename") == SCRIPT:
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.errorhandler(413)
def too_large(exc):
    return _error(413, "the body is larger than 4096 bytes")


@bp.errorhandler(429)
def too_many(exc):
    return _error(429, "too many requests; slow down")

