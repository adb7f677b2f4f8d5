"""Email tracking: attribute incoming email to the source and visit that produced it."""

import os
import weakref
from pathlib import Path

from dotenv import load_dotenv
from flask import Flask

from tracker import config as cfg


class App(Flask):
    """Flask, remembering which hooks and views are plain functions.

    Flask asks ensure_sync() about every hook and the view of every request, and
    the answer (inspect.iscoroutinefunction) costs more than some of the hooks.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._synchronous = weakref.WeakSet()

    def ensure_sync(self, func):
        if func in self._synchronous:
            return func
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            try:
                self._synchronous.add(func)
            except TypeError:  # not weakly referable: asked about again next time
                pass
        return wrapped


def create_app(test_config=None):
    """Build the Flask app: defaults in code, then the environment, then test_config."""
    test_config = dict(test_config or {})
    instance_path = test_config.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH")
    if test_config.get("TESTING") is None:
        # A developer's .env fills what the environment leaves unset; tests ignore it.
        load_dotenv(Path.cwd() / ".env", override=False)
    app = App(
        __name__,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
        instance_relative_config=True,
    )

    settings = cfg.defaults(app.instance_path)
    try:
        if not test_config.get("TESTING"):
            settings.update(cfg.from_environment())
        settings.update(test_config)
        app.config.update(cfg.finalize(settings, app.instance_path))
    except cfg.ConfigError as exc:
        # One line naming the variable, not a traceback.
        raise SystemExit(f"Configuration error: {exc}") from None

    if app.config["PROXY_COUNT"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)

    from tracker import cli, i18n, security, textclean, views
    from tracker.extensions import csrf, db, htmx, login_manager, migrate

    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(Path(__file__).parent / "migrations"), render_as_batch=True
    )
    csrf.init_app(app)
    htmx.init_app(app)
    i18n.init_app(app)
    security.init_app(app)
    textclean.init_app(app)
    login_manager.init_app(app)
    views.init_app(app)
    _connect_signals()
    cli.init_app(app)
    return app


def _connect_signals():
    """Pipeline steps that listen to the sync (blinker keeps one connection per receiver)."""
    from tracker.attribution import on_emails_stored
    from tracker.ingest import before_batch_stored
    from tracker.jobs.webhooks import on_emails_committed
    from tracker.sync import batch_fetched, emails_committed, emails_stored

    batch_fetched.connect(before_batch_stored)
    emails_stored.connect(on_emails_stored)
    emails_committed.connect(on_emails_committed)
