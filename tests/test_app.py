"""The app class: Flask, remembering which hooks and views are synchronous."""

import pytest


def test_plain_functions_are_remembered_and_returned_as_they_are(app):
    def view():
        return "ok"

    assert app.ensure_sync(view) is view
    assert view in app._synchronous
    assert app.ensure_sync(view) is view


def test_callables_without_weak_references_still_work(app):
    assert app.ensure_sync(len) is len
    assert app.ensure_sync(len) is len  # asked again, not remembered


def test_coroutine_functions_are_never_taken_for_plain_ones(app):
    async def view():
        return "ok"

    # Without Flask's async extra, Flask refuses them, and keeps refusing them.
    for _ in range(2):
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(view)
    assert view not in app._synchronous
