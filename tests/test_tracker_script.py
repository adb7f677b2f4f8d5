"""The website script as served: within its size budget and built from the current source."""

import gzip
import hashlib
from pathlib import Path

SOURCE = Path(__file__).parent.parent / "tracker" / "assets" / "tracker.js"
BUDGET = 2048  # bytes, gzipped (Plausible's script is about 2.5 KB)


def test_served_script_fits_the_size_budget(client):
    with client.get("/static/js/tracker.js") as response:
        assert response.status_code == 200
        body = response.get_data()
    assert body.startswith(b"!function(")  # the minified build, not the source
    size = len(gzip.compress(body, compresslevel=9))
    assert size <= BUDGET, f"tracker.js is {size} bytes gzipped; the budget is {BUDGET}"


def test_build_is_up_to_date():
    recorded = (SOURCE.parent / "tracker.js.sha256").read_text().strip()
    current = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    assert recorded == current, "tracker/assets/tracker.js changed: run `make js`"
