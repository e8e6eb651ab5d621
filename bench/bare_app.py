"""The HTTP ceiling of `bench/load.py --db ceiling`: a bare WSGI app that checks and answers, and stores nothing.

It does the least any events API must do for a signed request — read the body, check the Standard Webhooks
signature with the same library as the product, parse the JSON — and answers as the product does for one new
event, without Flask and without a database. Served by gunicorn with the product's own settings
(deploy/gunicorn.conf.py), it measures what the web server, the client and the machine allow before any
application work: the product cannot hold a rate this cannot.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

_HOOK = Webhook(os.environ.get("GROWTH_WEBHOOK_SECRET", "whsec_" + "A" * 32))
_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_ACCEPTED = orjson.dumps({"accepted": 1, "duplicates": 0, "rejected": []})


def _answer(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer a signed POST /api/v1/events as accepted; anything else 404, a bad signature 401."""
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/api/v1/openapi.json" and method == "GET":  # what the benchmark's readiness check asks for
        return _answer(start_response, "200 OK", b"{}")
    if path != "/api/v1/events" or method != "POST":
        return _answer(start_response, "404 Not Found", b'{"error": "not found"}')
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    headers = {name: environ.get("HTTP_" + name.upper().replace("-", "_"), "") for name in _HEADERS}
    try:
        _HOOK.verify(body, headers, json_parse=False)
        orjson.loads(body)
    except (WebhookVerificationError, orjson.JSONDecodeError) as err:
        return _answer(start_response, "401 Unauthorized", orjson.dumps({"error": str(err)}))
    return _answer(start_response, "200 OK", _ACCEPTED)
