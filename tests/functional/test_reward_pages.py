"""The rewards API (spec §4) and the staff pages: ledger, CSV masking, manual grants with a second approver, revoke."""

from __future__ import annotations

from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.rewards.models import GrantRequest, Reward
from growth.rewards.rules import Terms
from tests.factories import PASSWORD, make_token, make_user
from tests.integration.rewards.helpers import T0, D, give, register


def _signed_in(app, role: str):  # type: ignore[no-untyped-def]
    """Return a new client signed in as a new staff member of a role, and the user."""
    with get_db(app).session_scope(write=True) as s:
        user = make_user(s, role=role)
    browser = app.test_client()
    assert browser.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 302
    return browser, user


def _token(app, role: str = "analyst") -> dict[str, str]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return {"Authorization": f"Bearer {make_token(s, role=role)}"}


def test_the_rewards_api_answers_the_spec_shape_and_filters_by_status(app, client):
    ids = register(app, client, "u_10023")
    v = give(app, ids["u_10023"], key="v", at=T0)
    give(app, ids["u_10023"], "cash", Terms(amount_fen=888), key="c", at=T0 + D)
    headers = _token(app)
    body = client.get("/api/v1/investors/u_10023/rewards", headers=headers).get_json()
    assert [r["kind"] for r in body["rewards"]] == ["cash", "voucher"]
    voucher = body["rewards"][1]
    assert {k: voucher[k] for k in ("id", "kind", "status", "amount", "conditions", "granted_at", "expires_at",
                                    "campaign_id")} == {
        "id": f"rw_{v}", "kind": "voucher", "status": "granted", "amount": "50.00",
        "conditions": {"min_investment": "5000.00", "min_term_days": 30},
        "granted_at": "2026-09-01T02:00:00+00:00", "expires_at": "2026-10-01T16:00:00+00:00", "campaign_id": None}
    paid = client.get("/api/v1/investors/u_10023/rewards?status=paid", headers=headers).get_json()
    assert [r["kind"] for r in paid["rewards"]] == ["cash"]
    # Granted long ago with 30 days to use it: no longer usable today.
    usable = client.get("/api/v1/investors/u_10023/rewards?status=usable", headers=headers).get_json()
    assert usable == {"rewards": []}


def test_the_rewards_api_refuses_strangers_unknown_statuses_and_unknown_investors_in_the_error_format(app, client):
    register(app, client, "u1")
    assert client.get("/api/v1/investors/u1/rewards").status_code == 401
    assert client.get("/api/v1/investors/u1/rewards", headers=_token(app, "agent")).status_code == 403
    headers = _token(app)
    bad = client.get("/api/v1/investors/u1/rewards?status=lost", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["code"] == "unknown_status"
    missing = client.get("/api/v1/investors/nobody/rewards", headers=headers)
    assert missing.status_code == 404
    assert missing.get_json()["errors"] == [{"path": "user_id", "code": "not_found",
                                             "message": "no investor with this user id"}]


def test_the_ledger_and_a_reward_page_show_the_reward_with_its_entries(app, client, login):
    ids = register(app, client, "u1")
    v = give(app, ids["u1"], key="v")
    login("analyst")
    page = client.get("/rewards/?kind=voucher&status=granted")
    assert page.status_code == 200 and f"rw_{v}" in page.get_data(as_text=True)
    assert f"rw_{v}" not in client.get("/rewards/?status=paid").get_data(as_text=True)
    detail = client.get(f"/rewards/{v}").get_data(as_text=True)
    assert 'data-entry="granted"' in detail and 'id="revoke-form"' not in detail  # analysts may not revoke
    for path in ("/rewards/budgets", "/rewards/liability"):
        assert client.get(path).status_code == 200
    with get_db(app).session_scope() as s:
        budget_id = s.get(Reward, v).budget_id
    assert 'id="burn-down"' in client.get(f"/rewards/budgets/{budget_id}").get_data(as_text=True)


def test_the_csv_export_masks_personal_data_unless_the_role_may_reveal_it_and_is_audited(app, client, login):
    from tests.events import event, post_events

    assert post_events(client, [event("user.registered", "u1", T0 - D, phone="+8613800138000", name="张三丰")]
                       ).json["accepted"] == 1
    ids = register(app, client, "u1")
    give(app, ids["u1"], key="v")
    login("analyst")
    masked = client.get("/rewards/export.csv").get_data(as_text=True)
    assert "138****8000" in masked and "张**" in masked and "13800138000" not in masked
    assert client.get("/rewards/export.csv?pii=1").status_code == 403
    admin, _user = _signed_in(app, "admin")
    full = admin.get("/rewards/export.csv?pii=1").get_data(as_text=True)
    assert "+8613800138000" in full and "张三丰" in full
    with get_db(app).session_scope() as s:
        details = [e.details["unmasked"] for e in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "rewards.exported").order_by(AuditEntry.id))]
    assert details == [False, True]


def _grant_form(**fields: str) -> dict[str, str]:
    form = {"user_id": "u1", "kind": "voucher", "amount": "50.00", "valid_days": "30", "reason": "客诉补偿",
            "nonce": "nonce-0001"}
    form.update(fields)
    return form


def test_a_small_manual_grant_is_granted_at_once_and_a_double_submit_grants_once(app, client, login):
    register(app, client, "u1")
    login("admin")
    first = client.post("/rewards/grant", data=_grant_form())
    assert first.status_code == 302
    assert client.post("/rewards/grant", data=_grant_form()).status_code == 302
    with get_db(app).session_scope() as s:
        reward = s.scalars(select(Reward)).one()
        assert (reward.kind, reward.amount_fen, reward.note) == ("voucher", 5000, "客诉补偿")
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("reward.%"))).all() == [
            "reward.granted_manually", "reward.granted_manually"]


def test_a_manual_grant_above_the_threshold_waits_for_a_different_administrator(app, client, login):
    register(app, client, "u1")
    requester = login("admin")
    response = client.post("/rewards/grant", data=_grant_form(amount="500.00"))
    assert response.status_code == 302 and response.headers["Location"].endswith("/rewards/requests")
    with get_db(app).session_scope() as s:
        request = s.scalars(select(GrantRequest)).one()
        assert (request.status, request.value_fen, request.requested_by) == ("pending", 50000, requester.email)
        assert s.scalars(select(Reward)).all() == []
    # The requester cannot approve their own request.
    assert client.post(f"/rewards/requests/{request.id}/approve").status_code == 403
    other, approver = _signed_in(app, "admin")
    assert other.post(f"/rewards/requests/{request.id}/approve").status_code == 302
    with get_db(app).session_scope() as s:
        request = s.get(GrantRequest, request.id)
        reward = s.scalars(select(Reward)).one()
        assert (request.status, request.decided_by, request.reward_id) == ("approved", approver.email, reward.id)
        assert (reward.amount_fen, reward.granted_by) == (50000, approver.email)
    assert other.post(f"/rewards/requests/{request.id}/approve").status_code == 302  # already decided: refused
    with get_db(app).session_scope() as s:
        assert len(s.scalars(select(Reward)).all()) == 1


def test_a_manual_grant_with_bad_terms_is_shown_again_with_the_error(app, client, login):
    register(app, client, "u1")
    login("admin")
    page = client.post("/rewards/grant", data=_grant_form(amount="5.001"))
    assert page.status_code == 422 and 'data-field="amount"' in page.get_data(as_text=True)
    unknown = client.post("/rewards/grant", data=_grant_form(user_id="nobody"))
    assert unknown.status_code == 422 and 'data-field="user_id"' in unknown.get_data(as_text=True)


def test_an_admin_revokes_a_reward_with_a_reason_and_it_shows_on_the_investor_page(app, client, login):
    ids = register(app, client, "u1")
    v = give(app, ids["u1"], key="v")
    login("admin")
    assert client.post(f"/rewards/{v}/revoke", data={"reason": ""}).status_code == 302  # refused: no reason
    with get_db(app).session_scope() as s:
        assert s.get(Reward, v).status == "granted"
    assert client.post(f"/rewards/{v}/revoke", data={"reason": "误发"}).status_code == 302
    with get_db(app).session_scope() as s:
        assert s.get(Reward, v).status == "revoked"
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "reward.revoked")).one()
        assert audit.details["reason"] == "误发"
    agent, _user = _signed_in(app, "agent")
    page = agent.get(f"/investors/{ids['u1']}").get_data(as_text=True)
    assert 'id="investor-rewards"' in page and 'data-status="revoked"' in page


def test_the_rewards_api_answers_match_their_openapi_description(app, client):
    import jsonschema_rs
    import orjson

    from growth.events.openapi import build_openapi

    doc = build_openapi()
    ids = register(app, client, "u1")
    give(app, ids["u1"], key="v")
    give(app, ids["u1"], "rate_boost", Terms(annual_rate_bp=100, max_days=30, valid_days=30), key="rb")
    give(app, ids["u1"], "experience_funds", Terms(amount_fen=888_800, annual_rate_bp=800, days=7), key="ef")
    headers = _token(app)
    for url, status in (("/api/v1/investors/u1/rewards", 200), ("/api/v1/investors/u1/rewards?status=x", 422),
                        ("/api/v1/investors/nobody/rewards", 404)):
        response = client.get(url, headers=headers)
        assert response.status_code == status
        documented = doc["paths"]["/api/v1/investors/{user_id}/rewards"]["get"]["responses"][str(status)]
        schema = {**documented["content"]["application/json"]["schema"], "components": doc["components"]}
        body = orjson.loads(response.get_data())
        assert [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)] == []
