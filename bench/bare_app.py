"""The floors of `bench/load.py`: bare WSGI apps that do the least an events API must do, without Flask.

`--db ceiling`: read the body, check the Standard Webhooks signature with the same library as the product,
parse the JSON, and answer as the product does for one new event; nothing is stored. Served by gunicorn with
the product's own settings (deploy/gunicorn.conf.py), it measures what the web server, the client and the
machine allow before any application work: the product cannot hold a rate this cannot.

`--db lean` (BENCH_BARE_APPEND=1): the same, then validate the events and append them exactly as the product
does on PostgreSQL (its own validation, sealing and statements, one round trip on a plain psycopg
connection, durable before the answer), with a `growth worker` processing them: the events API with nothing
but its contract's work, no Flask, no SQLAlchemy, no hooks. What this cannot hold, no Python implementation of
the contract can hold on the same machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

_HOOK = Webhook(os.environ.get("GROWTH_WEBHOOK_SECRET", "whsec_" + "A" * 32))
_APPEND = os.environ.get("BENCH_BARE_APPEND") == "1"
_connection: Any = None
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
        doc = orjson.loads(body)
    except (WebhookVerificationError, orjson.JSONDecodeError) as err:
        return _answer(start_response, "401 Unauthorized", orjson.dumps({"error": str(err)}))
    if not _APPEND:
        return _answer(start_response, "200 OK", _ACCEPTED)
    return _answer(start_response, "200 OK", orjson.dumps(_append(doc)))


def _append(doc: Any) -> dict[str, Any]:
    """Validate and append the events as the product does on PostgreSQL, durably, in one round trip."""
    from datetime import UTC, datetime

    from growth.events import services
    from growth.events.rules import split_envelope

    global _connection
    if _connection is None:  # one connection per gunicorn worker (run it with one thread)
        import psycopg

        from growth.crypto import configure, parse_keys

        configure(parse_keys(os.environ["GROWTH_DATA_KEYS"]))
        url = os.environ["GROWTH_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
        _connection = psycopg.connect(url, prepare_threshold=None)
    now = datetime.now(UTC)
    valid, rejected = services.validate_all(split_envelope(doc) or [], now=now)
    inserted = services.append_on(_connection, valid, now=now) if valid else 0
    return {"accepted": inserted, "duplicates": len(valid) - inserted, "rejected": rejected}
