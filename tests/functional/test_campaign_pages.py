"""The campaign pages through the test client: list, type picker, editor, campaign page, actions, live helpers."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import func, select

from campaigns import presets, services
from campaigns.definition import CAMPAIGN_TYPES
from campaigns.models import Campaign, CampaignTransition, SavedSegment
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.factories import PASSWORD, make_investor, make_user

DOC: dict[str, Any] = {
    "name": "加息周",
    "type": "rate_boost",
    "class": "marketing",
    "schedule": {"at": "2026-12-10T10:00:00+08:00"},
    "audience": {"all": [{"field": "investment_count", "op": "gte", "value": 1}]},
    "rewards": [{"kind": "rate_boost", "annual_rate": "0.0100", "max_days": 30, "valid_days": 7,
                 "max_investment": "50000.00"}],  # a budget with max_amount needs the bound
    "budget": {"max_grants": 100, "max_amount": "5000.00"},
    "messages": [{"channel": "sms", "text": "{{ investor.name }}，加息券已到账。投资有风险，理财需谨慎。回T退订"}],
}


def signed_in(app: Flask, role: str):  # type: ignore[no-untyped-def]
    """Return a fresh client signed in as a new staff member of the role, and that member's id."""
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role=role)
        user_id = user.id
        email = user.email
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302
    return client, user_id


def make_campaign(app: Flask, actor_id: int | None, doc: dict[str, Any] | None = None, *, status: str = "draft",
                  approver_id: int | None = None) -> int:
    """Create a campaign through the services and walk it to a status; return its id."""
    now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    with get_db(app).session_scope(write=True) as s:
        campaign = services.create(doc or DOC, session=s, actor_id=actor_id, now=now)
        if status != "draft":
            services.transition(campaign, "submit", session=s, actor_id=actor_id, now=now)
        if status not in ("draft", "pending_approval"):
            services.transition(campaign, "approve", session=s, actor_id=approver_id, now=now)
        return campaign.id


def stored(app: Flask, campaign_id: int) -> Campaign:
    with get_db(app).session_scope() as s:
        campaign = s.get(Campaign, campaign_id)
        assert campaign is not None
        s.expunge(campaign)
        return campaign


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def flashed(client) -> str:  # type: ignore[no-untyped-def]
    """Return the page the last redirect led to (its flash messages are on it)."""
    return text(client.get("/campaigns"))


# --- the list -----------------------------------------------------------------------------------------


def test_an_empty_list_explains_campaigns_and_offers_the_new_button_to_a_marketer(app):
    client, _id = signed_in(app, "marketer")
    page = text(client.get("/campaigns"))
    assert "还没有活动" in page
    assert 'id="new-campaign"' in page
    assert 'href="/campaigns"' in page  # the nav item


@pytest.mark.parametrize("role", ["agent", "analyst", "approver"])
def test_staff_without_the_edit_permission_see_the_list_but_no_new_button(app, role):
    client, _id = signed_in(app, role)
    response = client.get("/campaigns")
    assert response.status_code == 200
    assert 'id="new-campaign"' not in text(response)
    assert client.get("/campaigns/new").status_code == 403


def test_the_list_filters_by_status_and_type_and_pages(app):
    _client, author = signed_in(app, "marketer")
    _c, approver = signed_in(app, "approver")
    for i in range(27):
        make_campaign(app, author, dict(DOC, name=f"加息{i:02d}"))
    broadcast = dict(copy.deepcopy(DOC), name="公告一号", type="broadcast", rewards=[])
    make_campaign(app, author, broadcast, status="scheduled", approver_id=approver)
    client, _id = signed_in(app, "analyst")

    first = text(client.get("/campaigns"))
    assert first.count("data-campaign=") == 25
    assert "共 28 条" in first
    second = text(client.get("/campaigns?page=2"))
    assert second.count("data-campaign=") == 3
    assert "加息00" in second

    scheduled = text(client.get("/campaigns?status=scheduled"))
    assert scheduled.count("data-campaign=") == 1 and "公告一号" in scheduled
    assert 'data-status="scheduled"' in scheduled
    typed = text(client.get("/campaigns?type=broadcast&status=draft"))
    assert "没有符合条件的活动" in typed
    ignored = text(client.get("/campaigns?status=nonsense&type=x"))
    assert ignored.count("data-campaign=") == 25


# --- the type picker and the editor ----------------------------------------------------------------------


def test_the_type_picker_offers_all_eight_types_each_opening_the_editor_on_its_preset(app):
    client, _id = signed_in(app, "marketer")
    picker = text(client.get("/campaigns/new"))
    assert set(re.findall(r'data-type="(\w+)"', picker)) == set(CAMPAIGN_TYPES)
    for type_ in CAMPAIGN_TYPES:
        response = client.get(f"/campaigns/new?type={type_}")
        assert response.status_code == 200
        document = json.loads(re.search(r'id="definition"[^>]*>(.*?)</textarea>', text(response), re.S).group(1)
                              .replace("&#34;", '"').replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                              .replace("&amp;", "&").replace("&#39;", "'"))
        assert document["type"] == type_
        assert 'id="problem-summary"' not in text(response)
        assert 'id="compliance-summary"' not in text(response)


def test_a_marketer_creates_a_draft_through_the_form_and_lands_on_its_page(app):
    client, author = signed_in(app, "marketer")
    response = client.post("/campaigns/new", data={"definition": json.dumps(DOC)})
    assert response.status_code == 302
    campaign_id = int(response.headers["Location"].rsplit("/", 1)[1])
    campaign = stored(app, campaign_id)
    assert (campaign.status, campaign.created_by, campaign.name) == ("draft", author, "加息周")
    assert campaign.definition == DOC | {"entry": {"once": True}, "holdout_percent": 0}
    page = text(client.get(f"/campaigns/{campaign_id}"))
    assert "已保存为草稿" in page
    assert "加息券：年化 +1.00%，最多 30 天" in page
    assert "总额不超过 ¥5,000.00" in page
    assert "投资笔数 不少于 1" in page
    assert "定时一次：2026-12-10 10:00（北京时间）" in page
    assert 'id="action-submit"' in page


def test_a_document_that_breaks_the_schema_is_shown_again_with_each_problem_at_its_path(app):
    client, _id = signed_in(app, "marketer")
    bad = copy.deepcopy(DOC)
    bad["rewards"][0]["annual_rate"] = "1%"
    bad["colour"] = "red"
    response = client.post("/campaigns/new", data={"definition": json.dumps(bad)})
    assert response.status_code == 422
    page = text(response)
    summary = page.split('id="problem-summary"', 1)[1].split("</ul>", 1)[0]
    assert 'data-path="rewards[0].annual_rate" data-code="invalid_rate"' in summary
    assert 'data-path="colour" data-code="unknown_field"' in summary
    data = json.loads(re.search(r'id="editor-data">(.*?)</script>', page, re.S).group(1))
    assert {(p["path"], p["code"]) for p in data["problems"]} == {("rewards[0].annual_rate", "invalid_rate"),
                                                                  ("colour", "unknown_field")}
    assert "1%" in page  # what was typed is kept, not lost
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Campaign)) == 0


def test_a_definition_that_is_not_json_is_refused_and_kept_for_correction(app):
    client, _id = signed_in(app, "marketer")
    response = client.post("/campaigns/new", data={"definition": '{"name": "broken'})
    assert response.status_code == 422
    assert "活动定义不是有效的 JSON" in text(response)
    assert "{&#34;name&#34;: &#34;broken" in text(response)


def test_a_draft_may_be_saved_with_compliance_problems_which_the_editor_and_page_list(app):
    client, _id = signed_in(app, "marketer")
    doc = copy.deepcopy(DOC)
    doc["messages"][0]["text"] = "保本高收益，回T退订"
    response = client.post("/campaigns/new", data={"definition": json.dumps(doc)})
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert 'data-path="messages[0].text" data-code="banned_phrase"' in page
    assert 'data-path="messages[0]" data-code="risk_warning_missing"' in page
    editor = text(client.get(response.headers["Location"] + "/edit"))
    assert 'id="compliance-summary"' in editor


def test_editing_an_approved_campaign_warns_first_and_returns_it_to_draft(app):
    _c, author = signed_in(app, "marketer")
    _a, approver = signed_in(app, "approver")
    campaign_id = make_campaign(app, author, status="scheduled", approver_id=approver)
    client, _id = signed_in(app, "marketer")
    editor = text(client.get(f"/campaigns/{campaign_id}/edit"))
    assert 'id="returns-to-draft"' in editor
    assert "data-confirm-draft=" in editor
    version = stored(app, campaign_id).version

    renamed = dict(DOC, name="加息周（改名）")
    response = client.post(f"/campaigns/{campaign_id}/edit", data={"definition": json.dumps(renamed),
                                                                   "version": str(version)})
    assert response.status_code == 302
    assert stored(app, campaign_id).status == "scheduled"  # a rename keeps the approval

    edited = copy.deepcopy(renamed)
    edited["budget"]["max_grants"] = 200
    response = client.post(f"/campaigns/{campaign_id}/edit", data={"definition": json.dumps(edited),
                                                                   "version": str(version + 1)})
    assert response.status_code == 302
    campaign = stored(app, campaign_id)
    assert (campaign.status, campaign.approved_by) == ("draft", None)
    assert campaign.definition["budget"]["max_grants"] == 200
    assert "修改后活动已退回草稿" in text(client.get(f"/campaigns/{campaign_id}"))


def test_an_edit_made_on_a_stale_copy_is_refused_without_overwriting_the_newer_one(app):
    client, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author)
    edited = dict(DOC, name="后来的修改")
    response = client.post(f"/campaigns/{campaign_id}/edit", data={"definition": json.dumps(edited), "version": "0"})
    assert response.status_code == 409
    assert "活动刚被别人改过" in text(response)
    assert stored(app, campaign_id).name == "加息周"


def test_an_ended_campaign_has_no_edit_link_and_its_editor_sends_you_back(app):
    client, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author)
    with get_db(app).session_scope(write=True) as s:
        services.transition(s.get(Campaign, campaign_id), "cancel", session=s, actor_id=author,
                            now=datetime(2026, 12, 1, tzinfo=UTC))
    assert 'id="edit-campaign"' not in text(client.get(f"/campaigns/{campaign_id}"))
    response = client.get(f"/campaigns/{campaign_id}/edit")
    assert response.status_code == 302


# --- the campaign page and its actions ------------------------------------------------------------------


def test_the_life_cycle_through_the_page_with_four_eyes_and_history(app):
    author_client, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author)
    url = f"/campaigns/{campaign_id}"

    assert author_client.post(f"{url}/submit").status_code == 302
    assert stored(app, campaign_id).status == "pending_approval"

    # An admin may approve, but never their own campaign: the button is disabled with the reason.
    admin_client, admin = signed_in(app, "admin")
    own_id = make_campaign(app, admin, status="pending_approval")
    own_page = text(admin_client.get(f"/campaigns/{own_id}"))
    assert re.search(r'<button[^>]*disabled id="action-approve"', own_page)
    assert 'id="four-eyes-note"' in own_page
    admin_client.post(f"/campaigns/{own_id}/approve")
    assert stored(app, own_id).status == "pending_approval"
    assert "不能审批自己创建的活动" in flashed(admin_client)

    approver_client, approver = signed_in(app, "approver")
    page = text(approver_client.get(url))
    assert re.search(r'<button[^>]*id="action-approve">', page) and 'id="action-reject-open"' in page
    assert 'id="action-submit"' not in page and 'id="edit-campaign"' not in page
    approver_client.post(f"{url}/approve")
    assert stored(app, campaign_id).status == "scheduled"

    author_client.post(f"{url}/pause")
    assert stored(app, campaign_id).status == "paused"
    author_client.post(f"{url}/resume")
    assert stored(app, campaign_id).status == "scheduled"
    approver_client.post(f"{url}/cancel")
    assert stored(app, campaign_id).status == "cancelled"

    history = text(author_client.get(url)).split('id="campaign-history"', 1)[1]
    actions = re.findall(r'data-action="(\w+)"', history)
    assert actions == ["cancel", "resume", "pause", "approve", "submit", "create"]
    assert "approver" in history and "marketer" in history


def test_a_rejection_needs_a_reason_which_the_author_then_sees(app):
    _c, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author, status="pending_approval")
    client, _id = signed_in(app, "approver")
    client.post(f"/campaigns/{campaign_id}/reject", data={"reason": "   "})
    assert stored(app, campaign_id).status == "pending_approval"
    assert "请填写驳回原因" in flashed(client)
    client.post(f"/campaigns/{campaign_id}/reject", data={"reason": "预算太高"})
    assert stored(app, campaign_id).status == "draft"
    page = text(client.get(f"/campaigns/{campaign_id}"))
    assert "上次被驳回：预算太高" in page
    with get_db(app).session_scope() as s:
        note = s.scalar(select(CampaignTransition.note).where(CampaignTransition.action == "reject"))
    assert note == "预算太高"


def test_submitting_a_campaign_with_a_banned_phrase_is_refused_with_the_problem(app):
    client, author = signed_in(app, "marketer")
    doc = copy.deepcopy(DOC)
    doc["messages"][0]["text"] = "稳赚不赔！投资有风险。回T退订"
    campaign_id = make_campaign(app, author, doc)
    client.post(f"/campaigns/{campaign_id}/submit")
    assert stored(app, campaign_id).status == "draft"
    page = flashed(client)
    assert "messages[0].text" in page and "稳赚不赔" in page


def test_an_action_that_does_not_apply_is_a_message_not_an_error_page(app):
    client, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author)
    response = client.post(f"/campaigns/{campaign_id}/pause")
    assert response.status_code == 302
    assert "不能“暂停”" in flashed(client)


def test_the_page_offers_only_the_actions_the_role_and_status_allow(app):
    _c, author = signed_in(app, "marketer")
    _a, approver = signed_in(app, "approver")
    campaign_id = make_campaign(app, author, status="scheduled", approver_id=approver)
    agent, _id = signed_in(app, "agent")
    page = text(agent.get(f"/campaigns/{campaign_id}"))
    assert not re.search(r'id="action-\w+"', page)
    assert 'id="export-yaml"' in page
    assert agent.post(f"/campaigns/{campaign_id}/pause").status_code == 403
    marketer, _m = signed_in(app, "marketer")
    page = text(marketer.get(f"/campaigns/{campaign_id}"))
    assert set(re.findall(r'id="action-(\w+)"', page)) == {"pause", "cancel"}


def test_the_results_card_is_an_honest_empty_state_until_the_runner_reports(app):
    client, author = signed_in(app, "marketer")
    campaign_id = make_campaign(app, author)
    results = text(client.get(f"/campaigns/{campaign_id}")).split('id="campaign-results"', 1)[1].split("历史", 1)[0]
    assert "还没有执行数据" in results
    assert not re.search(r"\d", results.split("还没有执行数据", 1)[1].split("</p>", 1)[0].replace("∅", ""))


def test_the_yaml_export_downloads_the_spec_document(app):
    client, author = signed_in(app, "analyst")
    campaign_id = make_campaign(app, author)
    response = client.get(f"/campaigns/{campaign_id}/export.yaml")
    assert response.status_code == 200
    assert "attachment" in response.headers["Content-Disposition"]
    assert yaml.safe_load(response.get_data(as_text=True))[0]["name"] == "加息周"
    assert client.get("/campaigns/987654/export.yaml").status_code == 404


# --- the live helpers: audience count, check, saved segments ----------------------------------------------


def test_the_audience_count_follows_the_conditions_and_names_a_broken_one(app):
    with get_db(app).session_scope(write=True) as s:
        for count in (0, 1, 3, 5):
            make_investor(s, investment_count=count, registered_at=datetime.now(UTC) - timedelta(days=2))
    client, _id = signed_in(app, "marketer")

    def count(conditions: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
        return client.post("/campaigns/audience-count", json={"audience": {"all": conditions}})

    assert count([]).get_json() == {"count": 4}
    assert count([{"field": "investment_count", "op": "gte", "value": 3}]).get_json() == {"count": 2}
    assert count([{"field": "investment_count", "op": "between", "value": [1, 3]}]).get_json() == {"count": 2}
    broken = count([{"field": "investment_count", "op": "near", "value": 3}])
    assert broken.status_code == 200 and "count" not in broken.get_json()
    assert [(e["path"], e["code"]) for e in broken.get_json()["errors"]] == [("audience.all[0].op", "unknown_operator")]
    assert client.post("/campaigns/audience-count", data="x").status_code == 400


def test_the_check_lists_schema_and_compliance_problems_and_previews_the_sms(app):
    client, _id = signed_in(app, "marketer")
    doc = copy.deepcopy(DOC)
    doc["messages"][0]["text"] = "{{ investor.name }}您好，保 本产品上线。投资有风险。回T退订"
    body = client.post("/campaigns/check", json=doc).get_json()
    assert body["errors"] == []
    assert [(p["path"], p["code"]) for p in body["compliance"]] == [("messages[0].text", "banned_phrase")]
    sms = body["previews"][0]
    assert sms["fields"]["text"].startswith("张三您好")
    assert sms["sms"]["segments"] == 1

    doc["messages"][0]["text"] = "x" * 80 + "您好。回T退订"
    assert client.post("/campaigns/check", json=doc).get_json()["previews"][0]["sms"]["segments"] == 2

    broken = dict(doc, holdout_percent=80)
    body = client.post("/campaigns/check", json=broken).get_json()
    assert [(p["path"], p["code"]) for p in body["errors"]] == [("holdout_percent", "too_large")]
    assert body["compliance"] == [] and body["previews"] == []


def test_saved_segments_are_saved_replaced_by_name_listed_and_deleted(app):
    client, _id = signed_in(app, "marketer")
    audience = {"all": [{"field": "inactive_days", "op": "gte", "value": 90}]}
    saved = client.post("/campaigns/segments", json={"name": "沉睡用户", "audience": audience})
    assert saved.status_code == 200
    segment_id = saved.get_json()["segment"]["id"]
    again = client.post("/campaigns/segments", json={"name": "沉睡用户", "audience": {"all": []}}).get_json()
    assert [(s["id"], s["audience"]) for s in again["segments"]] == [(segment_id, {"all": []})]
    refused = client.post("/campaigns/segments", json={"name": "", "audience": audience})
    assert refused.status_code == 422
    refused = client.post("/campaigns/segments", json={"name": "x", "audience": {"all": [{"field": "shoe_size"}]}})
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["path"].startswith("audience.all[0]")

    editor = text(client.get("/campaigns/new?type=broadcast"))
    data = json.loads(re.search(r'id="editor-data">(.*?)</script>', editor, re.S).group(1))
    assert [s["name"] for s in data["segments"]] == ["沉睡用户"]

    assert client.post(f"/campaigns/segments/{segment_id}/delete").get_json() == {"segments": []}
    assert client.post(f"/campaigns/segments/{segment_id}/delete").status_code == 404
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(SavedSegment)) == 0
        actions = list(s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("campaign.segment%"))
                                 .order_by(AuditEntry.id)))
    assert actions == ["campaign.segment_saved", "campaign.segment_replaced", "campaign.segment_deleted"]


def test_an_agent_may_not_use_the_editor_helpers(app):
    client, _id = signed_in(app, "agent")
    assert client.post("/campaigns/check", json=DOC).status_code == 403
    assert client.post("/campaigns/audience-count", json={"audience": {}}).status_code == 403
    assert client.post("/campaigns/segments", json={"name": "x", "audience": {}}).status_code == 403


def test_every_preset_saved_unchanged_through_the_form_can_be_submitted(app):
    client, _id = signed_in(app, "marketer")
    now = datetime.now(UTC)
    for type_ in CAMPAIGN_TYPES:
        response = client.post("/campaigns/new", data={"definition": json.dumps(presets.preset(type_, now=now))})
        assert response.status_code == 302, text(response)
        client.post(response.headers["Location"] + "/submit")
        campaign_id = int(response.headers["Location"].rsplit("/", 1)[1])
        assert stored(app, campaign_id).status == "pending_approval", type_
