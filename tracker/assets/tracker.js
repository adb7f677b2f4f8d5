/* Email tracking: the website script. ES5, one global at most, never throws into the page.
 * Built (minified) into tracker/static/js/tracker.js by `make js`; edit this file, not that one.
 *
 * Protocol (text/plain JSON bodies, so no CORS preflight):
 *   POST {api}/hit      {k: site key, v: visitor id, s: visit id, u: url, r: referrer,
 *                        n: the visit's first page (no answer yet), ga: _ga client id, ym: _ym_uid,
 *                        wd: navigator.webdriver}
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
  var SKIP = /^(SCRIPT|STYLE|TEXTAREA|INPUT|OPTION|NOSCRIPT)$/;
  var ATTRS = ['href', 'title', 'aria-label'];
  var UTM = /[?&]utm_[a-z]+=[^&#]*/g;
  var blocks = [];
  var shown = {}; // "block id address" -> times swapped, not yet reported
  var was = {}; // block id -> the address shown before, replaced when a fresh answer differs
  var all = {}; // every original address -> its tracked one, for copies
  var reportTimer, last, observer;

  function warn(e) {
    try { console.warn('[email-tracker] ' + e); } catch (x) { /* no console */ }
  }

  function cookie(name) {
    try {
      var m = d.cookie.match('(?:^|; )' + name + '=([^;]*)');
      return m ? dec(m[1]) : '';
    } catch (e) { return ''; } // sandboxed documents throw on document.cookie
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

  function dec(s) {
    try { return decodeURIComponent(s); } catch (e) { return s; } // a malformed escape stays as it is
  }

  // Nodes whose text the visitor edits or never sees as text.
  function bad(n) { return !n || SKIP.test(n.nodeName) || n.isContentEditable; }

  // s with the whole addresses of `map` (lowercase original -> tracked) replaced.
  function sub(s, map) {
    var keys = [], k;
    for (k in map) if (k && k !== map[k].toLowerCase()) keys.push(esc(k));
    return keys.length ? s.replace(new RegExp('(^|[^\\w.+-])(' + keys.join('|') + ')(?![\\w-]|\\.[\\w-])', 'gi'),
      function (all, pre, addr) { return pre + map[addr.toLowerCase()]; }) : s;
  }

  // Swap the addresses of `map` in text, mailto links, title and aria-label under roots, except
  // under `cover` (what element blocks select). Counts each text node and link changed.
  function swap(roots, map, block, cover) {
    var n = 0, node, walker, list = [], i, j, r, v, at;
    for (r = 0; r < roots.length; r++) {
      // The root itself may be a text node (late text) or a link (a changed href).
      list.push(roots[r]);
      walker = d.createTreeWalker(roots[r], 4);
      while ((node = walker.nextNode())) list.push(node);
      if (roots[r].querySelectorAll) list.push.apply(list, roots[r].querySelectorAll('a,[title],[aria-label]'));
    }
    for (i = 0; i < list.length; i++) {
      node = list[i];
      r = node.nodeType === 3 ? node.parentNode : node;
      if (bad(r) || !r.closest || cover && r.closest(cover)) continue;
      if (r !== node) {
        if ((v = sub(node.data, map)) !== node.data) {
          node.data = v;
          n++;
        }
      } else for (j = 0; j < 3; j++) {
        // mailto:a@x,b@y?subject=... (spaces, capitals, escapes) before the parameters; the attributes whole.
        v = node.getAttribute(ATTRS[j]) || '';
        at = j ? [v] : /^\s*mailto:/i.test(v) ? v.split('?') : [''];
        if (!j) v = dec(at[0]);
        if ((at[0] = sub(v, map)) !== v) {
          node.setAttribute(ATTRS[j], at.join('?'));
          j || n++;
        }
      }
    }
    if (n) count(block, n);
    return n;
  }

  function count(block, n) {
    var id = block.i + ' ' + block.t;
    shown[id] = (shown[id] || 0) + n;
    reportTimer = reportTimer || setTimeout(report, 1000);
  }

  // Swap every block: "find in code" blocks under roots but outside what element blocks select,
  // element blocks wherever their selector finds them.
  function apply(roots) {
    var i, j, b, f, map, els, t, cover = [];
    for (i = 0; i < blocks.length; i++) blocks[i].q && cover.push(blocks[i].q);
    for (i = 0; i < blocks.length; i++) {
      b = blocks[i];
      f = b.f || [];
      map = {};
      for (j = 0; j < f.length; j++) map[t = f[j].toLowerCase()] = all[t] = b.t;
      if (was[b.i]) map[was[b.i]] = b.t;
      was[b.i] = b.t.toLowerCase();
      try {
        if (!b.q) swap(roots, map, b, cover.join());
        else {
          els = d.querySelectorAll(b.q);
          for (j = 0; j < els.length; j++) {
            if (bad(els[j])) continue;
            // With addresses given, swap them inside the element; without, the element's text is the address.
            t = els[j].textContent.trim().toLowerCase();
            if (!f.length && t) map[t] = b.t;
            if (!swap([els[j]], map, b) && !f.length && t && t !== was[b.i]) {
              els[j].textContent = b.t; // the address is split over several nodes
              count(b, 1);
            }
          }
        }
      } catch (e) { warn(e); }
    }
    observer && observer.takeRecords(); // our own changes are no new content
  }

  // A string body goes as text/plain: no CORS preflight. A slow answer is given up after 4 s.
  function send(body, cb) {
    var x = new XMLHttpRequest();
    x.open('POST', api + 'hit');
    x.timeout = 4000;
    x.onload = function () {
      try { x.status === 200 && cb(JSON.parse(x.responseText)); } catch (e) { warn(e); }
    };
    x.send(JSON.stringify(body));
  }

  function report() {
    var rows = [], id, p, body;
    for (id in shown) { p = id.split(' '); rows.push([+p[0], p[1], shown[id]]); }
    shown = {};
    reportTimer = 0;
    if (!rows.length) return;
    body = {k: key, v: visitor, s: visit.s, d: rows};
    try { navigator.sendBeacon(api + 'display', JSON.stringify(body)); } catch (e) { warn(e); }
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
        apply([d.documentElement]);
      }
      visit.a = now;
      save('et_s', visit);
      send({k: key, v: visitor, s: visit.s, u: location.href, r: d.referrer, n: !visit.b,
        ga: cookie('_ga'), ym: cookie('_ym_uid'), wd: !!navigator.webdriver}, function (res) {
        blocks = visit.b = res.b || [];
        save('et_s', visit);
        apply([d.documentElement]);
      });
    } catch (e) { warn(e); }
  }

  // Late content (also the rest of the page while it loads) is swapped before it is painted.
  try {
    observer = new MutationObserver(function (records) {
      var roots = [], i;
      for (i = 0; i < records.length; i++) {
        roots.push.apply(roots, records[i].type === 'childList' ? records[i].addedNodes : [records[i].target]);
      }
      apply(roots);
    });
    observer.observe(d.documentElement, {childList: true, subtree: true, characterData: true, attributeFilter: ATTRS});
  } catch (e) { warn(e); }

  // A copied original address becomes the tracked one, except from what the visitor edits.
  d.addEventListener('copy', function (e) {
    try {
      var text = String(w.getSelection()), out = sub(text, all);
      if (out !== text && !bad(e.target)) {
        e.clipboardData.setData('text', out);
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
  pageview();
})(window, document);
