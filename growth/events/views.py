"""The signed events API (the platform's door), its OpenAPI description and docs, and the event log page."""

from __future__ import annotations

import orjson
from flask import Blueprint, Response, current_app, render_template, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from growth.auth.permissions import Permission, public, require
from growth.db import get_db, request_session
from growth.events import services
from growth.events.endpoint import verifiers_of
from growth.events.openapi import served_openapi
from growth.events.processor import wake_event
from growth.events.rules import EVENT_TYPE_LABELS, MAX_BODY_BYTES, MAX_EVENTS
from growth.inputs import page_arg
from growth.observability.metrics import count_received
from growth.request_size import ENVELOPE_SLACK, max_body
from growth.timeutil import utcnow

# Prefix /api (not /api/v1) so the docs page can live at /api/docs beside the versioned API.
api = Blueprint("events_api", __name__, url_prefix="/api")
bp = Blueprint("events", __name__, url_prefix="/events")

# The Swagger UI files the docs page loads; nothing else of the bundle is served.
SWAGGER_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                            "favicon-32x32.png", "favicon-16x16.png"})


def _json(body: dict, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@api.route("/v1/events", methods=["POST"])
@public  # authenticated by the Standard Webhooks signature, not by a staff session
@max_body(MAX_BODY_BYTES + ENVELOPE_SLACK)  # the view answers a body over MAX_BODY_BYTES with its JSON 413
def receive_events() -> Response:
    """Verify, validate and append a batch of platform events (the plain case is served by `endpoint`, in front)."""
    if request.mimetype != "application/json":
        return _json({"error": "Content-Type must be application/json"}, 415)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return _json({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _json({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, 413)
    try:
        services.check_utf8(body)
    except services.EnvelopeError as err:
        return _json({"error": str(err)}, 400)
    try:
        services.verify_signature(body, request.headers, verifiers_of(current_app), now=utcnow())
    except services.SignatureError as err:
        return _json({"error": f"signature check failed: {err}"}, 401)
    try:
        events = services.parse_body(body)
    except services.EnvelopeError as err:
        return _json({"error": str(err)}, 400)
    if len(events) > MAX_EVENTS:
        return _json({"error": f"more than {MAX_EVENTS} events in one request"}, 413)
    result = services.ingest_durably(events, db=get_db(), now=utcnow())
    count_received(accepted=result.accepted, duplicates=result.duplicates, rejected=len(result.rejected))
    response = _json(result.as_json())
    if result.accepted:
        response.call_on_close(wake_event(current_app).set)  # after the commit: process them now
    return response


@api.route("/v1/openapi.json")
@public  # the contract is no secret: the platform's developers read it
def openapi_json() -> Response:
    """Serve the OpenAPI 3.1 description of the API."""
    return Response(served_openapi(current_app, "3.1"), mimetype="application/json")


@api.route("/docs/openapi-3.0.json")
@public
def openapi_json_30() -> Response:
    """Serve the description spelled as OpenAPI 3.0, which the bundled Swagger UI 4 can render."""
    return Response(served_openapi(current_app, "3.0"), mimetype="application/json")


@api.route("/docs")
@public  # shows only the public description above; trying requests out still needs a signature or token
def api_docs() -> str:
    """Render the Swagger UI page for the API description."""
    return render_template("events/api_docs.html")


@api.route("/docs/assets/<path:filename>")
@public
def swagger_asset(filename: str) -> Response:
    """Serve a Swagger UI asset from the swagger_ui_bundle package (never a CDN: the intranet has none)."""
    if filename not in SWAGGER_ASSETS:
        return _json({"error": "not found"}, 404)
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


@bp.app_template_filter("event_type_label")
def event_type_label(type_: str) -> str:
    """Return an event type's label in the UI language (the code itself for a type we do not know)."""
    label = EVENT_TYPE_LABELS.get(type_)
    return type_ if label is None else str(label)


@bp.route("/")
@require(Permission.EVENTS_VIEW)
def index():  # type: ignore[no-untyped-def]
    page = page_arg()
    type_ = request.args.get("type") or None
    user_id = (request.args.get("user_id") or "").strip() or None
    session = request_session()
    events, total = services.list_events(session=session, type_=type_, user_id=user_id, page=page)
    return render_template("events/index.html", events=events, total=total, page=page, per_page=50,
                           status=services.log_status(session=session), types=EVENT_TYPE_LABELS,
                           type_=type_ or "", user_id=user_id or "")
