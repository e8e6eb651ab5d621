"""The §7 API through the client: pushing costs (saved, replaced, refused by index, audited), the economics
answer's validation and permissions, and both described in the served OpenAPI document (checked on real answers)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import jsonschema_rs
import orjson
import pytest
from sqlalchemy import select

from growth.acquisition.models import AcquisitionChannel, ChannelCost
from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.timeutil import local_date
from tests.factories import make_token

COSTS = "/api/v1/acquisition/costs"
ECONOMICS = "/api/v1/acquisition/economics"
ROLES = ("admin", "marketer", "approver", "agent", "analyst")


@pytest.fixture
def tokens(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        for code, name in (("baidu_sem", "百度SEM"), ("wdzj", "网贷之家"), ("organic", "自然流量"),
                           ("referral", "邀请好友")):
            s.add(AcquisitionChannel(code=code, name=name, kind="sem"))
        return {role: make_token(s, role=role) for role in ROLES}


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _push(client, token: str | None, body: Any):  # type: ignore[no-untyped-def]
    return client.post(COSTS, json=body, headers=_auth(token))


def _stored(app) -> dict[tuple[str, date], tuple[int, str]]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        rows = s.execute(select(AcquisitionChannel.code, ChannelCost.day, ChannelCost.amount_fen, ChannelCost.note)
                         .join(AcquisitionChannel, AcquisitionChannel.id == ChannelCost.channel_id)).all()
    return {(code, day): (fen, note) for code, day, fen, note in rows}


def test_pushed_costs_are_stored_and_a_second_one_for_the_same_day_replaces_the_first(app, client, tokens):
    body = {"costs": [{"date": "2026-12-01", "channel_code": "baidu_sem", "amount": "6872.52", "note": "导出"},
                      {"date": "2026-12-01", "channel_code": "wdzj", "amount": "0"},
                      {"date": "2026-12-02", "channel_code": "BAIDU_SEM", "amount": "10.5"}]}
    response = _push(client, tokens["marketer"], body)
    assert response.status_code == 200
    assert response.json == {"saved": 3, "rejected": []}
    assert _stored(app) == {("baidu_sem", date(2026, 12, 1)): (687252, "导出"), ("wdzj", date(2026, 12, 1)): (0, ""),
                            ("baidu_sem", date(2026, 12, 2)): (1050, "")}
    again = _push(client, tokens["admin"], {"costs": [
        {"date": "2026-12-01", "channel_code": "baidu_sem", "amount": "7000.00"},
        {"date": "2026-12-01", "channel_code": "wdzj", "amount": "1.00"},
        {"date": "2026-12-01", "channel_code": "wdzj", "amount": "2.00", "note": "更正"}]})  # the last one wins
    assert again.json == {"saved": 3, "rejected": []}
    stored = _stored(app)
    assert stored[("baidu_sem", date(2026, 12, 1))] == (700000, "")
    assert stored[("wdzj", date(2026, 12, 1))] == (200, "更正")
    assert len(stored) == 3


def test_unknown_and_pseudo_channels_and_bad_values_are_rejected_by_index_and_the_rest_saved(app, client, tokens):
    tomorrow = (local_date(datetime.now(UTC)) + timedelta(days=1)).isoformat()
    body = {"costs": [
        {"date": "2026-12-01", "channel_code": "no_such", "amount": "1.00"},
        {"date": "2026-12-01", "channel_code": "organic", "amount": "1.00"},
        {"date": "2026-12-01", "channel_code": "referral", "amount": "1.00"},
        {"date": "2026-12-01", "channel_code": "wdzj", "amount": "1.00"},
        {"date": "2026/12/01", "channel_code": "wdzj", "amount": 1.5},
        {"date": "2026-02-30", "channel_code": "", "amount": "-1.00", "note": "x" * 201},
        {"date": tomorrow, "channel_code": "wdzj", "amount": "1.001"},
        "not an object",
    ]}
    response = _push(client, tokens["marketer"], body)
    assert response.status_code == 200
    answer = response.json
    assert answer["saved"] == 1
    codes = {r["index"]: [(e["path"], e["code"]) for e in r["errors"]] for r in answer["rejected"]}
    assert codes == {
        0: [("channel_code", "unknown_channel")],
        1: [("channel_code", "pseudo_channel")],
        2: [("channel_code", "pseudo_channel")],
        4: [("date", "invalid_date"), ("amount", "invalid_amount")],
        5: [("date", "invalid_date"), ("channel_code", "required"), ("amount", "invalid_amount"),
            ("note", "too_long")],
        6: [("amount", "invalid_amount")],
        7: [("", "invalid_type")],
    }
    assert all(e["message"] for r in answer["rejected"] for e in r["errors"])
    assert list(_stored(app)) == [("wdzj", date(2026, 12, 1))]
    future = _push(client, tokens["marketer"], {"costs": [{"date": tomorrow, "channel_code": "wdzj", "amount": "1"}]})
    assert future.json["rejected"] == [{"index": 0, "errors": [
        {"path": "date", "code": "future_date", "message": future.json["rejected"][0]["errors"][0]["message"]}]}]


def test_a_changed_cost_is_audited_like_the_page_entry_and_an_unchanged_one_is_not(app, client, tokens):
    cost = {"date": "2026-12-01", "channel_code": "wdzj", "amount": "12.34"}
    _push(client, tokens["marketer"], {"costs": [cost]})
    _push(client, tokens["marketer"], {"costs": [cost]})  # the same again: saved, nothing changed
    _push(client, tokens["marketer"], {"costs": [{**cost, "amount": "20.00"}]})
    with get_db(app).session_scope() as s:
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "cost.set").order_by(AuditEntry.id)).all()
    assert [(e.details["amount_fen"], e.details["previous_fen"], e.details["via"]) for e in entries] == [
        (1234, None, "api"), (2000, 1234, "api")]
    assert all(e.actor.startswith("marketer") for e in entries)


def test_the_costs_api_refuses_a_malformed_body_too_many_costs_and_roles_without_the_permission(client, tokens):
    for body in (None, [], {"costs": "x"}, {"cost": []}):
        response = client.post(COSTS, data=orjson.dumps(body), content_type="application/json",
                               headers=_auth(tokens["admin"]))
        assert response.status_code == 400, body
        assert response.json["errors"][0]["code"] == "malformed"
    many = {"costs": [{"date": "2026-12-01", "channel_code": "wdzj", "amount": "1"}] * 1001}
    response = _push(client, tokens["admin"], many)
    assert response.status_code == 422 and response.json["errors"][0]["code"] == "too_many"
    assert _push(client, None, {"costs": []}).status_code == 401
    for role in ("approver", "agent", "analyst"):
        assert _push(client, tokens[role], {"costs": []}).status_code == 403, role
    for role in ("admin", "marketer"):
        assert _push(client, tokens[role], {"costs": []}).json == {"saved": 0, "rejected": []}


def test_the_economics_api_validates_its_parameters_and_answers_only_roles_that_may_view_funnels(client, tokens):
    response = client.get(ECONOMICS, query_string={"start": "2026-13-01", "end": "20261201", "window_days": "0"},
                          headers=_auth(tokens["analyst"]))
    assert response.status_code == 422
    assert [(e["path"], e["code"]) for e in response.json["errors"]] == [
        ("start", "invalid_date"), ("end", "invalid_date"), ("window_days", "invalid_value")]
    later = client.get(ECONOMICS, query_string={"start": "2026-12-02", "end": "2026-12-01"},
                       headers=_auth(tokens["analyst"]))
    assert later.status_code == 422 and later.json["errors"][0]["code"] == "start_after_end"
    for bad in ({"start": "1999-12-31"}, {"window_days": "3651"}, {"window_days": "3e1"}, {"end": "2026-W48-1"}):
        assert client.get(ECONOMICS, query_string=bad, headers=_auth(tokens["analyst"])).status_code == 422, bad
    assert client.get(ECONOMICS).status_code == 401
    for role in ROLES:  # §7: "(staff)", every role
        answer = client.get(ECONOMICS, headers=_auth(tokens[role]))
        assert answer.status_code == 200, role
        assert answer.json["window_days"] == 30 and answer.json["channels"] == []
        assert answer.json["total"]["code"] == "total" and answer.json["total"]["cac"] is None


def test_a_day_of_costs_alone_gives_a_row_with_null_unit_costs(client, tokens):
    _push(client, tokens["marketer"], {"costs": [{"date": "2026-11-30", "channel_code": "wdzj", "amount": "100.00"}]})
    answer = client.get(ECONOMICS, query_string={"start": "2026-11-30", "end": "2026-11-30"},
                        headers=_auth(tokens["analyst"])).json
    assert answer["channels"] == [{
        "code": "wdzj", "label": "网贷之家", "cost": "100.00", "clicks": 0, "registrations": 0, "first_investors": 0,
        "first_investment_amount": "0.00", "annualised_amount": "0.00", "incentive_cost": "0.00", "cac": None,
        "cost_per_registration": None, "annualised_per_yuan": "0.0000", "net_roi": "-1.0000",
        "registrations_window_open": 0, "payback_days": None}]  # no service-fee rate configured
    assert answer["total"] == {**answer["channels"][0], "code": "total", "label": "合计"}


def _served(client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return orjson.loads(client.get("/api/v1/openapi.json").get_data())


def test_both_operations_are_described_and_their_real_answers_match_the_description(client, tokens):
    doc = _served(client)
    checked = set()

    def check(path: str, method: str, response: Any) -> None:
        described = doc["paths"][path][method]["responses"][str(response.status_code)]
        schema = {**described["content"]["application/json"]["schema"], "components": doc["components"]}
        errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(response.json)]
        assert errors == [], (path, response.status_code)
        checked.add((path, response.status_code))

    costs_op, economics_op = doc["paths"][COSTS]["post"], doc["paths"][ECONOMICS]["get"]
    assert costs_op["security"] == economics_op["security"] == [{"bearerAuth": []}]
    example = costs_op["requestBody"]["content"]["application/json"]["example"]
    request_schema = {**costs_op["requestBody"]["content"]["application/json"]["schema"],
                      "components": doc["components"]}
    assert jsonschema_rs.validator_for(request_schema).is_valid(example)
    check(COSTS, "post", _push(client, tokens["marketer"], example))
    check(COSTS, "post", _push(client, tokens["marketer"], {"costs": [{"channel_code": "organic"}]}))
    check(COSTS, "post", client.post(COSTS, data="x", content_type="text/plain", headers=_auth(tokens["admin"])))
    check(COSTS, "post", _push(client, None, {"costs": []}))
    check(COSTS, "post", _push(client, tokens["agent"], {"costs": []}))
    check(COSTS, "post", _push(client, tokens["admin"], {"costs": [example["costs"][0]] * 1001}))
    check(ECONOMICS, "get", client.get(ECONOMICS, query_string={"start": "2026-12-01", "end": "2026-12-01"},
                                       headers=_auth(tokens["analyst"])))
    check(ECONOMICS, "get", client.get(ECONOMICS, query_string={"window_days": "x"}, headers=_auth(tokens["analyst"])))
    check(ECONOMICS, "get", client.get(ECONOMICS))
    check(ECONOMICS, "get", client.get(ECONOMICS, headers=_auth(tokens["agent"])))
    check(ECONOMICS, "get", client.get(ECONOMICS, headers={"Authorization": "Bearer not-a-token"}))
    assert {s for _p, s in checked} == {200, 400, 401, 403, 422}
    older = orjson.loads(client.get("/api/docs/openapi-3.0.json").get_data())
    assert {COSTS, ECONOMICS} <= older["paths"].keys()


def test_the_cost_sheet_import_and_the_channel_page_refuse_the_pseudo_channels_too(app, tokens):
    from growth.acquisition import services

    with get_db(app).session_scope(write=True) as s:
        result = services.import_costs("date,channel_code,amount\n2026-12-01,organic,1.00\n2026-12-01,wdzj,2.00\n"
                                       "2026-12-01,referral,3.00\n", session=s, now=datetime.now(UTC), by="test")
        assert result.stored == 1
        assert [(e.row, e.field) for e in result.errors] == [(2, "channel_code"), (4, "channel_code")]
        organic = services.find_channel("organic", session=s)
        assert organic is not None
        with pytest.raises(services.DomainError):
            services.set_cost(organic, day=date(2026, 12, 1), amount_fen=100, session=s, now=datetime.now(UTC))
    assert list(_stored(app)) == [("wdzj", date(2026, 12, 1))]
