"""Fuzzing the events API: whatever arrives, the answer is a documented status and never a server error.

Schemathesis generates requests from the OpenAPI description (valid and invalid ones); Hypothesis adds raw
bytes, arbitrary JSON and arbitrary headers, signed and unsigned. SQLite only, to keep the run short.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import orjson
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from growth.config import TestConfig
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.events.openapi import (
    EMAIL_PATTERN,
    IDENTIFIER_PATTERN,
    MONEY_OR_ZERO_PATTERN,
    MONEY_PATTERN,
    PHONE_PATTERN,
    RATE_PATTERN,
    build_openapi,
)
from growth.events.rules import validate_event
from growth.investors.rules import normalize_phone
from growth.money import MoneyFormatError, parse_rate, parse_yuan
from tests.events import event, investment

pytestmark = pytest.mark.sqlite_only

URL = "/api/v1/events"
DOCUMENTED = {200, 400, 401, 413, 415}
OPENAPI = build_openapi()
SCHEMA = schemathesis.openapi.from_dict(build_openapi())
EVENTS_OPERATION = SCHEMA[URL]["POST"]
KEY = base64.b64decode(TestConfig.WEBHOOK_SECRET.removeprefix("whsec_"))
# Function-scoped fixtures (the app and its database) are shared by the examples of one test on purpose:
# the database fills up as a real one would.
# Bounded so the whole file runs in well under a minute; database=None keeps runs independent of each other.
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def _sign(body: bytes, msg_id: str = "msg_fuzz", ts: int | None = None) -> dict[str, str]:
    ts = int(datetime.now(UTC).timestamp()) if ts is None else ts
    digest = hmac.new(KEY, msg_id.encode() + f".{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}


def _stored(app: Flask) -> int:
    with get_db(app).session_scope() as s:
        return s.scalar(select(func.count()).select_from(PlatformEvent)) or 0


def _check(app: Flask, response: Any, stored_before: int) -> None:
    """Assert a documented status with its documented body, and that only a 200 stores anything."""
    assert response.status_code in DOCUMENTED, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = orjson.loads(response.get_data())
    op = OPENAPI["paths"][URL]["post"]["responses"][str(response.status_code)]
    schema = {**op["content"]["application/json"]["schema"], "components": OPENAPI["components"]}
    assert jsonschema_rs.validator_for(schema).is_valid(body), body
    stored = _stored(app)
    if response.status_code == 200:
        assert stored == stored_before + body["accepted"]
    else:
        assert stored == stored_before


# --- schemathesis, from the OpenAPI description --------------------------------------------------


@settings(FUZZ, max_examples=150)
@given(case=st.one_of(EVENTS_OPERATION.as_strategy(GenerationMode.POSITIVE),
                      EVENTS_OPERATION.as_strategy(GenerationMode.NEGATIVE)),
       sign=st.booleans())
def test_schemathesis_finds_no_server_error_and_every_answer_is_as_documented(app, case, sign):
    kwargs = case.as_transport_kwargs(base_url="http://localhost")
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if v is not None}
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
    else:
        body = kwargs.get("data") or b""
        body = body.encode() if isinstance(body, str) else body
    if sign:  # most generated requests must get past the signature to reach validation and storage
        headers.update(_sign(body))
    before = _stored(app)
    response = app.test_client().open(URL, method=kwargs["method"], data=body, headers=headers)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance])
    _check(app, response, before)


# --- hypothesis: bytes, JSON and headers the description does not foresee ----------------------

_json_scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                       max_size=60)


def _event_templates() -> list[dict[str, Any]]:
    at = datetime.now(UTC) - timedelta(hours=1)
    return [
        event("user.registered", "u1", at, {"channel_code": "baidu_sem", "referral_code": "ABCD1234"}),
        event("user.kyc_verified", "u1", at),
        event("funds.deposited", "u1", at, {"deposit_id": "d1", "amount": "100.00"}),
        investment("u1", at, "inv1"),
        event("investment.matured", "u1", at, {"investment_id": "inv1", "amount": "10.00", "interest": "0.10"}),
        event("user.consent_changed", "u1", at, {"channel": "sms", "granted": True}),
    ]


@st.composite
def near_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with some of its fields (top-level, user or data) replaced by arbitrary JSON."""
    one = json.loads(json.dumps(draw(st.sampled_from(_event_templates()))))
    one["id"] = draw(st.text(min_size=1, max_size=20) | st.sampled_from(["evt_a", "evt_b", "evt_c"]))
    for _ in range(draw(st.integers(0, 3))):
        targets = [t for t in (one, one.get("user"), one.get("data")) if isinstance(t, dict)]
        target = draw(st.sampled_from(targets))
        key = draw(st.sampled_from([*target.keys(), "extra"]))
        target[key] = draw(json_values | st.text(max_size=20))
    return one


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_events().map(lambda e: json.dumps(e, ensure_ascii=False).encode()),
    st.lists(near_events() | json_values, max_size=8).map(lambda es: json.dumps({"events": es}).encode()),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                 "text/plain", "application/x-www-form-urlencoded", None]) | _header_text


@FUZZ
@given(body=bodies, content_type=content_types, signed=st.booleans(), skew=st.integers(-600, 600),
       msg_id=_header_text, headers=st.dictionaries(
           st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), _header_text, max_size=3))
def test_arbitrary_bodies_and_headers_get_a_documented_status_never_a_500(
        app, body, content_type, signed, skew, msg_id, headers):
    sent = dict(headers)
    if signed:
        sent.update(_sign(body, msg_id or "m", int(datetime.now(UTC).timestamp()) + skew))
    if content_type is not None:
        sent["Content-Type"] = content_type
    before = _stored(app)
    response = app.test_client().post(URL, data=body, headers=sent)
    _check(app, response, before)
    if signed and msg_id and abs(skew) < 290 and content_type is not None and \
            content_type.split(";")[0].strip().lower() == "application/json":
        assert response.status_code in (200, 400)  # a good signature always gets past the door


@FUZZ
@given(events=st.lists(near_events(), min_size=1, max_size=20))
def test_a_signed_batch_of_near_valid_events_is_judged_event_by_event(app, events):
    body = json.dumps({"events": events}).encode()
    before = _stored(app)
    response = app.test_client().post(URL, data=body, headers=_sign(body) | {"Content-Type": "application/json"})
    assert response.status_code == 200, response.get_data(as_text=True)
    _check(app, response, before)
    result = response.get_json()
    now = datetime.now(UTC)
    expected_rejected = [i for i, e in enumerate(events) if isinstance(validate_event(e, now), list)]
    assert [r["index"] for r in result["rejected"]] == expected_rejected
    assert result["accepted"] + result["duplicates"] == len(events) - len(expected_rejected)


# --- the description's patterns say exactly what the server accepts -----------------------------


def _accepts(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except MoneyFormatError:
        return False
    return True


def _decimalish(max_digits: int) -> st.SearchStrategy[str]:
    return st.from_regex(rf"\A[0-9]{{1,{max_digits}}}(\.[0-9]{{0,9}})?\Z") | st.text("0123456789.-+e ", max_size=12)


@settings(max_examples=400, deadline=None)
@given(text=_decimalish(17))
def test_the_money_pattern_accepts_exactly_the_amounts_the_server_accepts(text):
    assert (re.fullmatch(MONEY_PATTERN, text) is not None) == _accepts(parse_yuan, text)


@settings(max_examples=400, deadline=None)
@given(text=_decimalish(17))
def test_the_interest_pattern_accepts_exactly_zero_or_a_valid_amount(text):
    valid = _accepts(parse_yuan, text) or re.fullmatch(r"0(\.0{1,2})?", text) is not None
    assert (re.fullmatch(MONEY_OR_ZERO_PATTERN, text) is not None) == valid


@settings(max_examples=400, deadline=None)
@given(text=_decimalish(3) | st.from_regex(r"\A0\.[0-9]{1,10}\Z"))
def test_the_rate_pattern_accepts_exactly_the_rates_the_server_accepts(text):
    assert (re.fullmatch(RATE_PATTERN, text) is not None) == _accepts(parse_rate, text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=8) | st.sampled_from(["a@b", "@b", "a@", "a@@b", "a\x00@b", "ab", " @ "]))
def test_the_identifier_and_email_patterns_agree_with_the_validator(text):
    base = event("user.kyc_verified", "u1", datetime.now(UTC) - timedelta(hours=1))
    with_id = {**base, "id": text}
    id_ok = not isinstance(validate_event(with_id, datetime.now(UTC)), list)
    assert (re.search(IDENTIFIER_PATTERN, text) is not None) == id_ok
    with_email = {**base, "user": {"id": "u1", "email": text}}
    email_ok = not isinstance(validate_event(with_email, datetime.now(UTC)), list)
    assert (re.search(EMAIL_PATTERN, text) is not None) == email_ok


@settings(max_examples=200, deadline=None)
@given(phone=st.from_regex(PHONE_PATTERN))
def test_every_phone_the_pattern_describes_is_accepted_and_normalised_to_e164(phone):
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", normalize_phone(phone))
