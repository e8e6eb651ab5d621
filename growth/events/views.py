"""The signed events API (the platform's door) and the event log page for staff."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, render_template, request

from growth.auth.permissions import Permission, public, require
from growth.db import request_session
from growth.events import services
from growth.events.processor import wake_event
from growth.events.rules import EVENT_TYPES, MAX_BODY_BYTES, MAX_EVENTS
from growth.timeutil import utcnow

api = Blueprint("events_api", __name__, url_prefix="/api/v1")
bp = Blueprint("events", __name__, url_prefix="/events")


def _json(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _hooks() -> list:
    """Verifiers for the configured secrets, built once per app (and again if the setting changes)."""
    secret = current_app.config.get("WEBHOOK_SECRET") or ""
    cached = current_app.extensions.get("growth.webhooks")
    if cached is None or cached[0] != secret:
        cached = (secret, services.verifiers(secret))
        current_app.extensions["growth.webhooks"] = cached
    return cached[1]


@api.route("/events", methods=["POST"])
@public  # authenticated by the Standard Webhooks signature, not by a staff session
def receive_events() -> Response:
    """Verify, validate and append a batch of platform events."""
    if request.mimetype != "application/json":
        return _json({"error": "Content-Type must be application/json"}, 415)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _json({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _json({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
    try:
        services.verify_signature(body, request.headers, _hooks())
    except services.SignatureError as err:
        return _json({"error": f"signature check failed: {err}"}, 401)
    try:
        events = services.parse_body(body)
    except services.EnvelopeError as err:
        return _json({"error": str(err)}, 400)
    if len(events) > MAX_EVENTS:
        return _json({"error": f"more than {MAX_EVENTS} events in one request"}, 413)
    result = services.ingest(events, session=request_session(), now=utcnow())
    response = _json(result.as_json())
    if result.accepted:
        response.call_on_close(wake_event(current_app).set)  # after the commit: process them now
    return response


@bp.route("/")
@require(Permission.EVENTS_VIEW)
def index():  # type: ignore[no-untyped-def]
    page = max(request.args.get("page", 1, type=int), 1)
    type_ = request.args.get("type") or None
    user_id = (request.args.get("user_id") or "").strip() or None
    session = request_session()
    events, total = services.list_events(session=session, type_=type_, user_id=user_id, page=page)
    return render_template("events/index.html", events=events, total=total, page=page, per_page=50,
                           status=services.log_status(session=session), types=sorted(EVENT_TYPES),
                           type_=type_ or "", user_id=user_id or "")
