"""Erasing an investor from the investor page: administrators only, with a reason and the user id typed to confirm."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.investors.models import Investor
from tests.events import event, post_events

NAME = "赵小红"
PHONE = "+8613711112222"


def _investor(app, client) -> int:  # type: ignore[no-untyped-def]
    from growth.events.processor import drain

    post_events(client, [event("user.registered", "u_page", datetime(2026, 11, 2, 2, tzinfo=UTC),
                               {"channel_code": "baidu_sem"}, phone=PHONE, name=NAME, email="zxh@example.com")])
    drain(app)
    with get_db(app).session_scope() as s:
        return s.scalars(select(Investor.id).where(Investor.platform_user_id == "u_page")).one()


def test_an_admin_erases_an_investor_with_a_reason_and_the_page_then_shows_nothing_personal(app, client, login):
    investor_id = _investor(app, client)
    admin = login("admin")
    page = client.get(f"/investors/{investor_id}").get_data(as_text=True)
    assert 'id="erase-form"' in page

    response = client.post(f"/investors/{investor_id}/erase",
                           data={"erase_reason": "个人信息删除申请 #42", "erase_confirm": "u_page"})

    assert response.status_code == 302
    page = client.get(f"/investors/{investor_id}").get_data(as_text=True)
    assert 'id="investor-erased"' in page and 'id="erase-form"' not in page
    assert NAME not in page and PHONE[3:] not in page and PHONE[-4:] not in page
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "investor.erased")).one()
        assert (entry.actor, entry.details["reason"]) == (admin.email, "个人信息删除申请 #42")


def test_the_wrong_user_id_or_no_reason_is_refused_at_its_field_and_nothing_is_erased(app, client, login):
    investor_id = _investor(app, client)
    login("admin")
    wrong = client.post(f"/investors/{investor_id}/erase", data={"erase_reason": "申请", "erase_confirm": "u_other"})
    no_reason = client.post(f"/investors/{investor_id}/erase", data={"erase_reason": " ", "erase_confirm": "u_page"})

    assert wrong.status_code == no_reason.status_code == 400
    assert "请输入该投资人的平台用户 ID 以确认删除" in wrong.get_data(as_text=True)
    assert "请填写删除原因" in no_reason.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        assert s.get_one(Investor, investor_id).erased_at is None
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "investor.erased")).all() == []


def test_only_administrators_may_erase(app, client, login):
    investor_id = _investor(app, client)
    login("agent")  # agents may see personal data, but not erase it
    assert 'id="erase-form"' not in client.get(f"/investors/{investor_id}").get_data(as_text=True)
    response = client.post(f"/investors/{investor_id}/erase", data={"erase_reason": "x", "erase_confirm": "u_page"})
    assert response.status_code == 403
    with get_db(app).session_scope() as s:
        assert s.get_one(Investor, investor_id).erased_at is None
