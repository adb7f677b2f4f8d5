"""The baseline for bench/api_bench.py: a bare Flask JSON endpoint, no database, no Redis.

It parses the same text/plain JSON body as /api/v1/hit and answers a JSON body of
the same shape, so the difference to the real endpoint is the tracker's own work.
"""

import json

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/api/v1/hit")
def hit():
    """Echo the visit id with a fixed answer."""
    payload = json.loads(request.get_data())
    return jsonify(s=payload.get("s"), b=[{"i": 1, "f": ["info@bench.example"],
                                           "t": "info+abcdefgh@bench.example"}])
