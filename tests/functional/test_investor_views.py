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
REASON = {"reason": "callback"}  # a reveal needs a reason


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
    assert "raw-event" not in html
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
    response = client.post(f"/investors/{zhang}/reveal", data=REASON, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "+86 13800138000" in html and "zhang@example.com" in html and "张三丰" in html
    entries = _audit(app, "investor.pii_revealed")
    assert len(entries) == 1
    assert entries[0].actor == agent.email and entries[0].target_id == str(zhang)
    assert entries[0].details["reason"] == "callback"


def test_a_role_without_pii_cannot_reveal(app, client, login, zhang):
    login("marketer")
    response = client.post(f"/investors/{zhang}/reveal", data=REASON)
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
    assert "+86 13800138000" in body and "张三丰" in body
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


# --- searching: what each role may search by, audited, rate-limited ------------------------------

ID_NUMBER = "110101199001011234"
BANK_CARD = "6222021234567890123"


def _searched(app) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    return _audit(app, "investor.searched")


@pytest.fixture
def victim(app):  # type: ignore[no-untyped-def]
    with get_db(app).session_scope(write=True) as s:
        return make_investor(s, platform_user_id="u_victim", phone="+8613912348648", name="李四",
                             email="lisi@example.com").id


@pytest.mark.parametrize("app_config", [{"INVESTOR_SEARCH_LIMIT": 1000}])
def test_rebuilding_a_phone_digit_by_digit_from_searches_learns_nothing(client, login, victim, app_config):
    login("analyst")
    known = "8648"  # the last four, which the masked list shows anyway
    for _round in range(3):
        for digit in "0123456789":
            html = client.get(f"/investors?q={digit}{known}").get_data(as_text=True)
            if "u_victim" in html:
                known = digit + known
                break
    assert known == "8648"
    assert "u_victim" in client.get("/investors?q=8648").get_data(as_text=True)


@pytest.mark.parametrize("role", ["analyst", "marketer"])
@pytest.mark.parametrize("query", ["张三丰", "zhang@example.com", "00138000"])
def test_a_role_without_pii_cannot_find_an_investor_by_name_email_or_phone_fragment(app, client, login, zhang,
                                                                                    role, query):
    login(role)
    html = client.get("/investors", query_string={"q": query}).get_data(as_text=True)
    assert "u_10023" not in html
    assert 'id="search-withheld"' in html
    (entry,) = _searched(app)  # the attempt is audited, the query masked
    assert entry.details["withheld"] is True and entry.details["matched_by"] == []
    assert query not in str(entry.details)


@pytest.mark.parametrize("role", ["agent", "admin"])
@pytest.mark.parametrize(("query", "kind", "masked"), [
    ("张三丰", "name", "张**"), ("zhang@example.com", "email", "z****@example.com"),
    ("00138000", "phone_suffix", "******00"),
])
def test_a_role_with_pii_finds_investors_by_name_email_or_phone_fragment_and_is_audited(
        app, client, login, zhang, role, query, kind, masked):
    user = login(role)
    html = client.get("/investors", query_string={"q": query}).get_data(as_text=True)
    assert "u_10023" in html and 'id="search-withheld"' not in html
    (entry,) = _searched(app)
    assert entry.actor == user.email
    assert entry.details == {"q": masked, "matched_by": [kind], "withheld": False, "results": 1}


def test_a_search_by_a_whole_phone_is_audited_for_any_role_and_by_the_last_4_digits_is_not(app, client, login,
                                                                                         zhang):
    login("analyst")
    assert "u_10023" in client.get("/investors?q=8000").get_data(as_text=True)
    assert _searched(app) == []
    assert "u_10023" in client.get("/investors?q=%2B8613800138000").get_data(as_text=True)
    (entry,) = _searched(app)
    assert entry.details["q"] == "+86 138****8000" and entry.details["matched_by"] == ["phone"]


def test_anyone_may_search_by_referral_code(app, client, login, zhang):
    with get_db(app).session_scope() as s:
        from growth.investors.models import Investor

        code = s.get(Investor, zhang).referral_code
    login("marketer")
    html = client.get("/investors", query_string={"q": code.lower()}).get_data(as_text=True)
    assert "u_10023" in html


def test_the_search_box_says_what_the_role_may_search_by(client, login):
    login("analyst")
    html = client.get("/investors").get_data(as_text=True)
    assert "平台用户ID、邀请码、手机号后四位或完整手机号" in html and "姓名、邮箱\"" not in html
    client.post("/logout")
    login("agent")
    html = client.get("/investors").get_data(as_text=True)
    assert "平台用户ID、邀请码、手机号（或后几位）、完整姓名或邮箱" in html and "记入审计日志" in html


@pytest.mark.parametrize("app_config", [{"INVESTOR_SEARCH_LIMIT": 3}])
def test_searches_are_rate_limited_per_user_with_a_clear_message(app, client, login, zhang, app_config):
    import time_machine

    with time_machine.travel(T0, tick=False) as clock:
        login("analyst")
        for n in range(3):
            assert client.get(f"/investors?q=u_{n}").status_code == 200
        assert client.get("/investors").status_code == 200  # the plain list is no search
        refused = client.get("/investors?q=u_1")
        assert refused.status_code == 429
        assert "搜索过于频繁" in refused.get_data(as_text=True)
        as_json = client.get("/investors?q=u_1", headers={"Accept": "application/json"})
        assert as_json.status_code == 429 and "error" in as_json.get_json()
        assert client.get("/investors/export.csv?q=u_1").status_code == 429
        other = app.test_client()
        from tests.factories import PASSWORD, make_user

        with get_db(app).session_scope(write=True) as s:
            colleague = make_user(s, role="analyst")
        other.post("/login", data={"email": colleague.email, "password": PASSWORD})
        assert other.get("/investors?q=u_1").status_code == 200  # per user
        clock.shift(61)
        assert client.get("/investors?q=u_1").status_code == 200


# --- raw events: masked for every role, raw only after a reveal and folded away -------------------


@pytest.fixture
def rich_event(app, zhang):  # type: ignore[no-untyped-def]
    """A stored event carrying an IP, a device id and extras a platform sent before ingestion dropped them."""
    with get_db(app).session_scope(write=True) as s:
        s.add(PlatformEvent(event_id="evt_2", type="user.registered", occurred_at=T0, user_id="u_10023",
                            payload=json.dumps({
                                "id": "evt_2", "type": "user.registered", "id_number": ID_NUMBER,
                                "user": {"id": "u_10023", "phone": PHONE, "name": "张三丰",
                                         "email": "zhang@example.com", "wechat_openid": "oWechat123",
                                         "id_card": ID_NUMBER},
                                "data": {"ip": "203.0.113.7", "device_id": "dev-0123456789abcdef",
                                         "channel_code": "baidu_sem", "bank_card": BANK_CARD},
                            }, ensure_ascii=False)))
    return zhang


@pytest.mark.parametrize("role", ["analyst", "marketer", "agent", "admin"])
def test_raw_events_are_masked_for_every_role_by_default(client, login, rich_event, role):
    login(role)
    html = client.get(f"/investors/{rich_event}").get_data(as_text=True)
    for secret in (ID_NUMBER, BANK_CARD, "203.0.113.7", "dev-0123456789abcdef", "oWechat123", "13800138000",
                   "张三丰", "zhang@example.com"):
        assert secret not in html
    assert "203.0.113.*" in html and "cdef" in html and "&#34;bank_card&#34;: &#34;****&#34;" in html
    assert "raw-event" not in html


def test_after_a_reveal_raw_events_are_behind_a_closed_toggle(client, login, rich_event):
    login("agent")
    client.post(f"/investors/{rich_event}/reveal", data=REASON)
    html = client.get(f"/investors/{rich_event}").get_data(as_text=True)
    assert '<details class="raw-event mt-1">' in html and "<details open" not in html
    toggle = html[html.index('<details class="raw-event'):]
    assert "显示原始事件" in toggle and "203.0.113.7" in toggle and "dev-0123456789abcdef" in toggle
    masked_part = html[:html.index('<details class="raw-event')]
    assert "203.0.113.7" not in masked_part.split('id="events"')[1]


def test_a_role_without_pii_never_sees_raw_events_even_with_a_forged_reveal(client, login, rich_event):
    login("analyst")
    with client.session_transaction() as browser:
        browser["investors_revealed"] = {str(rich_event): 4_000_000_000}
    html = client.get(f"/investors/{rich_event}").get_data(as_text=True)
    assert "raw-event" not in html and "203.0.113.7" not in html and "张三丰" not in html


# --- reveal: post, redirect, get ------------------------------------------------------------------


def test_a_reveal_redirects_to_the_investor_page_and_wears_off(app, client, login, zhang):
    import time_machine

    with time_machine.travel(T0, tick=False) as clock:
        login("agent")
        response = client.post(f"/investors/{zhang}/reveal", data=REASON)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/investors/{zhang}"
        assert "+86 13800138000" in client.get(f"/investors/{zhang}").get_data(as_text=True)
        assert len(_audit(app, "investor.pii_revealed")) == 1
        clock.shift(app.config["INVESTOR_REVEAL_SECONDS"] + 1)
        html = client.get(f"/investors/{zhang}").get_data(as_text=True)
        assert "13800138000" not in html and "+86 138****8000" in html


def test_a_reveal_of_an_unknown_investor_is_a_404_and_not_audited(app, client, login):
    login("agent")
    assert client.post("/investors/999999/reveal", data=REASON).status_code == 404
    assert _audit(app, "investor.pii_revealed") == []


# --- out-of-range parameters --------------------------------------------------------------------


def test_out_of_range_ids_pages_and_filters_are_answered_without_a_crash(client, login, zhang):
    login("agent")
    huge = "9" * 20
    assert client.get(f"/investors/{huge}").status_code == 404
    assert client.post(f"/investors/{huge}/reveal").status_code == 404
    assert client.get(f"/investors?page={huge}").status_code == 200
    assert client.get(f"/investors/{zhang}?page={huge}").status_code == 200
    assert client.get(f"/investors?channel={huge}").status_code == 400
    assert client.get("/investors?channel=abc").status_code == 400
    assert client.get(f"/investors/export.csv?channel={huge}").status_code == 400
    assert client.get(f"/investors?channel={2**31 - 1}").status_code == 200
    assert client.get(f"/investors?channel={2**31}").status_code == 400
    assert client.get(f"/investors/{2**31 - 1}").status_code == 404  # no such row
    assert client.get(f"/investors/{2**31}").status_code == 404  # no such route
