"""GET /api/v1/messages (campaigns-api.md §5): bearer token, filters, keyset pages with `next`, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.views import decode_cursor, encode_cursor
from growth.db import get_db
from growth.events.openapi import build_openapi
from tests.factories import make_message, make_token

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SPEC_FIELDS = {"id", "campaign_id", "user_id", "channel", "class", "status", "attempts", "error", "created_at",
               "sent_at"}


@pytest.fixture
def token(app) -> str:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_token(s, role="analyst")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _seed(app, n: int, **fields) -> list[int]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return [make_message(s, created_at=T0 + timedelta(minutes=i), **fields).id for i in range(n)]


def _all_pages(client, token: str, url: str) -> tuple[list[dict], int]:  # type: ignore[no-untyped-def]
    messages, pages = [], 0
    while url:
        response = client.get(url, headers=_auth(token))
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        messages += body["messages"]
        url = body["next"]
        pages += 1
    return messages, pages


def test_a_page_lists_the_spec_fields_newest_first_with_rfc3339_times(app, client, token):
    with get_db(app).session_scope(write=True) as s:
        m = make_message(s, campaign_id=7, user_id="u_1", channel="sms", message_class="marketing", status="sent",
                         attempts=1, created_at=T0, sent_at=T0 + timedelta(seconds=3))
        newer = make_message(s, created_at=T0 + timedelta(hours=1), status="failed", error="isp.SYSTEM_ERROR busy")
        first_id, newer_id = m.id, newer.id
    body = client.get("/api/v1/messages", headers=_auth(token)).get_json()

    assert body["next"] is None
    assert [x["id"] for x in body["messages"]] == [newer_id, first_id]
    item = body["messages"][1]
    assert set(item) >= SPEC_FIELDS
    assert {k: item[k] for k in SPEC_FIELDS} == {
        "id": first_id, "campaign_id": 7, "user_id": "u_1", "channel": "sms", "class": "marketing",
        "status": "sent", "attempts": 1, "error": None, "created_at": "2026-12-01T02:00:00+00:00",
        "sent_at": "2026-12-01T02:00:03+00:00"}
    assert datetime.fromisoformat(item["created_at"]).utcoffset() == timedelta(0)
    assert body["messages"][0]["error"] == "isp.SYSTEM_ERROR busy"


def test_next_walks_every_page_once_with_the_filters_kept(app, client, token):
    wanted = _seed(app, 7, campaign_id=3, user_id="u_9", status="sent")
    _seed(app, 4, campaign_id=3, user_id="u_9", status="failed")
    _seed(app, 3, campaign_id=4, user_id="u_9", status="sent")

    messages, pages = _all_pages(client, token, "/api/v1/messages?campaign_id=3&user_id=u_9&status=sent&limit=3")

    assert [m["id"] for m in messages] == sorted(wanted, reverse=True)
    assert pages == 3
    first = client.get("/api/v1/messages?campaign_id=3&user_id=u_9&status=sent&limit=3", headers=_auth(token))
    query = parse_qs(urlsplit(first.get_json()["next"]).query)
    assert urlsplit(first.get_json()["next"]).path == "/api/v1/messages"
    assert {k: v[0] for k, v in query.items() if k != "cursor"} == {
        "campaign_id": "3", "user_id": "u_9", "status": "sent", "limit": "3"}


def test_the_default_page_is_fifty_and_a_page_ends_exactly_at_the_last_message(app, client, token):
    ids = _seed(app, 100)
    body = client.get("/api/v1/messages", headers=_auth(token)).get_json()
    assert len(body["messages"]) == 50 and body["next"]
    second = client.get(body["next"], headers=_auth(token)).get_json()
    assert [m["id"] for m in body["messages"] + second["messages"]] == sorted(ids, reverse=True)
    assert second["next"] is None


def test_messages_added_while_paging_neither_repeat_nor_shift_a_page(app, client, token):
    ids = _seed(app, 6)
    body = client.get("/api/v1/messages?limit=4", headers=_auth(token)).get_json()
    _seed(app, 3)  # arrive between the two calls
    rest = client.get(body["next"], headers=_auth(token)).get_json()
    assert [m["id"] for m in body["messages"] + rest["messages"]] == sorted(ids, reverse=True)


@pytest.mark.parametrize(("query", "path"), [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("limit=-1", "limit"),
    ("cursor=not-a-cursor", "cursor"), ("cursor=%2F%2F%2F", "cursor"), ("cursor=" + "A" * 60, "cursor"),
    ("campaign_id=x", "campaign_id"), ("campaign_id=99999999999", "campaign_id"),
])
def test_a_malformed_parameter_is_a_400_in_the_house_error_shape(client, token, query, path):
    response = client.get("/api/v1/messages?" + query, headers=_auth(token))
    assert response.status_code == 400
    body = response.get_json()
    assert isinstance(body["error"], str) and body["errors"][0]["path"] == path
    assert set(body["errors"][0]) == {"path", "code", "message"}


def test_an_unknown_status_is_a_422(client, token):
    response = client.get("/api/v1/messages?status=bounced", headers=_auth(token))
    assert response.status_code == 422
    assert response.get_json()["errors"] == [{"path": "status", "code": "unknown_status",
                                              "message": response.get_json()["error"]}]


def test_every_status_of_the_spec_is_a_valid_filter(app, client, token):
    statuses = ["queued", "deferred", "sending", "sent", "delivered", "failed", "dead", "skipped_no_consent",
                "capped", "unreachable"]
    with get_db(app).session_scope(write=True) as s:
        for status in statuses:
            make_message(s, status=status)
    for status in statuses:
        body = client.get(f"/api/v1/messages?status={status}", headers=_auth(token)).get_json()
        assert [m["status"] for m in body["messages"]] == [status]


def test_the_api_needs_a_token(client):
    response = client.get("/api/v1/messages")
    assert response.status_code == 401 and response.get_json()["error"]
    assert client.get("/api/v1/messages", headers=_auth("nonsense")).status_code == 401


def test_a_cursor_is_opaque_and_round_trips():
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert "12345" not in encode_cursor(12345)
    assert decode_cursor("bm9wZQ") is None  # base64 of something else


def test_the_openapi_description_lists_the_messages_operation():
    doc = build_openapi()
    op = doc["paths"]["/api/v1/messages"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"campaign_id", "user_id", "status", "limit", "cursor"}
    assert set(op["responses"]) >= {"200", "400", "401", "422"}
    assert set(doc["components"]["schemas"]["Message"]["required"]) == SPEC_FIELDS
