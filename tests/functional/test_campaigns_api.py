"""The campaigns API of spec §3: create, read, replace and the life cycle with four-eyes approval."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from campaigns.models import CampaignTransition
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.factories import make_token

DOC: dict[str, Any] = {
    "name": "加息周",
    "type": "rate_boost",
    "class": "marketing",
    "schedule": {"at": "2026-12-10T10:00:00+08:00"},
    "audience": {"all": [{"field": "investment_count", "op": "gte", "value": 1}]},
    "rewards": [{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7}],
    "budget": {"max_grants": 100},
    "messages": [{"channel": "sms", "text": "{{ investor.name }}，加息券已到账。投资有风险，理财需谨慎。回T退订"}],
}


@pytest.fixture
def tokens(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return {role: make_token(s, role=role) for role in ("admin", "marketer", "approver", "agent", "analyst")}


@pytest.fixture
def call(client, tokens):  # type: ignore[no-untyped-def]
    def _call(method: str, url: str, role: str = "marketer", json: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        return client.open(url, method=method, json=json, headers=headers, **kw)
    return _call


def created(call, doc: dict[str, Any] | None = None, role: str = "marketer") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = call("POST", "/api/v1/campaigns", role, json=doc or DOC)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def test_a_marketer_creates_a_draft_and_gets_back_the_definition_with_id_and_status(call):
    body = created(call)
    assert body["status"] == "draft"
    assert body["id"] > 0
    assert {k: body[k] for k in DOC} == DOC
    assert body["created_by"].startswith("marketer")
    assert body["approved_by"] is None
    assert body["compliance"] == []
    fetched = call("GET", f"/api/v1/campaigns/{body['id']}", "agent").get_json()
    assert fetched == body


def test_a_document_that_breaks_the_schema_is_a_422_listing_every_problem(call):
    bad = copy.deepcopy(DOC)
    bad["colour"] = "red"
    bad["rewards"][0]["annual_rate"] = "1%"
    response = call("POST", "/api/v1/campaigns", json=bad)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]
    assert {(e["path"], e["code"]) for e in body["errors"]} == {("colour", "unknown_field"),
                                                               ("rewards[0].annual_rate", "invalid_rate")}
    assert all(e["message"] for e in body["errors"])


def test_a_body_that_is_not_json_is_a_400(call):
    response = call("POST", "/api/v1/campaigns", data="name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "malformed"


def test_a_draft_may_hold_compliance_problems_which_get_lists_and_submit_refuses(call):
    doc = copy.deepcopy(DOC)
    doc["messages"][0]["text"] = "保本保息，年化8%"
    body = created(call, doc)
    assert {c["code"] for c in body["compliance"]} == {"banned_phrase", "risk_warning_missing",
                                                       "sms_opt_out_missing"}
    response = call("POST", f"/api/v1/campaigns/{body['id']}/submit")
    assert response.status_code == 422
    assert {e["code"] for e in response.get_json()["errors"]} == {"banned_phrase", "risk_warning_missing",
                                                                  "sms_opt_out_missing"}
    assert call("GET", f"/api/v1/campaigns/{body['id']}").get_json()["status"] == "draft"


def test_the_life_cycle_of_a_scheduled_campaign_with_four_eyes_approval(app, call):
    cid = created(call)["id"]
    url = f"/api/v1/campaigns/{cid}"
    assert call("POST", f"{url}/submit").get_json()["status"] == "pending_approval"
    assert call("POST", f"{url}/approve", "marketer").status_code == 403  # marketers do not approve
    approved = call("POST", f"{url}/approve", "approver")
    assert approved.status_code == 200
    assert approved.get_json()["status"] == "scheduled"
    assert approved.get_json()["approved_by"].startswith("approver")
    assert call("POST", f"{url}/pause", "approver").get_json()["status"] == "paused"
    assert call("POST", f"{url}/resume", "marketer").get_json()["status"] == "scheduled"
    assert call("POST", f"{url}/cancel").get_json()["status"] == "cancelled"
    assert call("POST", f"{url}/resume").status_code == 409
    assert call("PUT", url, json=DOC).status_code == 409
    with get_db(app).session_scope() as s:
        steps = [(t.action, t.to_status) for t in s.query(CampaignTransition).filter_by(campaign_id=cid)
                 .order_by(CampaignTransition.id)]
        audited = [a.action for a in s.query(AuditEntry).filter_by(target_type="campaign", target_id=str(cid))
                   .order_by(AuditEntry.id)]
    assert steps == [("create", "draft"), ("submit", "pending_approval"), ("approve", "scheduled"),
                     ("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")]
    assert audited == ["campaign.create", "campaign.submit", "campaign.approve", "campaign.pause",
                       "campaign.resume", "campaign.cancel"]


def test_a_trigger_campaign_becomes_active_when_approved(call):
    doc = copy.deepcopy(DOC)
    del doc["schedule"]
    doc["trigger"] = {"on": "registered"}
    cid = created(call, doc)["id"]
    call("POST", f"/api/v1/campaigns/{cid}/submit")
    assert call("POST", f"/api/v1/campaigns/{cid}/approve", "admin").get_json()["status"] == "active"


def test_nobody_approves_their_own_campaign_not_even_an_admin(call):
    cid = created(call, role="admin")["id"]
    call("POST", f"/api/v1/campaigns/{cid}/submit", "admin")
    response = call("POST", f"/api/v1/campaigns/{cid}/approve", "admin")
    assert response.status_code == 403
    assert call("POST", f"/api/v1/campaigns/{cid}/approve", "approver").status_code == 200


def test_a_rejection_needs_a_reason_and_returns_the_campaign_to_draft(call):
    cid = created(call)["id"]
    call("POST", f"/api/v1/campaigns/{cid}/submit")
    assert call("POST", f"/api/v1/campaigns/{cid}/reject", "approver", json={}).status_code == 422
    assert call("POST", f"/api/v1/campaigns/{cid}/reject", "approver", json={"reason": "  "}).status_code == 422
    body = call("POST", f"/api/v1/campaigns/{cid}/reject", "approver", json={"reason": "预算太高"}).get_json()
    assert body["status"] == "draft"
    assert body["rejection_reason"] == "预算太高"


def test_editing_an_approved_campaign_returns_it_to_draft_but_a_rename_does_not(call):
    cid = created(call)["id"]
    url = f"/api/v1/campaigns/{cid}"
    call("POST", f"{url}/submit")
    call("POST", f"{url}/approve", "approver")
    renamed = call("PUT", url, json={**DOC, "name": "加息周（新）"}).get_json()
    assert (renamed["status"], renamed["name"]) == ("scheduled", "加息周（新）")
    assert renamed["approved_by"] is not None
    edited = call("PUT", url, json={**DOC, "holdout_percent": 5}).get_json()
    assert (edited["status"], edited["approved_by"]) == ("draft", None)
    assert call("POST", f"{url}/approve", "approver").status_code == 409  # it must be submitted again


def test_wrong_state_actions_are_409_and_unknown_campaigns_404(call):
    cid = created(call)["id"]
    assert call("POST", f"/api/v1/campaigns/{cid}/approve", "approver").status_code == 409
    assert call("POST", f"/api/v1/campaigns/{cid}/pause").status_code == 409
    assert call("GET", "/api/v1/campaigns/999999").status_code == 404
    assert call("POST", "/api/v1/campaigns/999999/submit").status_code == 404


@pytest.mark.parametrize(("role", "create", "approve", "pause"), [
    ("admin", 201, 409, 409), ("marketer", 201, 403, 409), ("approver", 403, 409, 409),
    ("agent", 403, 403, 403), ("analyst", 403, 403, 403),
])
def test_each_role_may_do_what_spec_3_says(call, role, create, approve, pause):
    cid = created(call)["id"]
    assert call("POST", "/api/v1/campaigns", role, json=DOC).status_code == create
    assert call("POST", f"/api/v1/campaigns/{cid}/approve", role).status_code == approve
    assert call("POST", f"/api/v1/campaigns/{cid}/pause", role).status_code == pause
    assert call("GET", f"/api/v1/campaigns/{cid}", role).status_code == 200


def test_the_list_filters_by_status_and_type_and_pages(call):
    ids = [created(call)["id"] for _ in range(3)]
    call("POST", f"/api/v1/campaigns/{ids[0]}/submit")
    body = call("GET", "/api/v1/campaigns?status=pending_approval").get_json()
    assert [c["id"] for c in body["campaigns"]] == [ids[0]]
    page = call("GET", "/api/v1/campaigns?type=rate_boost&limit=2").get_json()
    assert page["total"] == 3 and [c["id"] for c in page["campaigns"]] == [ids[2], ids[1]]
    assert call("GET", "/api/v1/campaigns?status=nope").status_code == 422
    assert call("GET", "/api/v1/campaigns?limit=0").status_code == 422


def test_a_browser_session_may_read_but_not_write_the_api(client, login):
    login("marketer")
    assert client.get("/api/v1/campaigns").status_code == 200
    assert client.post("/api/v1/campaigns", json=DOC).status_code == 403


def test_the_kill_switch_pauses_marketing_campaigns_and_holds_their_messages_until_released(app, call):
    from datetime import UTC, datetime

    from channels.models import OutboxMessage
    from tests.factories import make_message

    marketing = created(call)["id"]
    call("POST", f"/api/v1/campaigns/{marketing}/submit")
    call("POST", f"/api/v1/campaigns/{marketing}/approve", "approver")
    service = created(call, {**DOC, "class": "service"})["id"]
    call("POST", f"/api/v1/campaigns/{service}/submit")
    call("POST", f"/api/v1/campaigns/{service}/approve", "approver")
    draft = created(call)["id"]
    due = datetime(2026, 12, 1, tzinfo=UTC)
    with get_db(app).session_scope(write=True) as s:
        ids = {name: make_message(s, message_class=cls, status=status, due_at=due).id for name, cls, status in (
            ("queued", "marketing", "queued"), ("quiet", "marketing", "deferred"), ("sent", "marketing", "sent"),
            ("notice", "service", "queued"))}
    assert call("POST", "/api/v1/kill-switch", "marketer", json={"on": True}).status_code == 403
    assert call("POST", "/api/v1/kill-switch", "approver", json={"on": "yes"}).status_code == 422
    body = call("POST", "/api/v1/kill-switch", "approver", json={"on": True}).get_json()
    assert body == {"on": True, "paused_campaigns": [marketing], "messages": 2}
    assert call("GET", f"/api/v1/campaigns/{marketing}").get_json()["status"] == "paused"
    assert call("GET", f"/api/v1/campaigns/{service}").get_json()["status"] == "scheduled"
    assert call("GET", f"/api/v1/campaigns/{draft}").get_json()["status"] == "draft"
    with get_db(app).session_scope() as s:
        rows = {name: s.get(OutboxMessage, i) for name, i in ids.items()}
        assert (rows["queued"].status, rows["queued"].hold_reason) == ("deferred", "kill_switch")
        assert (rows["quiet"].status, rows["quiet"].hold_reason) == ("deferred", "kill_switch")
        assert rows["sent"].status == "sent" and rows["notice"].status == "queued"
    released = call("POST", "/api/v1/kill-switch", "admin", json={"on": False}).get_json()
    assert released == {"on": False, "paused_campaigns": [], "messages": 2}
    assert call("GET", f"/api/v1/campaigns/{marketing}").get_json()["status"] == "paused"  # stays paused
    with get_db(app).session_scope() as s:
        held = s.get(OutboxMessage, ids["queued"])
        assert held.due_at > due  # due now: delivery checks it again against everything else
        audited = [a.action for a in s.query(AuditEntry).filter(AuditEntry.action.like("kill_switch.%"))]
    assert audited == ["kill_switch.on", "kill_switch.off"]


def test_preview_counts_the_audience_and_estimates_the_cost_for_marketers_and_approvers(app, call):
    from datetime import UTC, datetime

    from channels.models import ConsentState
    from tests.factories import make_investor

    with get_db(app).session_scope(write=True) as s:
        for i in range(4):
            investor = make_investor(s, investment_count=1 + i)
            s.add(ConsentState(investor_id=investor.id, channel="sms", granted=i % 2 == 0,
                               occurred_at=datetime(2026, 12, 1, tzinfo=UTC), source="event"))
    doc = {**DOC, "rewards": [{"kind": "cash", "amount": "8.88"}], "budget": {"max_grants": 3}}
    cid = created(call, doc)["id"]
    assert call("POST", f"/api/v1/campaigns/{cid}/preview", "agent").status_code == 403
    body = call("POST", f"/api/v1/campaigns/{cid}/preview", "approver").get_json()
    assert (body["audience"], body["holdout"]) == (4, 0)
    assert body["messages"] == {"sms": 2}
    assert body["sms_parts"] == 1
    assert body["estimated_cost"] == "26.64"  # 3 grants (the budget's max) × 8.88
    assert body["compliance"] == [] and body["samples"][0]["channel"] == "sms"


def test_results_of_a_campaign_nobody_entered_yet_are_zeros_in_the_spec_shape(call):
    cid = created(call)["id"]
    body = call("GET", f"/api/v1/campaigns/{cid}/results", "analyst").get_json()
    assert (body["members"], body["holdout"], body["treated"], body["granted"], body["budget_exhausted"]) == (
        0, 0, 0, 0, 0)
    assert body["messages"]["sms"]["sent"] == 0 and body["rewards"]["cost"] == "0.00"
    assert body["invested"] == {"treated": {"investors": 0, "amount": "0.00"},
                                "holdout": {"investors": 0, "amount": "0.00"}}
