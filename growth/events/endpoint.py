"""The events API's fast lane: a signed, well-formed POST /api/v1/events answered without Flask's request machinery.

The platform's webhook is the one request that arrives by the thousand a second. Through Flask it cost ≈ 2 ms of
CPU — the request and app contexts, the cookie session, a dozen before/after hooks (CSRF, login, locale,
Talisman, request limits), the ORM session — about twice the work of checking and appending the events, and
on a 2-core machine that decided the rate held (bench/README.md, issue 13). This WSGI layer in front of the app
does only what the request needs, with the same service functions as the view (`growth.events.views`):
signature, envelope, validation, the durable append, the metrics and the request id.

Anything but the plain case — another path or method, a content type other than JSON, a body without a
length or over the limit, a bad signature, a body that is not an event batch, an error while appending — is
handed to the Flask app with the body put back, and the view answers it exactly as before (status codes and
messages of the spec). So the fast lane decides nothing the view does not; it only skips machinery.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask

from growth.db import get_db
from growth.events import services
from growth.events.processor import wake_event
from growth.events.rules import MAX_BODY_BYTES, MAX_EVENTS
from growth.observability.metrics import HTTP_REQUESTS, HTTP_SECONDS, count_received
from growth.observability.rules import sane_request_id
from growth.timeutil import utcnow

log = logging.getLogger("growth.events.endpoint")

PATH = "/api/v1/events"
ENDPOINT = "events_api.receive_events"  # the view's name: the same metric series whichever way a request went
# What the view's answer carries besides its body (growth.security, Talisman): a JSON answer needs no more.
_HEADERS = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
]
_SIGNATURE_ENVIRON = {name: "HTTP_" + name.upper().replace("-", "_") for name in services.SIGNATURE_HEADERS}

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Unusual(Exception):
    """The request is not the plain case: the Flask view answers it."""


def verifiers_of(app: Flask) -> list[Any]:
    """Return the verifiers of the app's webhook secrets, built once (and again if the setting changes)."""
    secret = app.config.get("WEBHOOK_SECRET") or ""
    cached = app.extensions.get("growth.webhooks")
    if cached is None or cached[0] != secret:
        cached = (secret, services.verifiers(secret))
        app.extensions["growth.webhooks"] = cached
    return cached[1]


class EventsFastLane:
    """WSGI middleware: serve the plain signed event batch itself, pass everything else to the app."""

    def __init__(self, app: Flask, inner: WsgiApp) -> None:
        self.app = app
        self.inner = inner

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Answer a plain signed batch; hand any other request to the app."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        started = time.perf_counter()
        length = _length(environ)
        if length is None or _mimetype(environ) != "application/json":
            return self.inner(environ, start_response)
        body = environ["wsgi.input"].read(length)
        try:
            result = self._ingest(body, environ)
        except Unusual:
            environ["wsgi.input"] = io.BytesIO(body)  # the view reads it again
            return self.inner(environ, start_response)
        answer = orjson.dumps(result.as_json())
        request_id = sane_request_id(environ.get("HTTP_X_REQUEST_ID")) or uuid.uuid4().hex
        start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(answer))), ("X-Request-ID", request_id)])
        HTTP_REQUESTS.labels(ENDPOINT, "POST", "200").inc()
        HTTP_SECONDS.labels(ENDPOINT, "POST").observe(time.perf_counter() - started)
        return [answer]

    def _ingest(self, body: bytes, environ: dict[str, Any]) -> services.IngestResult:
        """Check and append the batch as the view does; raise Unusual where the view would answer otherwise."""
        headers = {name: environ.get(key, "") for name, key in _SIGNATURE_ENVIRON.items()}
        now = utcnow()
        try:
            services.check_utf8(body)
            services.verify_signature(body, headers, verifiers_of(self.app), now=now)
            events = services.parse_body(body)
        except (services.SignatureError, services.EnvelopeError):
            raise Unusual from None
        if len(events) > MAX_EVENTS:
            raise Unusual
        try:
            result = services.ingest_durably(events, db=get_db(self.app), now=now)
        except Exception:
            log.warning("events fast lane: the append failed; the view answers the request", exc_info=True)
            raise Unusual from None
        count_received(accepted=result.accepted, duplicates=result.duplicates, rejected=len(result.rejected))
        if result.accepted:
            wake_event(self.app).set()  # committed: an in-process processor may take them now
        return result


def _length(environ: dict[str, Any]) -> int | None:
    value = environ.get("CONTENT_LENGTH") or ""
    if not value.isdigit() or not value.isascii():
        return None
    length = int(value)
    return length if 0 < length <= MAX_BODY_BYTES else None


def _mimetype(environ: dict[str, Any]) -> str:
    return (environ.get("CONTENT_TYPE") or "").split(";", 1)[0].strip().lower()


def init_app(app: Flask) -> None:
    """Put the fast lane in front of the app (outermost: nothing else runs for a plain batch)."""
    app.wsgi_app = EventsFastLane(app, app.wsgi_app)  # type: ignore[method-assign]
