"""A plain signed batch is answered in front of Flask (growth.events.endpoint); every other request by the view."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select

from growth.db import get_db
from growth.events import services
from growth.events.models import PlatformEvent
from growth.observability.metrics import registry_for
from tests.events import event, post_events, signed_headers

AT = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
URL = "/api/v1/events"


def _through_flask(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Note every request that reaches Flask's request machinery."""
    seen: list[str] = []
    app.before_request_funcs.setdefault(None, []).insert(0, lambda: seen.append("flask") and None)
    return seen


def _counts(app) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """This process's /metrics: events-API answers of 200, events accepted, events rejected."""
    registry = registry_for(app)
    return tuple(registry.get_sample_value(name, labels) or 0.0 for name, labels in (  # type: ignore[return-value]
        ("growth_http_requests_total", {"endpoint": "events_api.receive_events", "method": "POST", "status": "200"}),
        ("growth_events_received_total", {"outcome": "accepted"}),
        ("growth_events_received_total", {"outcome": "rejected"})))


def test_a_plain_batch_is_stored_and_answered_without_flask_with_the_views_headers_and_metrics(app, client):
    flask = _through_flask(app)
    requests_before, accepted_before, rejected_before = _counts(app)

    registered = event("user.registered", "u1", AT)
    body = orjson.dumps({"events": [registered, {"id": "broken"}]})
    response = client.post(URL, data=body, headers={**signed_headers(body), "X-Request-ID": "req-fast-1"})

    assert response.status_code == 200 and flask == []
    assert response.json == {"accepted": 1, "duplicates": 0, "rejected": [
        {"index": 1, "id": "broken", "errors": ["type: required", "occurred_at: required", "user: required"]}]}
    assert response.headers["X-Request-ID"] == "req-fast-1"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.mimetype == "application/json"
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(PlatformEvent)) == 1
    assert _counts(app) == (requests_before + 1, accepted_before + 1, rejected_before + 1)
    # A replay is a duplicate, still in front of Flask.
    assert post_events(client, [registered]).json == {"accepted": 0, "duplicates": 1, "rejected": []}
    assert flask == []


def test_each_unusual_request_is_answered_by_the_view_with_its_body_intact(app, client):
    flask = _through_flask(app)
    good = orjson.dumps({"events": [event("user.registered", "u1", AT)]})
    cases = [
        (good, {**signed_headers(good), "webhook-signature": "v1,AAAA"}, 401),  # bad signature
        (good, {**signed_headers(good), "Content-Type": "text/plain"}, 415),
        (b"\xff\xfe", signed_headers(good), 400),  # not UTF-8 (checked before the signature)
        (b"[1, 2", signed_headers(b"[1, 2"), 400),  # not JSON
    ]
    for body, headers, status in cases:
        response = client.post(URL, data=body, headers=headers, content_type=headers.get("Content-Type",
                                                                                           "application/json"))
        assert response.status_code == status, (body, response.json)
        assert "error" in response.json
    assert len(flask) == len(cases)
    # The same good body, signed, after all that: accepted in front of Flask.
    assert client.post(URL, data=good, headers=signed_headers(good)).json["accepted"] == 1
    assert len(flask) == len(cases)


def test_a_failing_append_is_retried_by_the_view_which_answers_as_it_would(app, client, monkeypatch):
    flask = _through_flask(app)
    real = services.validate_all
    calls: list[int] = []

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the database went away")  # any failure on the way to the append
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "validate_all", flaky)
    assert post_events(client, [event("user.registered", "u1", AT)]).json["accepted"] == 1
    assert len(calls) == 2 and flask == ["flask"]
