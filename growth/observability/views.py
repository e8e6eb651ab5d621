"""/healthz, /readyz and /metrics, and the per-request hooks: request id, request metrics."""

from __future__ import annotations

import hmac
import ipaddress
import time
import uuid

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from growth.auth.permissions import public
from growth.observability.metrics import HTTP_REQUESTS, HTTP_SECONDS, registry_for
from growth.observability.rules import sane_request_id
from growth.observability.services import readiness

bp = Blueprint("observability", __name__)
PROBES = frozenset({"observability.healthz", "observability.readyz", "observability.metrics"})


@bp.route("/healthz")
@public  # probes carry no session
def healthz() -> Response:
    """Answer that the process is alive (no database access)."""
    return jsonify({"status": "ok"})


@bp.route("/readyz")
@public
def readyz() -> tuple[Response, int]:
    """Answer whether this node can serve: database, schema at head, a worker heartbeat (200, or 503 naming them)."""
    checks = readiness(current_app)
    ok = all(c.ok for c in checks)
    body = {"status": "ready" if ok else "unavailable", "checks": {c.name: c.as_json() for c in checks},
            "failed": [c.name for c in checks if not c.ok]}
    return jsonify(body), 200 if ok else 503


def _loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def metrics_allowed() -> bool:
    """Tell whether this request may read /metrics: a matching bearer token, or loopback with no proxy in between."""
    token = (current_app.config.get("METRICS_TOKEN") or "").strip()
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    # Behind a reverse proxy on the same machine every request comes from loopback: a forwarded request the
    # app was not told to trust (GROWTH_PROXY_COUNT) is not a local one.
    forwarded = "X-Forwarded-For" in request.headers and not current_app.config["PROXY_COUNT"]
    return _loopback(request.remote_addr) and not forwarded


@bp.route("/metrics")
@public  # guarded below: loopback or GROWTH_METRICS_TOKEN, not a staff session
def metrics() -> Response:
    """Serve the Prometheus metrics."""
    if not metrics_allowed():
        return Response("forbidden: /metrics answers loopback or a bearer token (GROWTH_METRICS_TOKEN)\n",
                        status=403, mimetype="text/plain")
    return Response(generate_latest(registry_for(current_app)), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """Install the request id and the request metrics, and register the probes."""
    app.register_blueprint(bp)

    @app.before_request
    def _request_id() -> None:
        g.request_id = sane_request_id(request.headers.get("X-Request-ID")) or uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _echo_and_count(response: Response) -> Response:
        rid = g.get("request_id")
        if rid:
            response.headers["X-Request-ID"] = rid
        started = g.get("request_started")
        if started is not None:
            # The endpoint name, never the path: a path holds ids (one series each) and can hold personal data.
            endpoint = request.endpoint or "unmatched"
            HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
            HTTP_SECONDS.labels(endpoint, request.method).observe(time.perf_counter() - started)
        return response
