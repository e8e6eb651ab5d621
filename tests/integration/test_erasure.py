"""`growth investors erase`: after it no table, column or log line holds the investor's personal data, and the
funnel and channel economics say what they said before (both databases)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from channels.adapters.port import Channel, MessageClass
from channels.delivery import Deliverer
from channels.models import ConsentStatement, OutboxMessage, WechatFollower
from channels.outbox import NewMessage, enqueue
from channels.services import record_statement
from growth.audit.models import AuditEntry
from growth.cli import cli
from growth.crm.models import CrmNote
from growth.crm.services import add_note, log_investor_call
from growth.db import Base, get_db
from growth.events.models import PlatformEvent
from growth.events.processor import drain, reset_projections
from growth.investors.models import Investor
from growth.investors.rules import referral_code_for
from growth.privacy.rules import ERASED_TEXT
from growth.projections import projections_of
from growth.referrals.models import Referral
from tests.events import event, investment, post_events
from tests.factories import make_token, make_user

PHONE = "+8613812345678"
DIGITS = "13812345678"
NAME = "王小明"
EMAIL = "wang.xiaoming@example.com"
IP = "203.0.113.77"
DEVICE = "dev-7f3a-erase-me"
OPENID = "oErase_openid_123456"
NEEDLES = (PHONE, DIGITS, NAME, EMAIL.lower(), IP, DEVICE, OPENID)
USER = "u_erase"
NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # noon in Shanghai: outside the quiet hours
T0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _text(value: Any) -> str:
    """Return a stored value as text people would read (JSON without escapes, so 王 is 王, not \\u738b)."""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    if text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), ensure_ascii=False)
        except ValueError:
            return text
    return text


def personal_data_found(app: Flask) -> list[str]:
    """Scan every column of every table for the investor's personal data; return where it was found."""
    found = []
    with get_db(app).session_scope() as s:
        for table in Base.metadata.sorted_tables:
            for row in s.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    text = _text(value).lower()
                    found += [f"{table.name}.{column}: {n}" for n in NEEDLES if n.lower() in text]
    return found


@pytest.fixture
def world(app: Flask, client: Any, caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    """One investor seeded through the events API with personal data everywhere, and the other things that hold it."""
    caplog.set_level(logging.DEBUG)  # every log line from ingest, processing, delivery and erasure is looked at
    referrer = "u_referrer"
    events = [
        event("user.registered", referrer, T0 - timedelta(days=2), {"channel_code": "wechat_ads"},
              phone="+8613900000001", name="李四"),
        event("user.registered", USER, T0, {"channel_code": "baidu_sem", "click_id": "clk-1", "device_id": DEVICE,
                                            "ip": IP, "referral_code": referral_code_for(referrer)},
              phone=PHONE, name=NAME, email=EMAIL, wechat_openid=OPENID),
        event("user.kyc_verified", USER, T0 + timedelta(hours=1), name=NAME),
        event("user.consent_changed", USER, T0 + timedelta(hours=2), {"channel": "sms", "granted": True}),
        event("funds.deposited", USER, T0 + timedelta(hours=3), {"deposit_id": "d1", "amount": "5000.00"},
              phone=PHONE),
        investment(USER, T0 + timedelta(hours=4), "inv-1", amount="5000.00", term_days=90, email=EMAIL),
        investment(USER, T0 + timedelta(days=3), "inv-2", amount="2000.00", term_days=30),
    ]
    assert post_events(client, events).get_json()["accepted"] == len(events)
    drain(app)
    with get_db(app).session_scope(write=True) as s:
        investor = s.scalars(select(Investor).where(Investor.platform_user_id == USER)).one()
        assert (investor.phone, investor.name, investor.email) == (PHONE, NAME, EMAIL)
        assert s.get(Referral, investor.id) is not None  # referred by u_referrer
        agent = make_user(s, role="agent")
        add_note(investor.id, f"{NAME} 说手机 {PHONE} 晚上打", author_id=agent.id, session=s, now=NOW)
        log_investor_call(investor.id, task_id=None, outcome="interested", note=f"{NAME}想了解90天标，邮箱{EMAIL}",
                          next_follow_up_at=None, agent_id=agent.id, may_manage=True, session=s, now=NOW)
        record_statement(session=s, investor_id=investor.id, channel="sms", granted=False, occurred_at=NOW,
                         source="sms_reply", evidence={"content": f"TD {NAME}", "send_time": "2026-12-03 12:00:00"},
                         event_id="sms_reply:seq:erase-1")
        s.add(WechatFollower(openid=OPENID, subscribed=True, scene="baidu_sem", first_scene="baidu_sem",
                             changed_at=NOW))
        message_id = enqueue(NewMessage(sender="crm", campaign_id=None, cause="erase-test", channel=Channel.SMS,
                                        message_class=MessageClass.SERVICE, investor_id=investor.id, user_id=USER,
                                        content={"text": f"{NAME}您好，您的理财已到期", "template_code": "SMS_1",
                                                 "params": {"name": NAME}}), session=s, now=NOW)
        queued = enqueue(NewMessage(sender="crm", campaign_id=None, cause="erase-test-2", channel=Channel.EMAIL,
                                    message_class=MessageClass.SERVICE, investor_id=investor.id, user_id=USER,
                                    content={"subject": f"{NAME}的月报", "text": f"亲爱的{NAME}"}),
                         session=s, now=NOW + timedelta(days=1))
        token = make_token(s, role="analyst")
        investor_id = investor.id
    app.config["CHANNEL_ENV"] = {}
    Deliverer(app, clock=lambda: NOW, draw=lambda a, b: b).run_once()
    with get_db(app).session_scope() as s:
        sent = s.get_one(OutboxMessage, message_id)
        assert sent.status in ("sent", "delivered") and sent.recipient_masked
    return {"investor_id": investor_id, "token": token, "message_id": message_id, "queued": queued}


def _numbers(client: Any, token: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    out = {}
    for group_by in ("none", "channel", "week"):
        r = client.get("/api/v1/funnel", headers=headers,
                       query_string={"start": "2026-11-01", "end": "2026-11-30", "group_by": group_by})
        assert r.status_code == 200
        out[f"funnel:{group_by}"] = r.get_json()
    r = client.get("/api/v1/acquisition/economics", headers=headers,
                   query_string={"start": "2026-11-01", "end": "2026-11-30", "window_days": 30})
    assert r.status_code == 200
    out["economics"] = r.get_json()
    return out


def _erase(app: Flask, *args: str, input: str | None = None) -> Any:
    return app.test_cli_runner().invoke(cli, ["investors", "erase", USER, *args], input=input)


def test_after_erasure_no_table_or_log_holds_the_investor_and_the_numbers_are_unchanged(app, client, world, caplog):
    before = _numbers(client, world["token"])
    assert personal_data_found(app)  # the scan finds what is there

    result = _erase(app, "--reason", "客户申请删除（工单 8812）", "--yes")

    assert result.exit_code == 0, result.output
    assert personal_data_found(app) == []
    assert _numbers(client, world["token"]) == before
    records = [*caplog.get_records("setup"), *caplog.records]
    assert any(r.name.startswith("growth.privacy") for r in records)  # the erasure's own line was captured
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records).lower()
    assert [n for n in NEEDLES if n.lower() in logged] == []
    assert not [n for n in NEEDLES if n.lower() in result.output.lower()]
    with get_db(app).session_scope() as s:
        investor = s.get_one(Investor, world["investor_id"])
        assert investor.erased_at is not None
        assert (investor.phone, investor.name, investor.email) == (None, None, None)
        assert (investor.phone_index, investor.phone_tail_index, investor.name_index, investor.email_index) == (
            None, None, None, None)  # nothing left to find them by
        assert (investor.channel_code_given, investor.click_id) == ("baidu_sem", "clk-1")
        assert investor.investment_total_fen == 700_000 and investor.first_investment_at is not None
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "investor.erased")).one()
        assert entry.details["reason"] == "客户申请删除（工单 8812）"
        assert entry.target_id == str(world["investor_id"])
        # Consent evidence: that it was withdrawn, when and how, stays.
        statement = s.scalars(select(ConsentStatement).where(ConsentStatement.source == "sms_reply")).one()
        assert (statement.granted, statement.channel, statement.evidence["send_time"]) == (False, "sms",
                                                                                          "2026-12-03 12:00:00")
        queued = s.get_one(OutboxMessage, world["queued"])
        assert (queued.status, queued.error_code) == ("unreachable", "erased")
        assert s.scalars(select(PlatformEvent.type).where(PlatformEvent.user_id == USER)).all()


def test_a_later_or_replayed_event_does_not_bring_erased_data_back(app, client, world):
    assert _erase(app, "--reason", "客户申请", "--yes").exit_code == 0
    numbers = _numbers(client, world["token"])
    again = [event("user.registered", USER, T0 - timedelta(hours=1), {"channel_code": "baidu_sem", "ip": IP,
                                                                     "device_id": DEVICE},
                   phone=PHONE, name=NAME, email=EMAIL),
             event("user.card_bound", USER, T0 + timedelta(hours=5), wechat_openid=OPENID, phone=PHONE)]
    assert post_events(client, again).get_json()["accepted"] == 2
    drain(app)

    assert personal_data_found(app) == []
    with get_db(app).session_scope() as s:
        investor = s.get_one(Investor, world["investor_id"])
        assert (investor.phone, investor.name, investor.email, investor.registration_ip) == (None, None, None, None)
        assert investor.card_bound_at is not None  # the event's facts still count
    # A replay rebuilds everything from the log: still erased, the same numbers as after the new events.
    after_new = _numbers(client, world["token"])
    with get_db(app).session_scope(write=True) as s:
        reset_projections(session=s, projections=projections_of(app))
    drain(app)
    assert personal_data_found(app) == []
    assert _numbers(client, world["token"]) == after_new
    assert after_new["funnel:none"]["total"]["counts"][0] == numbers["funnel:none"]["total"]["counts"][0]


def test_erasing_twice_is_fine_and_says_so(app, world):
    first = _erase(app, "--reason", "客户申请", "--yes")
    second = _erase(app, "--reason", "客户再次申请", "--yes")

    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert "erased again" in second.output
    assert personal_data_found(app) == []
    with get_db(app).session_scope() as s:
        notes = s.execute(select(AuditEntry.details).where(AuditEntry.action == "investor.erased")).scalars().all()
        assert [d["again"] for d in notes] == [False, True]
        assert s.scalars(select(CrmNote.body)).all() == [ERASED_TEXT]


def test_erase_needs_a_reason_and_a_known_investor_and_asks_first(app, world):
    assert _erase(app, "--yes").exit_code != 0  # --reason is required
    unknown = app.test_cli_runner().invoke(cli, ["investors", "erase", "u_nobody", "--reason", "x", "--yes"])
    assert unknown.exit_code != 0 and "Traceback" not in unknown.output
    declined = _erase(app, "--reason", "客户申请", input="n\n")
    assert declined.exit_code != 0
    assert personal_data_found(app)  # nothing erased without the confirmation
    with get_db(app).session_scope() as s:
        assert s.get_one(Investor, world["investor_id"]).erased_at is None


def test_the_scan_reads_every_table(app):
    assert {t.name for t in Base.metadata.sorted_tables} >= {"platform_events", "investors", "outbox_messages",
                                                             "crm_notes", "crm_calls", "consent_statements",
                                                             "audit_entries", "wechat_followers", "referrals"}
    assert date(2026, 11, 30) > T0.date()
