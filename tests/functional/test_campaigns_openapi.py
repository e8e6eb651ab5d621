"""The campaigns API is in the served OpenAPI description: every route, its token auth, its errors, its answers.

The routes come from `app.url_map`, so a campaigns API route added later without a description fails here.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import orjson
import pytest
from flask import Flask

from campaigns.definition import CAMPAIGN_TYPES
from campaigns.presets import preset
from campaigns.services import ACTIONS
from growth.db import get_db
from growth.events.openapi import EVENTS_PATH, Contribution, build_openapi
from tests.factories import make_token

API_BLUEPRINT = "campaigns_api."
DOC: dict[str, Any] = {
    "name": "加息周",
    "type": "rate_boost",
    "schedule": {"at": "2026-12-10T10:00:00+08:00"},
    "audience": {"all": [{"field": "investment_count", "op": "gte", "value": 1},
                         {"field": "registered_at", "op": "between", "value": ["2026-01-01", "2026-11-30"]}]},
    "rewards": [{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7}],
    "budget": {"max_grants": 100, "max_amount": "5000.00"},
    "messages": [{"channel": "sms", "text": "{{ investor.name }}，加息券已到账。投资有风险，理财需谨慎。回T退订",
                  "template_code": "SMS_1", "params": {"name": "{{ investor.name }}"}}],
}


def _served(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return orjson.loads(response.get_data())


def _api_routes(app: Flask) -> list[tuple[str, str]]:
    """Return (OpenAPI path, method) of every campaigns API route."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(API_BLUEPRINT):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found += [(path, m.lower()) for m in sorted(rule.methods or ()) if m not in ("HEAD", "OPTIONS")]
    return found


def _schema_of(doc: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    schema = response["content"]["application/json"]["schema"]
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_campaigns_api_route_is_described_with_token_auth_and_its_error_answers(app, client):
    doc = _served(client)
    routes = _api_routes(app)
    assert len(routes) >= 13  # CRUD, six steps, preview, results, the kill switch
    for path, method in routes:
        op = doc["paths"][path][method]
        where = f"{method.upper()} {path}"
        assert op["security"] == [{"bearerAuth": []}], where
        responses = op["responses"]
        assert {"401", "403"} <= responses.keys(), where
        assert any(code.startswith("2") for code in responses), where
        if "{campaign_id}" in path:
            assert "404" in responses, where
            assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == ["campaign_id"], where
        if path.rsplit("/", 1)[1] in ACTIONS or method == "put":
            assert "409" in responses, where  # a life-cycle conflict
        if "requestBody" in op or path.endswith(("/submit", "/approve")):
            assert {"422"} <= responses.keys(), where
            invalid = _schema_of(doc, responses["422"])
            assert "errors" in invalid["required"], where
            assert set(invalid["properties"]["errors"]["items"]["required"]) == {"path", "code", "message"}
        for code in ("401", "403", "404", "409"):
            if code in responses:
                assert "error" in _schema_of(doc, responses[code])["required"], (where, code)
    campaigns_paths = {p for p in doc["paths"] if p.startswith(("/api/v1/campaigns", "/api/v1/kill-switch"))}
    assert campaigns_paths == {p for p, _m in routes}  # and nothing described that is not served
    assert {t["name"] for t in doc["tags"]} >= {"campaigns"}


def test_the_swagger_rendition_describes_the_same_campaigns_operations(client):
    doc = _served(client)
    older = orjson.loads(client.get("/api/docs/openapi-3.0.json").get_data())
    for path, item in doc["paths"].items():
        assert older["paths"][path].keys() == item.keys()
    assert older["components"]["schemas"].keys() == doc["components"]["schemas"].keys()


def test_the_described_definition_accepts_every_preset_and_refuses_what_the_api_refuses(client):
    doc = _served(client)
    definition = jsonschema_rs.validator_for({"$ref": "#/components/schemas/CampaignDefinition",
                                              "components": doc["components"]})
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    for type_ in CAMPAIGN_TYPES:
        document = preset(type_, now=now)
        assert [e.message for e in definition.iter_errors(document)] == [], type_
    assert definition.is_valid(DOC)
    example = doc["paths"]["/api/v1/campaigns"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert [e.message for e in definition.iter_errors(example)] == []
    for broken in ({**DOC, "colour": "red"},
                   {**DOC, "rewards": [{**DOC["rewards"][0], "annual_rate": "1%"}]},
                   {**DOC, "budget": {"max_amount": 5000}},
                   {**DOC, "audience": {"all": [{"field": "holdings", "op": "like", "value": "1.00"}]}},
                   {**DOC, "holdout_percent": 51}):
        assert not definition.is_valid(broken), broken


def test_the_described_definition_takes_a_crm_call_trigger_and_a_crm_task(client):
    doc = _served(client)
    definition = jsonschema_rs.validator_for({"$ref": "#/components/schemas/CampaignDefinition",
                                              "components": doc["components"]})
    call = {**DOC, "trigger": {"on": "crm_call", "conditions": {"outcomes": ["interested"]}},
            "crm_task": {"note": "回电", "due_hours": 48}}
    assert [e.message for e in definition.iter_errors(call)] == []
    assert not definition.is_valid({**call, "trigger": {"on": "crm_call", "conditions": {"outcomes": ["happy"]}}})
    assert not definition.is_valid({**call, "crm_task": {"note": "回电", "due_hours": 0}})
    assert "crm_call" in doc["components"]["schemas"]["CampaignDefinition"]["properties"]["trigger"]["description"]


@pytest.fixture
def tokens(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return {role: make_token(s, role=role) for role in ("admin", "marketer", "approver", "agent")}


def test_the_campaigns_api_answers_match_their_description(app, client, tokens):
    doc = _served(client)
    checked: set[tuple[str, str, int]] = set()

    def call(method: str, url: str, path: str, role: str | None = "marketer", status: int = 200,
             **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role else {}
        response = client.open(url, method=method, headers=headers, **kw)
        assert response.status_code == status, (method, url, response.get_data(as_text=True))
        documented = doc["paths"][path][method.lower()]["responses"][str(status)]
        schema = {**documented["content"]["application/json"]["schema"], "components": doc["components"]}
        body = orjson.loads(response.get_data())
        assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)] == [], (method, url)
        checked.add((method, path, status))
        return body

    many, one = "/api/v1/campaigns", "/api/v1/campaigns/{campaign_id}"
    campaign = call("POST", many, many, json=DOC, status=201)
    url = f"/api/v1/campaigns/{campaign['id']}"
    call("POST", many, many, json={**DOC, "colour": "red"}, status=422)
    call("POST", many, many, data="name=x", content_type="application/x-www-form-urlencoded", status=400)
    call("POST", many, many, role=None, json=DOC, status=401)
    call("POST", many, many, role="agent", json=DOC, status=403)
    listed = call("GET", many + "?status=draft", many, role="agent")
    assert [c["id"] for c in listed["campaigns"]] == [campaign["id"]]
    call("GET", many + "?status=nope", many, status=422)
    call("GET", url, one, role="agent")
    call("GET", "/api/v1/campaigns/999999", one, status=404)
    wrong = copy.deepcopy(DOC)
    wrong["messages"][0]["text"] = "保本保息，年化8%"
    draft = call("PUT", url, one, json=wrong)
    assert {p["code"] for p in draft["compliance"]} >= {"banned_phrase", "risk_warning_missing"}
    call("POST", url + "/submit", one + "/submit", status=422)
    call("PUT", url, one, json=DOC)
    call("POST", url + "/preview", one + "/preview", role="approver")
    call("POST", url + "/approve", one + "/approve", role="approver", status=409)  # still a draft
    call("POST", url + "/submit", one + "/submit")
    call("POST", url + "/reject", one + "/reject", role="approver", json={}, status=422)
    call("POST", url + "/approve", one + "/approve", role="approver")
    call("POST", url + "/pause", one + "/pause")
    call("POST", url + "/resume", one + "/resume", role="approver")
    call("POST", url + "/cancel", one + "/cancel")
    call("PUT", url, one, json=DOC, status=409)  # a cancelled campaign cannot change
    call("GET", url + "/results", one + "/results", role="agent")

    example = doc["paths"][many]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert call("POST", many, many, json=example, status=201)["compliance"] == []  # the example is compliant

    own = call("POST", many, many, role="admin", json=DOC, status=201)
    own_url = f"/api/v1/campaigns/{own['id']}"
    call("POST", own_url + "/submit", one + "/submit", role="admin")
    call("POST", own_url + "/approve", one + "/approve", role="admin", status=403)  # four eyes
    call("POST", own_url + "/reject", one + "/reject", role="approver", json={"reason": "预算太高"})

    call("POST", "/api/v1/kill-switch", "/api/v1/kill-switch", role="approver", json={"on": True})
    call("POST", "/api/v1/kill-switch", "/api/v1/kill-switch", role="approver", json={"on": "yes"}, status=422)
    call("POST", "/api/v1/kill-switch", "/api/v1/kill-switch", role="approver", json={"on": False})
    assert {(m, s) for m, _p, s in checked} >= {("POST", 201), ("GET", 200), ("PUT", 200), ("POST", 400),
                                                 ("POST", 401), ("POST", 403), ("GET", 404), ("POST", 409),
                                                 ("PUT", 409), ("POST", 422), ("GET", 422)}


def test_a_part_that_takes_a_name_already_described_is_refused():
    with pytest.raises(ValueError, match="paths"):
        build_openapi([Contribution(paths={EVENTS_PATH: {}})])
    with pytest.raises(ValueError, match="schemas"):
        build_openapi([Contribution(paths={}, schemas={"Money": {}})])
