"""Investor pages through the test client: masking by role, audited reveals and exports."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from growth.acquisition.models import AcquisitionChannel
from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.events.models import PlatformEvent
from growth.investors.models import FundsMovement, Investment
from tests.factories import make_investor

PHONE = "+8613800138000"
T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def zhang(app):  # type: ignore[no-untyped-def]
    """An investor with a channel, a referrer, an investment, a deposit and a raw event; return the id."""
    with get_db(app).session_scope(write=True) as s:
        channel = AcquisitionChannel(code="baidu_sem", name="百度SEM")
        s.add(channel)
        s.flush()
        referrer = make_investor(s, platform_user_id="u_referrer")
        investor = make_investor(
            s, platform_user_id="u_10023", phone=PHONE, name="张三丰", email="zhang@example.com",
            channel_id=channel.id, click_id="clk_abc", referral_code_used=referrer.referral_code,
            referrer_id=referrer.id, registered_at=T0, kyc_verified_at=T0, first_investment_at=T0,
            investment_count=1, investment_total_fen=1_000_000, holdings_fen=1_000_000,
        )
        s.add(Investment(investment_id="inv_1", investor_id=investor.id, product_name="月月盈 30天", term_days=30,
                         annual_rate_bp=850, amount_fen=1_000_000, started_at=T0, maturity_date=date(2026, 3, 31)))
        s.add(FundsMovement(kind="deposit", external_id="dep_1", investor_id=investor.id, amount_fen=1_000_000,
                            occurred_at=T0))
        s.add(PlatformEvent(event_id="evt_1", type="user.registered", occurred_at=T0, user_id="u_10023",
                            payload=json.dumps({"id": "evt_1", "type": "user.registered",
                                                "user": {"id": "u_10023", "phone": PHONE, "name": "张三丰"},
                                                "data": {"channel_code": "baidu_sem"}}, ensure_ascii=False)))
        return investor.id


def _audit(app, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with get_db(app).session_scope() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.mark.parametrize("role", ["analyst", "marketer"])
def test_the_list_shows_masked_contact_details_to_roles_without_pii(client, login, zhang, role):
    login(role)
    html = client.get("/investors").get_data(as_text=True)
    assert "u_10023" in html and "138****8000" in html and "张**" in html
    assert "13800138000" not in html and "张三丰" not in html
    assert "百度SEM" in html and "¥10,000.00" in html and "实名认证" in html


def test_a_search_by_phone_finds_the_investor(client, login, zhang):
    login("analyst")
    html = client.get("/investors?q=13800138000").get_data(as_text=True)
    assert "u_10023" in html and "u_referrer" not in html


@pytest.mark.parametrize("role", ["analyst", "marketer", "agent"])
def test_the_investor_page_is_masked_by_default_for_every_role(client, login, zhang, role):
    login(role)
    response = client.get(f"/investors/{zhang}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "138****8000" in html and "z****@example.com" in html
    assert "13800138000" not in html and "zhang@example.com" not in html and "张三丰" not in html
    assert "百度SEM" in html and "clk_abc" in html and "u_referrer" in html
    assert "月月盈 30天" in html and "8.50%" in html and "2026-03-31" in html
    assert "2026-03-01 10:00:00" in html  # the registration in Asia/Shanghai time
    assert "user.registered" in html and "&#34;channel_code&#34;: &#34;baidu_sem&#34;" in html


def test_only_roles_with_pii_see_the_reveal_button(client, login, zhang):
    login("analyst")
    assert 'id="reveal-pii"' not in client.get(f"/investors/{zhang}").get_data(as_text=True)
    client.post("/logout")
    login("agent")
    assert 'id="reveal-pii"' in client.get(f"/investors/{zhang}").get_data(as_text=True)


def test_an_agent_revealing_contact_details_sees_them_and_is_audited(app, client, login, zhang):
    agent = login("agent")
    response = client.post(f"/investors/{zhang}/reveal")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert PHONE in html and "zhang@example.com" in html and "张三丰" in html
    entries = _audit(app, "investor.pii_revealed")
    assert len(entries) == 1
    assert entries[0].actor == agent.email and entries[0].target_id == str(zhang)


def test_a_role_without_pii_cannot_reveal(app, client, login, zhang):
    login("marketer")
    response = client.post(f"/investors/{zhang}/reveal")
    assert response.status_code == 403
    assert PHONE not in response.get_data(as_text=True)
    assert _audit(app, "investor.pii_revealed") == []


def test_a_marketers_csv_export_is_masked_and_audited_with_its_filters(app, client, login, zhang):
    marketer = login("marketer")
    response = client.get("/investors/export.csv?q=u_100&milestone=kyc_verified")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert body.startswith("\ufeff")
    assert "u_10023" in body and "138****8000" in body and "13800138000" not in body
    assert "u_referrer" not in body
    entries = _audit(app, "investor.exported")
    assert len(entries) == 1
    assert entries[0].actor == marketer.email
    assert entries[0].details["rows"] == 1
    assert entries[0].details["filters"]["q"] == "u_100"
    assert entries[0].details["filters"]["milestone"] == "kyc_verified"
    assert entries[0].details["unmasked"] is False


def test_a_marketer_may_not_export_unmasked_contact_details(app, client, login, zhang):
    login("marketer")
    response = client.get("/investors/export.csv?pii=1")
    assert response.status_code == 403
    assert _audit(app, "investor.exported") == []


def test_an_agent_may_export_unmasked_contact_details_and_that_is_audited(app, client, login, zhang):
    login("agent")
    body = client.get("/investors/export.csv?pii=1").get_data(as_text=True)
    assert PHONE in body and "张三丰" in body
    assert _audit(app, "investor.exported")[0].details["unmasked"] is True


def test_an_unknown_investor_is_a_404(client, login):
    login("analyst")
    assert client.get("/investors/999999").status_code == 404


def test_the_list_says_there_are_no_investors_yet_when_there_are_none(client, login):
    login("analyst")
    html = client.get("/investors").get_data(as_text=True)
    assert "还没有投资人" in html


def test_a_search_with_no_match_says_so(client, login, zhang):
    login("analyst")
    html = client.get("/investors?q=nobody").get_data(as_text=True)
    assert "没有符合条件的投资人" in html and "u_10023" not in html


def test_an_approver_may_not_see_investors(client, login, zhang):
    login("approver")
    assert client.get("/investors").status_code == 403
    assert client.get(f"/investors/{zhang}").status_code == 403
