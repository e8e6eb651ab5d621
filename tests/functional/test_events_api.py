"""The platform events API answers every row of shared/spec/events-api.md, as its OpenAPI description says.

Every response below is also checked against the schema the OpenAPI description documents for its status.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.specs.openapi.definitions import OPENAPI_30_VALIDATOR, OPENAPI_31_VALIDATOR
from sqlalchemy import func, select
from standardwebhooks import Webhook

from growth.config import TestConfig
from growth.crypto import keyring
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.events.openapi import build_openapi, openapi_of
from growth.events.rules import MAX_BODY_BYTES, MAX_EVENTS, load_payload
from growth.timeutil import SHANGHAI
from tests.events import event, investment, post_events, signed_headers
from tests.factories import make_token

URL = "/api/v1/events"
SECRET = TestConfig.WEBHOOK_SECRET
OTHER_SECRET = "whsec_" + base64.b64encode(b"another platform's secret key!!").decode()
NEXT_SECRET = "whsec_" + base64.b64encode(b"the rotated-in secret key 2026").decode()
OPENAPI = build_openapi()


def _ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)


def _deposit(user_id: str = "u1", amount: object = "100.00", **kw: Any) -> dict[str, Any]:
    return event("funds.deposited", user_id, _ago(hours=1), {"deposit_id": f"d_{user_id}", "amount": amount}, **kw)


def _batch(n: int, prefix: str = "evt") -> list[dict[str, Any]]:
    at = _ago(days=1)
    return [event("user.kyc_verified", f"u{i}", at, event_id=f"{prefix}_{i}") for i in range(n)]


def _send(client: FlaskClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(URL, data=body, headers=headers)


def _hmac_headers(body: bytes, secret: str = SECRET, *, msg_id: str = "msg_raw", ts: int | None = None,
                  content_type: str | None = "application/json") -> dict[str, str]:
    """Sign by the letter of the spec, over the raw bytes (the library only takes text)."""
    ts = int(datetime.now(UTC).timestamp()) if ts is None else ts
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts),
               "webhook-signature": "v1," + base64.b64encode(digest).decode()}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def _stored(app: Flask) -> list[PlatformEvent]:
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(PlatformEvent).order_by(PlatformEvent.seq)))


def _stored_count(app: Flask) -> int:
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.count()).select_from(PlatformEvent)) or 0


def _documented(path: str, method: str, status: int) -> dict[str, Any]:
    """Return the response schema the OpenAPI description gives for a status, failing if none is given."""
    responses = OPENAPI["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} answered {status}, which is not documented"
    return responses[str(status)]["content"]["application/json"]["schema"]


def _conforms(response: Any, path: str = URL, method: str = "post") -> Any:
    """Assert the response is JSON matching its documented schema; return the parsed body."""
    assert response.mimetype == "application/json", response.mimetype
    body = orjson.loads(response.get_data())
    schema = {**_documented(path, method, response.status_code), "components": OPENAPI["components"]}
    errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)]
    assert errors == [], f"{response.status_code} body {body!r} breaks the documented schema: {errors}"
    return body


def _refused(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = _conforms(response)
    assert set(body) == {"error"} and body["error"]
    return body["error"]


# --- 200: the envelope parsed ------------------------------------------------------------------


def test_a_signed_batch_is_accepted_and_every_event_stored(app, client):
    events = [event("user.registered", "u1", _ago(days=2), {"channel_code": "baidu_sem"}), _deposit("u1"),
              investment("u1", _ago(hours=2), "inv1")]
    response = post_events(client, events)
    assert response.status_code == 200
    assert _conforms(response) == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert [e.event_id for e in _stored(app)] == [e["id"] for e in events]


def test_a_single_bare_event_object_is_a_batch_of_one(app, client):
    one = _deposit("u7", event_id="evt_single")
    response = post_events(client, one)
    assert response.status_code == 200
    assert _conforms(response) == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert [e.event_id for e in _stored(app)] == ["evt_single"]


def test_a_single_bare_event_that_is_invalid_is_rejected_at_index_zero(app, client):
    response = post_events(client, _deposit("u7", amount="0.00", event_id="evt_zero"))
    assert response.status_code == 200
    assert _conforms(response) == {"accepted": 0, "duplicates": 0, "rejected": [
        {"index": 0, "id": "evt_zero", "errors": ["data.amount: must be greater than 0"]}]}
    assert _stored_count(app) == 0


def test_an_empty_batch_is_answered_with_zero_counts(app, client):
    response = post_events(client, [])
    assert response.status_code == 200
    assert _conforms(response) == {"accepted": 0, "duplicates": 0, "rejected": []}


def test_events_are_stored_verbatim_but_their_contact_fields_sealed_with_their_indexed_columns(app, client):
    sent = investment("u_10023", datetime(2026, 1, 30, 10, 15, tzinfo=UTC), "inv_77", amount="10000.00",
                      rate="0.0850", phone="13800138000", name="张三", email="z@example.com",
                      wechat_openid="oAbc", event_id="evt_verbatim")
    sent["occurred_at"] = "2026-01-30T18:15:00.5+08:00"  # an offset and a fraction, kept as sent
    sent["data"]["reward_ids"] = ["rw_1", "rw_2"]
    response = post_events(client, [sent])
    assert _conforms(response)["accepted"] == 1
    (row,) = _stored(app)
    assert load_payload(row.payload, keyring()) == sent  # as sent, once the contact fields are opened
    assert orjson.loads(row.payload)["user"].keys() == {"id", "wechat_openid", "$sealed"}  # encrypted at rest
    assert "13800138000" not in row.payload and "张三" not in row.payload and "z@example.com" not in row.payload
    assert (row.event_id, row.type, row.user_id) == ("evt_verbatim", "investment.created", "u_10023")
    assert row.occurred_at == datetime(2026, 1, 30, 10, 15, 0, 500000, tzinfo=UTC)


def test_fields_the_spec_does_not_define_are_dropped_before_an_event_is_stored(app, client):
    sent = investment("u_10023", _ago(hours=1), "inv_78", phone="13800138000", event_id="evt_extras")
    expected = orjson.loads(orjson.dumps(sent))
    sent["user"]["id_number"] = "110101199001011234"
    sent["data"]["bank_card"] = "6222021234567890123"
    sent["data"]["product"]["issuer_licence"] = "x"
    sent["data"]["platform_extra"] = {"campaign": "双十一", "nested": [1, 2.5, None, True]}
    sent["trace"] = "unknown top-level fields are dropped too"
    registered = event("user.registered", "u_10024", _ago(hours=1), {"ip": "203.0.113.7", "idno": "1101"},
                       event_id="evt_reg_extras")
    response = post_events(client, [sent, registered])
    assert _conforms(response) == {"accepted": 2, "duplicates": 0, "rejected": []}
    stored = {row.event_id: row.payload for row in _stored(app)}
    assert load_payload(stored["evt_extras"], keyring()) == expected
    assert orjson.loads(stored["evt_reg_extras"])["data"] == {"ip": "203.0.113.7"}
    for secret in ("110101199001011234", "6222021234567890123", "1101", "双十一", "trace"):
        assert all(secret not in payload for payload in stored.values())


@pytest.mark.parametrize("depth", [40, 300, 1000])
def test_an_event_nested_too_deep_is_rejected_alone_with_its_path(app, client, depth):
    deep = _deposit("u1", event_id="evt_deep")
    deep["data"]["blob"] = "__deep__"
    # Written by hand: the serialiser cannot write what this test sends (that was the 500).
    body = orjson.dumps({"events": [_deposit("u2", event_id="evt_fine"), deep]}).replace(
        b'"__deep__"', b"[" * depth + b'"bottom"' + b"]" * depth)
    response = _send(client, body, signed_headers(body))
    assert response.status_code == 200
    body = _conforms(response)
    assert body["accepted"] == 1
    assert body["rejected"] == [{"index": 1, "id": "evt_deep",
                                 "errors": ["data.blob: nested more than 32 levels deep"]}]
    assert [row.event_id for row in _stored(app)] == ["evt_fine"]


def test_a_body_too_deep_to_parse_is_a_400_not_a_500(app, client):
    body = b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    response = _send(client, body, signed_headers(body))
    assert response.status_code == 400
    assert "error" in _conforms(response)
    assert _stored(app) == []


def test_a_5000_event_batch_is_accepted_whole(app, client):
    response = post_events(client, _batch(MAX_EVENTS))
    assert response.status_code == 200
    assert _conforms(response) == {"accepted": MAX_EVENTS, "duplicates": 0, "rejected": []}
    assert _stored_count(app) == MAX_EVENTS


def test_a_body_of_exactly_5_mib_is_not_refused_for_its_size(app, client):
    one = _deposit("u1", event_id="evt_big")
    one["padding"] = ""
    one["padding"] = "x" * (MAX_BODY_BYTES - len(orjson.dumps(one)))
    body = orjson.dumps(one)
    assert len(body) == MAX_BODY_BYTES
    response = _send(client, body, signed_headers(body))
    assert response.status_code == 200
    assert _conforms(response)["accepted"] == 1


def test_a_json_content_type_with_parameters_is_accepted(app, client):
    body = orjson.dumps(_deposit())
    headers = signed_headers(body) | {"Content-Type": "application/json; charset=utf-8"}
    response = _send(client, body, headers)
    assert response.status_code == 200
    assert _conforms(response)["accepted"] == 1


# --- idempotency -------------------------------------------------------------------------------


def test_a_duplicate_within_one_batch_is_counted_and_stored_once(app, client):
    first = _deposit("u1", event_id="evt_dup")
    again = _deposit("u1", event_id="evt_dup", amount="999.00")
    response = post_events(client, [first, _deposit("u2"), again])
    assert _conforms(response) == {"accepted": 2, "duplicates": 1, "rejected": []}
    stored = {e.event_id: orjson.loads(e.payload) for e in _stored(app)}
    assert len(stored) == 2
    assert stored["evt_dup"]["data"]["amount"] == "100.00"  # the first one wins; the replay changed nothing


def test_a_replayed_batch_is_all_duplicates_and_changes_nothing(app, client):
    events = [_deposit(f"u{i}") for i in range(5)]
    assert _conforms(post_events(client, events)) == {"accepted": 5, "duplicates": 0, "rejected": []}
    before = [(e.seq, e.payload, e.received_at) for e in _stored(app)]
    response = post_events(client, events)
    assert _conforms(response) == {"accepted": 0, "duplicates": 5, "rejected": []}
    assert [(e.seq, e.payload, e.received_at) for e in _stored(app)] == before


def test_a_later_batch_mixing_old_and_new_events_stores_only_the_new(app, client):
    old = [_deposit("u1"), _deposit("u2")]
    post_events(client, old)
    new = [_deposit("u3")]
    response = post_events(client, [old[1], new[0], old[0]])
    assert _conforms(response) == {"accepted": 1, "duplicates": 2, "rejected": []}
    assert sorted(e.event_id for e in _stored(app)) == sorted(e["id"] for e in old + new)


def test_a_single_bare_event_sent_twice_is_a_duplicate_the_second_time(app, client):
    one = _deposit("u1")
    assert _conforms(post_events(client, one))["accepted"] == 1
    assert _conforms(post_events(client, one)) == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_an_id_that_was_rejected_before_is_accepted_once_it_is_valid(app, client):
    bad = _deposit("u1", amount="-1", event_id="evt_retry")
    assert _conforms(post_events(client, [bad]))["rejected"][0]["id"] == "evt_retry"
    fixed = _deposit("u1", event_id="evt_retry")
    assert _conforms(post_events(client, [fixed])) == {"accepted": 1, "duplicates": 0, "rejected": []}


def _replay_concurrently(app: Flask, events: list[dict[str, Any]], requests: int) -> list[dict[str, Any]]:
    """Send one signed batch from many threads at once, each with its own client; return the answers."""
    body = orjson.dumps({"events": events})
    headers = signed_headers(body)
    barrier = threading.Barrier(requests)
    results: list[Any] = [None] * requests

    def replay(slot: int) -> None:
        client = app.test_client()
        barrier.wait(timeout=30)
        response = client.post(URL, data=body, headers=headers)
        results[slot] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None and r[0] == 200 for r in results), results
    return [r[1] for r in results]


@pytest.mark.postgres_only
def test_twenty_concurrent_replays_of_one_batch_store_each_event_once(app):
    events = _batch(200, prefix="evt_conc")
    answers = _replay_concurrently(app, events, 20)
    assert sum(a["accepted"] for a in answers) == 200
    assert all(a["accepted"] + a["duplicates"] == 200 and a["rejected"] == [] for a in answers)
    stored = _stored(app)
    assert len(stored) == 200
    assert sorted(e.event_id for e in stored) == sorted(e["id"] for e in events)


@pytest.mark.sqlite_only
def test_concurrent_replays_on_the_embedded_sqlite_store_each_event_once(app):
    events = _batch(200, prefix="evt_conc")
    answers = _replay_concurrently(app, events, 8)
    assert sum(a["accepted"] for a in answers) == 200
    assert sum(a["duplicates"] for a in answers) == 200 * 7
    assert sorted(e.event_id for e in _stored(app)) == sorted(e["id"] for e in events)


# --- per-event rejection -----------------------------------------------------------------------


def test_bad_events_are_rejected_alone_and_the_others_of_the_batch_are_stored(app, client):
    good1, good2 = _deposit("u1", event_id="evt_good1"), _deposit("u2", event_id="evt_good2")
    unknown = event("user.teleported", "u3", _ago(hours=1), {}, event_id="evt_unknown")
    missing = event("funds.deposited", "u4", _ago(hours=1), {"deposit_id": "d4"}, event_id="evt_missing")
    bad_amount = _deposit("u5", amount="10.001", event_id="evt_amount")
    future = event("user.kyc_verified", "u6", datetime.now(UTC) + timedelta(minutes=10), event_id="evt_future")
    no_user_id = event("user.card_bound", "u7", _ago(hours=1), event_id="evt_no_user")
    del no_user_id["user"]["id"]
    response = post_events(client, [good1, unknown, missing, bad_amount, future, no_user_id, good2])
    assert response.status_code == 200
    body = _conforms(response)
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert body["rejected"] == [
        {"index": 1, "id": "evt_unknown", "errors": ["type: unknown event type 'user.teleported'"]},
        {"index": 2, "id": "evt_missing", "errors": ["data.amount: required"]},
        {"index": 3, "id": "evt_amount", "errors": ["data.amount: at most 2 decimal places"]},
        {"index": 4, "id": "evt_future", "errors": ["occurred_at: more than 5 minutes in the future"]},
        {"index": 5, "id": "evt_no_user", "errors": ["user.id: required"]},
    ]
    assert [e.event_id for e in _stored(app)] == ["evt_good1", "evt_good2"]


@pytest.mark.parametrize("amount", ["0", "-5.00", "1e3", "1,000.00", 100, "", None, " 10.00"])
def test_a_bad_amount_rejects_the_event_with_its_field_path(app, client, amount):
    response = post_events(client, [_deposit("u1", amount=amount, event_id="evt_bad"), _deposit("u2")])
    body = _conforms(response)
    assert body["accepted"] == 1
    (rejection,) = body["rejected"]
    assert rejection["index"] == 0 and rejection["id"] == "evt_bad"
    assert rejection["errors"] and all(e.startswith("data.amount: ") for e in rejection["errors"])


@pytest.mark.parametrize("occurred_at", ["2026-11-30 10:15:00", "2026-11-30T10:15:00", "yesterday", 1700000000])
def test_a_bad_timestamp_rejects_the_event_only(app, client, occurred_at):
    bad = _deposit("u1", event_id="evt_when")
    bad["occurred_at"] = occurred_at
    body = _conforms(post_events(client, [bad, _deposit("u2")]))
    assert body["accepted"] == 1
    assert [r["id"] for r in body["rejected"]] == ["evt_when"]
    assert body["rejected"][0]["errors"][0].startswith("occurred_at: ")


def test_a_past_timestamp_of_any_age_is_accepted_for_backfill(app, client):
    old = event("user.registered", "u1", "2009-01-03T18:15:05Z")
    assert _conforms(post_events(client, [old]))["accepted"] == 1


def test_a_timestamp_four_minutes_ahead_is_tolerated(app, client):
    soon = event("user.kyc_verified", "u1", datetime.now(UTC) + timedelta(minutes=4))
    assert _conforms(post_events(client, [soon]))["accepted"] == 1


def test_a_rejected_event_without_an_id_is_reported_with_a_null_id(app, client):
    nameless = _deposit("u1")
    del nameless["id"]
    body = _conforms(post_events(client, [nameless, "not an object", 42]))
    assert body["rejected"] == [
        {"index": 0, "id": None, "errors": ["id: required"]},
        {"index": 1, "id": None, "errors": ["event: must be an object"]},
        {"index": 2, "id": None, "errors": ["event: must be an object"]},
    ]


def test_an_id_with_a_nul_character_is_rejected_not_a_server_error(app, client):
    # PostgreSQL text cannot hold NUL: stored, it would fail the whole batch with a 500.
    bad = _deposit("u1", event_id="evt\x00nul")
    bad_user = _deposit("u\x00", event_id="evt_nul_user")
    body = _conforms(post_events(client, [bad, bad_user, _deposit("u2")]))
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert _stored_count(app) == 1


# --- 400: not JSON, or neither an event nor an envelope ------------------------------------------


@pytest.mark.parametrize("body", [b"", b"not json", b'{"events": [', b"{'id': 'x'}", b'{"a": NaN}',
                                  "{\"id\": \"é\"}".encode("latin-1"), b"\xef\xbb\xbf{}"])
def test_a_signed_body_that_is_not_json_is_answered_400(app, client, body):
    response = _send(client, body, _hmac_headers(body))
    _refused(response, 400)
    assert _stored_count(app) == 0


@pytest.mark.parametrize("doc", [[], [{"id": "e1"}], "event", 42, None, True, {"events": {}},
                                 {"events": "e1"}, {"events": None}])
def test_a_json_body_that_is_neither_an_event_nor_an_envelope_is_answered_400(app, client, doc):
    body = orjson.dumps(doc)
    response = _send(client, body, signed_headers(body))
    _refused(response, 400)
    assert _stored_count(app) == 0


# --- 401: signature and timestamp ----------------------------------------------------------------


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_answered_401_and_nothing_is_stored(app, client, header):
    body = orjson.dumps({"events": [_deposit()]})
    headers = signed_headers(body)
    del headers[header]
    _refused(_send(client, body, headers), 401)
    assert _stored_count(app) == 0


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_an_empty_signature_header_is_answered_401(app, client, header):
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, signed_headers(body) | {header: ""}), 401)
    assert _stored_count(app) == 0


def test_an_unsigned_request_is_answered_401(app, client):
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, {"Content-Type": "application/json"}), 401)
    assert _stored_count(app) == 0


def test_a_signature_made_with_another_secret_is_answered_401(app, client):
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, signed_headers(body, OTHER_SECRET)), 401)
    assert _stored_count(app) == 0


def test_a_body_changed_after_signing_is_answered_401(app, client):
    body = orjson.dumps({"events": [_deposit(amount="1.00")]})
    headers = signed_headers(body)
    tampered = body.replace(b'"1.00"', b'"9999.00"')
    _refused(_send(client, tampered, headers), 401)
    assert _stored_count(app) == 0


def test_a_signature_for_another_message_id_or_timestamp_is_answered_401(app, client):
    body = orjson.dumps({"events": [_deposit()]})
    headers = signed_headers(body, msg_id="msg_1")
    _refused(_send(client, body, headers | {"webhook-id": "msg_2"}), 401)
    ts = int(headers["webhook-timestamp"])
    _refused(_send(client, body, headers | {"webhook-id": "msg_1", "webhook-timestamp": str(ts - 1)}), 401)
    assert _stored_count(app) == 0


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6), timedelta(days=-1),
                                    timedelta(days=365)])
def test_a_timestamp_more_than_five_minutes_from_the_server_clock_is_answered_401(app, client, offset):
    body = orjson.dumps({"events": [_deposit()]})
    headers = signed_headers(body, timestamp=datetime.now(UTC) + offset)  # correctly signed, but stale
    _refused(_send(client, body, headers), 401)
    assert _stored_count(app) == 0


@pytest.mark.parametrize("offset", [timedelta(minutes=-4), timedelta(minutes=4)])
def test_a_timestamp_within_five_minutes_of_the_server_clock_is_accepted(app, client, offset):
    body = orjson.dumps({"events": [_deposit()]})
    response = _send(client, body, signed_headers(body, timestamp=datetime.now(UTC) + offset))
    assert response.status_code == 200
    assert _conforms(response)["accepted"] == 1


@pytest.mark.parametrize("timestamp", ["soon", "1.7e9", "-1", "", " ", "١٧٠٠٠٠٠٠٠٠"])
def test_a_timestamp_that_is_not_unix_seconds_is_answered_401(app, client, timestamp):
    body = orjson.dumps({"events": [_deposit()]})
    headers = signed_headers(body) | {"webhook-timestamp": timestamp}
    _refused(_send(client, body, headers), 401)


@pytest.mark.parametrize("signature", ["v1,", "v1", "v1,not base64!", "v2,AAAA", ",", "v1,AAAA,BBBB", "    "])
def test_a_malformed_signature_is_answered_401_not_an_error(app, client, signature):
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, signed_headers(body) | {"webhook-signature": signature}), 401)
    assert _stored_count(app) == 0


def test_a_signature_over_the_raw_bytes_verifies_as_the_spec_defines_it(app, client):
    body = b'{"events": [\n  ' + orjson.dumps(_deposit()) + b"\n]}"
    response = _send(client, body, _hmac_headers(body))
    assert response.status_code == 200
    assert _conforms(response)["accepted"] == 1


def test_a_non_utf8_body_that_is_signed_is_answered_400_not_401(app, client):
    body = b'{"id": "\xff"}'
    _refused(_send(client, body, _hmac_headers(body)), 400)


def test_no_configured_secret_refuses_every_request(app, client):
    app.config["WEBHOOK_SECRET"] = ""
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, signed_headers(body)), 401)
    assert _stored_count(app) == 0


class TestSecretRotation:
    """GROWTH_WEBHOOK_SECRET holds the old and the new secret, space-separated, while the platform switches."""

    @pytest.fixture
    def app_config(self) -> dict[str, str]:
        return {"WEBHOOK_SECRET": f"{SECRET} {NEXT_SECRET}"}

    @pytest.mark.parametrize("secret", [SECRET, NEXT_SECRET])
    def test_a_request_signed_by_either_secret_verifies(self, app, client, secret):
        response = post_events(client, [_deposit()], secret=secret)
        assert response.status_code == 200
        assert _conforms(response)["accepted"] == 1

    def test_a_request_signed_by_neither_secret_is_answered_401(self, app, client):
        _refused(post_events(client, [_deposit()], secret=OTHER_SECRET), 401)
        assert _stored_count(app) == 0

    def test_a_signature_list_with_a_bad_entry_before_the_good_one_verifies(self, app, client):
        body = orjson.dumps({"events": [_deposit()]})
        headers = signed_headers(body, NEXT_SECRET)
        good = headers["webhook-signature"]
        response = _send(client, body, headers | {"webhook-signature": f"v1,bad {good}"})
        assert response.status_code == 200
        assert _conforms(response)["accepted"] == 1

    @pytest.mark.parametrize("shape", ["{other} {good}", "{good} {other}", "v2,AAAA {good}", "v1a {good}",
                                       "{good}  v1,AAAA", "{other} v1,bad {good}"])
    def test_one_good_signature_anywhere_in_the_list_verifies(self, app, client, shape):
        body = orjson.dumps({"events": [_deposit()]})
        headers = signed_headers(body, SECRET, msg_id="msg_list")
        good = headers["webhook-signature"]
        other = signed_headers(body, OTHER_SECRET, msg_id="msg_list",
                               timestamp=datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC))
        signature = shape.format(good=good, other=other["webhook-signature"])
        response = _send(client, body, headers | {"webhook-signature": signature})
        assert response.status_code == 200, signature
        assert _conforms(response)["accepted"] == 1

    def test_a_list_of_only_bad_signatures_is_answered_401(self, app, client):
        body = orjson.dumps({"events": [_deposit()]})
        other = signed_headers(body, OTHER_SECRET)
        headers = other | {"webhook-signature": f"v1,bad {other['webhook-signature']} v1,AAAA"}
        _refused(_send(client, body, headers), 401)
        assert _stored_count(app) == 0


def test_a_request_signed_by_the_official_library_verifies(app, client):
    body = orjson.dumps({"events": [_deposit()]})
    msg_id, now = "msg_official", datetime.now(UTC)
    signature = Webhook(SECRET).sign(msg_id, now, body.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature, "Content-Type": "application/json"}
    Webhook(SECRET).verify(body, headers)  # the library agrees with itself ...
    response = _send(client, body, headers)  # ... and with us
    assert response.status_code == 200
    assert _conforms(response)["accepted"] == 1


# --- 413: too many events, too many bytes --------------------------------------------------------


def test_5001_events_are_answered_413_and_nothing_is_stored(app, client):
    response = post_events(client, _batch(MAX_EVENTS + 1))
    _refused(response, 413)
    assert _stored_count(app) == 0


def test_a_body_over_5_mib_is_answered_413_and_nothing_is_stored(app, client):
    one = _deposit("u1")
    one["padding"] = "x" * MAX_BODY_BYTES
    body = orjson.dumps(one)
    _refused(_send(client, body, signed_headers(body)), 413)
    assert _stored_count(app) == 0


def test_a_body_one_byte_over_5_mib_is_answered_413(app, client):
    one = _deposit("u1")
    one["padding"] = ""
    one["padding"] = "x" * (MAX_BODY_BYTES + 1 - len(orjson.dumps(one)))
    body = orjson.dumps(one)
    assert len(body) == MAX_BODY_BYTES + 1
    _refused(_send(client, body, signed_headers(body)), 413)
    assert _stored_count(app) == 0


def test_a_streamed_body_over_5_mib_without_a_length_is_answered_413(app, client):
    import io

    one = _deposit("u1")
    one["padding"] = "x" * MAX_BODY_BYTES
    body = orjson.dumps(one)
    response = client.post(URL, input_stream=io.BytesIO(body), headers=signed_headers(body),
                           environ_overrides={"wsgi.input_terminated": True})
    _refused(response, 413)
    assert _stored_count(app) == 0


# --- 415: not application/json -------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "text/json",
                                          "application/jsonp", "application/vnd.api+json", "multipart/form-data"])
def test_a_body_that_is_not_declared_application_json_is_answered_415(app, client, content_type):
    body = orjson.dumps({"events": [_deposit()]})
    _refused(_send(client, body, signed_headers(body) | {"Content-Type": content_type}), 415)
    assert _stored_count(app) == 0


def test_a_body_without_a_content_type_is_answered_415(app, client):
    body = orjson.dumps({"events": [_deposit()]})
    headers = signed_headers(body)
    del headers["Content-Type"]
    response = client.post(URL, data=body, headers=headers)
    assert "Content-Type" not in response.request.headers
    _refused(response, 415)
    assert _stored_count(app) == 0


# --- the OpenAPI description and its pages ------------------------------------------------------


def test_the_openapi_description_is_served_publicly_and_is_valid_openapi_3_1(app, client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = orjson.loads(response.get_data())
    assert doc == openapi_of(app)
    assert OPENAPI["paths"].items() <= doc["paths"].items()  # the kernel's own, beside the registered parts
    assert doc["openapi"].startswith("3.1.")
    assert list(OPENAPI_31_VALIDATOR.iter_errors(doc)) == []
    for name, schema in doc["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name


def test_the_swagger_rendition_is_valid_openapi_3_0_without_3_1_keywords(app, client):
    response = client.get("/api/docs/openapi-3.0.json")
    assert response.status_code == 200
    doc = orjson.loads(response.get_data())
    assert doc == openapi_of(app, "3.0")
    assert doc["openapi"] == "3.0.3"
    assert [e.message for e in OPENAPI_30_VALIDATOR.iter_errors(doc)] == []
    text = response.get_data(as_text=True)
    assert '"const"' not in text and '"null"' not in text
    assert doc["paths"].keys() == openapi_of(app)["paths"].keys()
    assert "prefixItems" not in text and "patternProperties" not in text


def test_the_events_operation_documents_every_status_of_the_spec_with_an_error_body():
    op = OPENAPI["paths"]["/api/v1/events"]["post"]
    assert set(op["responses"]) == {"200", "400", "401", "413", "415"}
    for status in ("400", "401", "413", "415"):
        assert op["responses"][status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    assert {(p["name"], p["in"], p["required"]) for p in op["parameters"]} == {
        ("webhook-id", "header", True), ("webhook-timestamp", "header", True), ("webhook-signature", "header", True)}
    body = op["requestBody"]
    assert body["required"] is True and list(body["content"]) == ["application/json"]
    assert op["security"] == []


def test_the_request_schema_has_one_variant_per_event_type_and_an_envelope():
    schemas = OPENAPI["components"]["schemas"]
    variants = [schemas[ref["$ref"].rsplit("/", 1)[1]] for ref in schemas["Event"]["oneOf"]]
    from growth.events.rules import EVENT_TYPES

    assert {v["properties"]["type"]["const"] for v in variants} == set(EVENT_TYPES)
    assert set(schemas["Event"]["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert schemas["EventBatch"]["properties"]["events"]["maxItems"] == MAX_EVENTS
    assert all({"id", "type", "occurred_at", "user"} <= set(v["required"]) for v in variants)


def _request_validator() -> jsonschema_rs.Validator:
    media = OPENAPI["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    return jsonschema_rs.validator_for({**media["schema"], "components": OPENAPI["components"]})


def test_the_request_schema_accepts_the_events_the_server_accepts_and_refuses_bad_ones():
    validator = _request_validator()
    at = _ago(hours=1)
    good = [
        event("user.registered", "u1", at, {"channel_code": "c", "click_id": None}),
        event("user.registered", "u1", at),
        event("user.kyc_verified", "u1", at, None),
        event("user.card_bound", "u1", at, {"ignored": 1}),
        _deposit(),
        investment("u1", at, "inv1"),
        event("investment.redeemed", "u1", at, {"investment_id": "i", "amount": "0.01"}),
        event("investment.matured", "u1", at, {"investment_id": "i", "amount": "1.5", "interest": "0"}),
        event("funds.withdrawn", "u1", at, {"withdrawal_id": "w", "amount": "20"}),
        event("user.consent_changed", "u1", at, {"channel": "wechat", "granted": False}),
    ]
    for one in good:
        assert validator.is_valid(one), one
    assert validator.is_valid({"events": good})
    bad = [_deposit(amount="0.00"), _deposit(amount="1.234"), event("user.nope", "u1", at, {}),
           event("funds.deposited", "u1", at, {"deposit_id": "d"}),
           event("user.consent_changed", "u1", at, {"channel": "fax", "granted": True}), [], {"events": {}}]
    for one in bad:
        assert not validator.is_valid(one), one


def test_the_funnel_operation_documents_bearer_auth_its_parameters_and_errors():
    op = OPENAPI["paths"]["/api/v1/funnel"]["get"]
    assert op["security"] == [{"bearerAuth": []}]
    assert OPENAPI["components"]["securitySchemes"]["bearerAuth"] == {
        **OPENAPI["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert {p["name"] for p in op["parameters"]} == {"start", "end", "window_days", "group_by"}
    assert set(op["responses"]) == {"200", "400", "401", "403"}


def _bearer(app: Flask, role: str) -> dict[str, str]:
    with get_db(app).session_scope(write=True) as s:
        return {"Authorization": f"Bearer {make_token(s, role=role)}"}


@pytest.mark.parametrize("group_by", ["none", "channel", "week"])
def test_the_funnel_answers_as_documented(app, client, group_by):
    at = _ago(days=3)
    post_events(client, [event("user.registered", "u1", at, {"channel_code": "baidu_sem"}),
                         event("user.kyc_verified", "u1", at + timedelta(hours=1))])
    from growth.events.processor import drain

    drain(app)
    day = at.astimezone(SHANGHAI).date().isoformat()  # the funnel's days are business days (16:00 UTC is midnight)
    response = client.get(f"/api/v1/funnel?start={day}&end={day}&window_days=30&group_by={group_by}",
                          headers=_bearer(app, "analyst"))
    assert response.status_code == 200
    body = _conforms(response, "/api/v1/funnel", "get")
    assert body["window_days"] == 30
    assert body["total"]["counts"][:2] == [1, 1]


@pytest.mark.parametrize("query", ["start=2026-13-01", "start=2026-02-01&end=2026-01-01", "window_days=0",
                                   "window_days=abc", "group_by=month"])
def test_a_bad_funnel_query_is_answered_400_as_documented(app, client, query):
    response = client.get(f"/api/v1/funnel?{query}", headers=_bearer(app, "analyst"))
    assert response.status_code == 400
    _conforms(response, "/api/v1/funnel", "get")


def test_the_funnel_without_a_token_is_answered_401_and_for_a_role_without_funnels_403(app, client):
    anonymous = client.get("/api/v1/funnel")
    assert anonymous.status_code == 401
    _conforms(anonymous, "/api/v1/funnel", "get")
    bad_token = client.get("/api/v1/funnel", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    agent = client.get("/api/v1/funnel", headers=_bearer(app, "agent"))
    assert agent.status_code == 403
    _conforms(agent, "/api/v1/funnel", "get")


def test_the_docs_page_is_public_and_loads_only_local_assets_and_no_inline_script(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # What the page loads: scripts, stylesheets and icons (links and menus are not assets).
    sources = re.findall(r'<script[^>]*\bsrc="([^"]+)"', html) + re.findall(r'<link[^>]*\bhref="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []  # every script is a file
    assert [s for s in sources if re.fullmatch(r"/static/swagger-init\.[0-9a-f]{12}\.js", s)]  # content-hashed
    for src in sources:
        asset = client.get(src)
        assert asset.status_code == 200, src
    init = client.get("/static/swagger-init.js").get_data(as_text=True)
    assert "SwaggerUIBundle" in init and "data-spec-url" in init
    spec_url = re.search(r'data-spec-url="([^"]+)"', html).group(1)
    assert client.get(spec_url).status_code == 200


def test_the_docs_page_sits_in_the_apps_layout_with_its_navigation(client, login):
    login("marketer")
    html = client.get("/api/docs").get_data(as_text=True)
    assert 'id="mainnav"' in html and 'class="navbar-brand"' in html
    assert re.search(r'<a class="nav-link active" href="/api/docs">', html)  # the menu shows where one is
    assert 'id="swagger-ui"' in html


def test_only_the_swagger_files_the_page_needs_are_served(client):
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/docs/assets/index.html").status_code == 404
    assert client.get("/api/docs/assets/../../growth/config.py").status_code == 404
