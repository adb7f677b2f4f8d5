"""Launch Debian's Chromium (``/usr/bin/chromium``) through Playwright.

Playwright's own browser downloads cannot be used here (no internet), so
never run ``playwright install``: always hand Playwright the system binary
through ``executable_path``. With ``executable_path`` Playwright does not look
for (or warn about) its bundled browser builds.

Checked with Playwright 1.65 (whose bundled build would be Chromium 159) and
Debian's chromium 156:

* ``launch(headless=True, executable_path=...)`` works as is. Playwright
  switches to its separate "chrome-headless-shell" binary only when it picks
  its own downloaded browser; for an ``executable_path`` it just adds plain
  ``--headless`` (plus ``--hide-scrollbars --mute-audio``). Since Chromium 132
  the old headless mode is gone from the full browser binary, so plain
  ``--headless`` already *is* the new headless mode: ``--headless=new`` is not
  needed (the user agent reports ``HeadlessChrome/156``).
* The slightly older Chromium speaks the CDP parts the tests use.
* Debian's ``/usr/bin/chromium`` wrapper may print ``[: N: unexpected
  operator`` on stderr (``/etc/chromium.d/dev-shm`` gets two lines from
  ``findmnt``); harmless, and ``--disable-dev-shm-usage`` is passed anyway.
* ``--no-sandbox`` is required as root; Playwright adds it too unless
  ``chromium_sandbox=True``.
"""

from __future__ import annotations

import shutil
from typing import Any

BROWSER_BINARIES = ("chromium", "chromium-browser")

DEFAULT_ARGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root; Chromium's sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


class ChromiumNotFound(RuntimeError):
    """No system Chromium: install the Debian package ``chromium``."""


def chromium_path() -> str:
    for name in BROWSER_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumNotFound(
        "Chromium executable not found on PATH: install the Debian package 'chromium' "
        "(apt-get install chromium); Playwright's bundled browsers are not used here"
    )


def launch_chromium(playwright: Any, **kwargs: Any) -> Any:
    """Launch headless Debian Chromium with Playwright; returns a ``Browser``.

    ``playwright`` is the object from ``sync_playwright().start()`` (or the
    async API's). Extra keyword arguments go to ``chromium.launch``; ``args``
    given there are appended to :data:`DEFAULT_ARGS` (duplicates dropped).
    """
    extra_args = list(kwargs.pop("args", None) or ())
    args = list(DEFAULT_ARGS)
    for arg in extra_args:
        if arg not in args:
            args.append(arg)
    kwargs.setdefault("executable_path", chromium_path())
    kwargs.setdefault("headless", True)
    return playwright.chromium.launch(args=args, **kwargs)
