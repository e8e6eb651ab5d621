"""Referral pages and API through the test client: the referral-code API, share links and visits, the review
queue (masking by role, decisions with notes, audit), CSV, the settings page, the investor tree and the stats."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from growth.audit.models import AuditEntry
from growth.db import get_db
from growth.events.processor import drain
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.referrals.models import Referral, ReferralVisit
from tests.events import event, investment, post_events
from tests.factories import make_token

T0 = datetime(2026, 10, 5, 2, 0, tzinfo=UTC)
D = timedelta(days=1)
REFERRER_PHONE = "+8613812345678"
REFEREE_PHONE = "+8617012345678"  # a virtual operator: flagged for review
REFERRER_IP, REFEREE_IP = "198.51.100.7", "203.0.113.9"


@pytest.fixture
def flagged(app, client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """u_ref referred u_b (flagged: virtual operator) and u_c (flagged too), each qualified; return their ids."""
    events = [event("user.registered", "u_ref", T0, {"ip": REFERRER_IP, "device_id": "d1"}, phone=REFERRER_PHONE)]
    for n, uid in enumerate(("u_b", "u_c")):
        events.append(event("user.registered", uid, T0 + D, {"referral_code": referral_code_for("u_ref"),
                                                              "ip": REFEREE_IP, "device_id": f"d{n + 2}"},
                            phone=REFEREE_PHONE if uid == "u_b" else "+8616712345678"))
        events.append(investment(uid, T0 + 2 * D, f"{uid}-1"))
    assert post_events(client, events).json["rejected"] == []
    drain(app)
    with get_db(app).session_scope() as s:
        return dict(s.execute(select(Investor.platform_user_id, Investor.id)).all())


# --- the API ---------------------------------------------------------------------------------------------


def test_the_referral_code_api_answers_valid_with_the_referrer_in_any_case(app, client, flagged):
    with get_db(app).session_scope(write=True) as s:
        token = make_token(s, role="analyst")
    headers = {"Authorization": f"Bearer {token}"}
    code = referral_code_for("u_ref")
    for asked in (code, code.lower()):
        response = client.get(f"/api/v1/referral-codes/{asked}", headers=headers)
        assert response.status_code == 200 and response.json == {"valid": True, "referrer": "u_ref"}
    unknown = client.get("/api/v1/referral-codes/NOSUCH12", headers=headers)
    assert unknown.status_code == 200 and unknown.json == {"valid": False}
    assert client.get(f"/api/v1/referral-codes/{code}").status_code == 401


def test_the_referral_code_api_is_described_in_the_openapi_document(client):
    spec = client.get("/api/v1/openapi.json").json
    assert "get" in spec["paths"]["/api/v1/referral-codes/{code}"]


# --- share links -----------------------------------------------------------------------------------------


def test_a_share_link_redirects_to_registration_with_the_code_and_counts_a_visitor_once(app, client, flagged):
    app.config["REFERRAL_LANDING_URL"] = "https://platform.example.com/register?from=invite"
    code = referral_code_for("u_ref")
    for _ in range(2):
        response = client.get(f"/r/{code.lower()}", environ_base={"REMOTE_ADDR": "192.0.2.1"})
        assert response.status_code == 302
        assert response.headers["Location"] == f"https://platform.example.com/register?from=invite&referral_code={code}"
    client.get(f"/r/{code}", environ_base={"REMOTE_ADDR": "192.0.2.2"})
    with get_db(app).session_scope() as s:
        visits = s.scalars(select(ReferralVisit)).all()
        assert len(visits) == 2
        assert all("192.0.2" not in v.visitor for v in visits)  # no address stored, only a keyed hash


def test_an_unknown_share_code_lands_on_registration_without_a_code_and_counts_nothing(app, client):
    response = client.get("/r/NOSUCH12")
    assert response.status_code == 302 and "referral_code" not in response.headers["Location"]
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ReferralVisit)) == 0


def test_the_qr_code_of_a_referral_code_is_drawn_as_png_and_svg(app, client, login, flagged):
    login("marketer")
    code = referral_code_for("u_ref")
    png = client.get(f"/referrals/codes/{code}/qr.png")
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    svg = client.get(f"/referrals/codes/{code}/qr.svg")
    assert svg.status_code == 200 and b"<svg" in svg.data
    assert client.get("/referrals/codes/NOSUCH12/qr.png").status_code == 404


# --- the review queue ---------------------------------------------------------------------------------------


def test_the_review_queue_shows_flagged_referrals_masked_to_a_role_without_reveal(app, client, login, flagged):
    login("approver")
    page = client.get("/referrals/review").get_data(as_text=True)
    assert "u_b" in page and "u_c" in page and "虚拟运营商" in page
    for secret in (REFERRER_PHONE[3:], REFEREE_PHONE[3:], REFERRER_IP, REFEREE_IP, "198.51.100", "203.0.113"):
        assert secret not in page
    assert "170****5678" in page and "198.51.*.*" in page
    assert 'id="reveal-pii"' not in page
    assert client.post("/referrals/review/reveal").status_code == 403


def test_a_role_with_reveal_sees_full_details_only_after_an_audited_reveal(app, client, login, flagged):
    login("admin")
    assert REFEREE_IP not in client.get("/referrals/review").get_data(as_text=True)
    assert client.post("/referrals/review/reveal").status_code == 302
    page = client.get("/referrals/review").get_data(as_text=True)
    assert REFEREE_IP in page and REFEREE_PHONE in page
    with get_db(app).session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.action == "referral.pii_revealed")) == 1


def rows_of(response: Any) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_the_csv_is_masked_unless_a_role_with_reveal_asks_for_full_details(app, client, login, flagged):
    login("approver")
    text = client.get("/referrals/export.csv").get_data(as_text=True)
    assert REFEREE_PHONE not in text and REFEREE_IP not in text and "170****5678" in text
    assert client.get("/referrals/export.csv?pii=1").status_code == 403
    client.post("/logout")
    login("admin")
    rows = rows_of(client.get("/referrals/export.csv?pii=1&status=in_review"))
    assert {r["referee"] for r in rows} == {"u_b", "u_c"}
    assert {r["referee_ip"] for r in rows} == {REFEREE_IP}
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "referrals.exported")
                          .order_by(AuditEntry.id.desc())).first()
        assert entry is not None and entry.details["unmasked"] is True


def test_a_decision_needs_a_note_and_is_audited(app, client, login, flagged):
    login("approver")
    referee = flagged["u_b"]
    refused = client.post(f"/referrals/{referee}/decision", data={"decision": "approved", "note": "  "})
    assert refused.status_code == 302
    with get_db(app).session_scope() as s:
        assert s.get(Referral, referee).status == "in_review"  # type: ignore[union-attr]
    done = client.post(f"/referrals/{referee}/decision", data={"decision": "rejected", "note": "同一人多号"},
                       follow_redirects=True)
    assert "已审核" in done.get_data(as_text=True)
    with get_db(app).session_scope() as s:
        r = s.get(Referral, referee)
        assert r is not None and (r.status, r.decision_note, r.rejected_reason) == ("rejected", "同一人多号",
                                                                                     "staff_rejected")
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "referral.rejected")).one()
        assert entry.details["note"] == "同一人多号" and entry.details["referee"] == "u_b"
    again = client.post(f"/referrals/{referee}/decision", data={"decision": "approved", "note": "x"},
                        follow_redirects=True)
    assert "不在待审核状态" in again.get_data(as_text=True)


def test_a_marketer_sees_the_queue_but_may_not_decide(client, login, flagged):
    login("marketer")
    page = client.get("/referrals/review").get_data(as_text=True)
    assert "u_b" in page and "review-form" not in page
    assert client.post(f"/referrals/{flagged['u_b']}/decision",
                       data={"decision": "approved", "note": "ok"}).status_code == 403


def test_an_empty_queue_says_so(client, login):
    login("approver")
    assert "没有待审核的邀请" in client.get("/referrals/review").get_data(as_text=True)


# --- settings --------------------------------------------------------------------------------------------------


def test_the_settings_page_refuses_a_bad_value_in_chinese_and_english(client, login):
    login("admin")
    form = {"qualify_amount": "abc", "min_term_days": "30", "window_days": "30", "hold_days": "30",
            "max_referees_per_day": "5", "subnet_window_hours": "72", "virtual_prefixes": "170,171"}
    refused = client.post("/referrals/settings", data=form)
    assert refused.status_code == 400 and "请填写大于 0 的金额" in refused.get_data(as_text=True)
    client.get("/lang/en")
    english = client.post("/referrals/settings", data=form)
    assert english.status_code == 400 and "greater than 0" in english.get_data(as_text=True)


def test_saving_settings_changes_them_and_is_audited(app, client, login):
    login("admin")
    form = {"qualify_amount": "2000.00", "min_term_days": "60", "window_days": "30", "hold_days": "30",
            "max_referees_per_day": "5", "subnet_window_hours": "72", "virtual_prefixes": "170,171,1703"}
    assert client.post("/referrals/settings", data=form).status_code == 302
    page = client.get("/referrals/settings").get_data(as_text=True)
    assert 'value="2000.00"' in page and 'value="170,171,1703"' in page
    with get_db(app).session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "referral_settings.changed")).one()
        assert entry.details["changes"]["qualify_amount"] == ["1000.00", "2000.00"]


def test_only_an_admin_opens_the_settings(client, login):
    login("approver")
    assert client.get("/referrals/settings").status_code == 403


# --- the investor page and the program statistics ---------------------------------------------------------------


def test_the_investor_page_shows_the_share_link_and_the_tree_two_levels_deep(app, client, login, flagged):
    assert post_events(client, [event("user.registered", "u_d", T0 + 3 * D,
                                      {"referral_code": referral_code_for("u_b")})]).json["rejected"] == []
    drain(app)
    login("analyst")
    page = client.get(f"/investors/{flagged['u_ref']}").get_data(as_text=True)
    assert f"/r/{referral_code_for('u_ref')}" in page
    tree = page[page.index('id="referral-tree"'):]
    assert tree.index("u_b") < tree.index("u_d") and "u_c" in tree
    assert 'data-status="in_review"' in tree


def test_the_stats_page_counts_the_program_by_week_with_a_chart_and_csv(app, client, login, flagged):
    client.get(f"/r/{referral_code_for('u_ref')}")
    login("analyst")
    start = "2026-09-28"  # a Monday
    page = client.get(f"/dashboards/referrals?start={start}&end=2026-10-11")
    assert page.status_code == 200 and "plotly-chart" in page.get_data(as_text=True)
    rows = rows_of(client.get(f"/dashboards/referrals?start={start}&end=2026-10-11&format=csv"))
    week = {r["week_start"]: r for r in rows}["2026-10-05"]
    # u_ref registered 10-05 and referred u_b and u_c on 10-06: a cohort of 3 with 2 referred → K = 0.667.
    assert (week["registrations"], week["qualified"], week["confirmed"], week["cohort"],
            week["referred_by_cohort"]) == ("2", "2", "0", "3", "2")
    assert week["k_factor"] == "0.6667"
    assert client.get("/dashboards/referrals?start=2026-10-11&end=2026-10-01").status_code == 400
