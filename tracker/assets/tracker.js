/* Email tracking: the website script. ES5, one global at most, never throws into the page.
 * Built (minified) into tracker/static/js/tracker.js by `make js`; edit this file, not that one.
 *
 * Protocol (text/plain JSON bodies, so no CORS preflight):
 *   POST {api}/hit      {k: site key, v: visitor id, s: visit id, u: url, r: referrer,
 *                        ga: _ga client id, ym: _ym_uid, wd: navigator.webdriver}
 *                  ->   {s: visit id, b: [{i: block id, f: [original addresses], q: css selector, t: address to show}]}
 *   POST {api}/display  {k: site key, v: visitor id, s: visit id, d: [[block id, address, count], ...]}
 */
(function (w, d) {
  'use strict';
  var script = d.currentScript;
  var key = script && script.getAttribute('data-site');
  if (!key || w.emailTracker) return;
  var api = script.src.replace(/\/static\/js\/tracker\.js.*$/, '/api/v1/');
  var VISIT_GAP = 18e5; // 30 minutes without activity start a new visit
  var SKIP = /^(SCRIPT|STYLE|TEXTAREA|OPTION|NOSCRIPT|TEMPLATE)$/;
  var UTM = /[?&]utm_[a-z]+=[^&#]*/g;
  var blocks = [];
  var shown = {};
  var timer, reportTimer, last;

  function warn(e) {
    try { w.console && console.warn('[email-tracker] ' + e); } catch (x) { /* nothing to do */ }
  }

  function cookie(name) {
    var m = d.cookie.match('(?:^|; )' + name + '=([^;]*)');
    return m ? decodeURIComponent(m[1]) : '';
  }

  // localStorage, else a first-party cookie; blocked storage just means no memory.
  function load(k) {
    try { return JSON.parse(w.localStorage.getItem(k)); } catch (e) {
      try { return JSON.parse(cookie(k)); } catch (x) { /* nothing stored */ }
    }
  }

  function save(k, v) {
    v = JSON.stringify(v);
    try { w.localStorage.setItem(k, v); } catch (e) {
      try { d.cookie = k + '=' + encodeURIComponent(v) + ';path=/;max-age=31536000;samesite=lax'; } catch (x) { /* blocked */ }
    }
  }

  function rid() {
    return Math.random().toString(36).slice(2, 12) + (+new Date()).toString(36);
  }

  function esc(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

  // Replace the original addresses of `map` (lowercase original -> tracked) in text and mailto links under root.
  function swap(root, map, block) {
    var keys = [], k, n = 0, node, walker, list = [], i, a, href, at;
    for (k in map) keys.push(esc(k));
    if (!keys.length || !root) return 0;
    var re = new RegExp('(^|[^\\w.+-])(' + keys.join('|') + ')(?![\\w-]|\\.[\\w-])', 'gi');
    walker = d.createTreeWalker(root, 4, null, false);
    while ((node = walker.nextNode())) list.push(node);
    for (i = 0; i < list.length; i++) {
      node = list[i];
      a = node.parentNode;
      if (!a || SKIP.test(a.nodeName) || a.isContentEditable) continue;
      re.lastIndex = 0;
      if (re.test(node.data)) {
        node.data = node.data.replace(re, function (all, pre, addr) { n++; return pre + map[addr.toLowerCase()]; });
      }
    }
    list = root.querySelectorAll ? root.querySelectorAll('a[href]') : [];
    if (root.nodeName === 'A') list = [root].concat([].slice.call(list));
    for (i = 0; i < list.length; i++) {
      href = list[i].getAttribute('href');
      if (!/^mailto:/i.test(href)) continue;
      at = href.slice(7).split('?');
      k = decodeURIComponent(at[0]).toLowerCase();
      if (map[k]) {
        list[i].setAttribute('href', 'mailto:' + map[k] + (at.length > 1 ? '?' + at.slice(1).join('?') : ''));
        n++;
      }
    }
    if (n) count(block, n);
    return n;
  }

  function count(block, n) {
    var id = block.i + ' ' + block.t;
    shown[id] = (shown[id] || 0) + n;
    clearTimeout(reportTimer);
    reportTimer = setTimeout(report, 1000);
  }

  function apply() {
    var i, b, map, els, j, done;
    if (!d.body) return;
    observer && observer.disconnect();
    try {
      for (i = 0; i < blocks.length; i++) {
        b = blocks[i];
        map = {};
        for (j = 0; j < (b.f || []).length; j++) map[b.f[j].toLowerCase()] = b.t;
        if (!b.q) { swap(d.body, map, b); continue; }
        els = d.querySelectorAll(b.q);
        for (j = 0; j < els.length; j++) {
          // With addresses given, swap them inside the element; without, the element's text is the address.
          if (b.f && b.f.length) swap(els[j], map, b);
          else if (els[j].textContent !== b.t) {
            map[els[j].textContent.trim().toLowerCase()] = b.t;
            swap(els[j], map, b) || count(b, 1);
            els[j].textContent = b.t;
          }
        }
      }
    } catch (e) { warn(e); }
    observer && observer.observe(d.documentElement, {childList: true, subtree: true, characterData: true});
  }

  function send(path, body, cb) {
    var x = new XMLHttpRequest();
    x.open('POST', api + path);
    x.setRequestHeader('Content-Type', 'text/plain');
    x.timeout = 4000;
    x.onload = function () {
      try { x.status === 200 && cb && cb(JSON.parse(x.responseText)); } catch (e) { warn(e); }
    };
    x.send(JSON.stringify(body));
  }

  function report() {
    var d2 = [], id, p, body;
    for (id in shown) { p = id.split(' '); d2.push([+p[0], p[1], shown[id]]); }
    shown = {};
    if (!d2.length) return;
    body = {k: key, v: visitor, s: visit.s, d: d2};
    try {
      navigator.sendBeacon ? navigator.sendBeacon(api + 'display', JSON.stringify(body)) : send('display', body);
    } catch (e) { warn(e); }
  }

  var visitor = load('et_v');
  if (!visitor) save('et_v', visitor = rid());
  var visit = load('et_s') || {};

  function pageview() {
    if (location.href === last) return; // replaceState without a new URL is no page view
    last = location.href;
    try {
      var now = +new Date(), utm = (location.search.match(UTM) || []).join('');
      if (!visit.s || now - visit.a > VISIT_GAP || (utm && utm !== visit.u)) {
        visit = {s: rid(), u: utm};
      } else if (visit.b) {
        blocks = visit.b; // same visit: swap from the cached answer now, refresh below
        apply();
      }
      visit.a = now;
      save('et_s', visit);
      send('hit', {k: key, v: visitor, s: visit.s, u: location.href, r: d.referrer,
        ga: cookie('_ga'), ym: cookie('_ym_uid'), wd: !!navigator.webdriver}, function (res) {
        blocks = res.b || [];
        visit.b = blocks;
        save('et_s', visit);
        apply();
      });
    } catch (e) { warn(e); }
  }

  var observer = w.MutationObserver && new MutationObserver(function () {
    clearTimeout(timer);
    timer = setTimeout(apply, 30);
  });

  d.addEventListener('copy', function (e) {
    try {
      var text = String(w.getSelection()), i, j, out = text;
      for (i = 0; i < blocks.length; i++) {
        for (j = 0; j < (blocks[i].f || []).length; j++) {
          out = out.replace(new RegExp(esc(blocks[i].f[j]), 'gi'), blocks[i].t);
        }
      }
      if (out !== text && e.clipboardData) {
        e.clipboardData.setData('text/plain', out);
        e.preventDefault();
      }
    } catch (x) { warn(x); }
  });

  function wrap(name) {
    var orig = history[name];
    history[name] = function () {
      var r = orig.apply(this, arguments);
      setTimeout(pageview, 0);
      return r;
    };
  }
  try { wrap('pushState'); wrap('replaceState'); } catch (e) { warn(e); }
  w.addEventListener('popstate', pageview);
  w.addEventListener('pagehide', report);
  w.emailTracker = {refresh: function () { last = 0; pageview(); }};
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', apply);
  pageview();
})(window, document);
