"""No name at rest in queued messages: campaigns queue the name slot, delivery sends the investor's name as it is now.

Real databases (SQLite and PostgreSQL), the run fanned out in SQL and by the fulfilment worker, delivery
through the real clients to the fake SMS, SMTP and WeChat servers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from campaigns import fanout
from campaigns.definition import parse
from channels.adapters.port import Channel, MessageClass
from channels.delivery import Deliverer
from channels.models import OutboxMessage
from channels.outbox import NewMessage, enqueue
from channels.services import record_statement
from channels.templates import NAME_SLOT
from growth.db import get_db
from growth.investors.models import Investor
from tests.campaign_runs import run_to_end, scheduled_campaign
from tests.factories import make_investor
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.fakes.smtp import FakeSmtp
from tests.fakes.wechat import FakeWechat

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside the quiet hours
TRICKY = "<b>李&四</b>"
NAMES = {"+8613900000001": "张三", "+8613900000002": TRICKY, "+8613900000003": "王😀五", "+8613900000004": None}
SMS = {"channel": "sms", "text": "{{ investor.name }}您好，{{ campaign.name }}已开始。回T退订",
       "template_code": "SMS_300", "params": {"name": "{{ investor.name }}", "what": "{{ campaign.name }}"}}
DOCUMENT = {"name": "理财节", "type": "broadcast", "class": "marketing",
            "schedule": {"at": "2026-12-03T10:00:00+08:00"}, "messages": [SMS]}


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    server = FakeAliyunSms().start()
    yield server
    server.stop()


def _aliyun_env(fake: FakeAliyunSms) -> dict[str, str]:
    return {"GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ENDPOINT": fake.endpoint, "GROWTH_SMS_PROTOCOL": "http",
            "GROWTH_SMS_ACCESS_KEY_ID": fake.access_key_id, "GROWTH_SMS_ACCESS_KEY_SECRET": fake.secret,
            "GROWTH_SMS_SIGN_NAME": "投资人增长", "GROWTH_MARKETING_CAPS": "off"}


def _deliver(app: Flask, env: dict[str, str]) -> None:
    app.config["CHANNEL_ENV"] = env
    deliverer = Deliverer(app, clock=lambda: NOW, draw=lambda a, b: b)
    try:
        while deliverer.run_once():
            pass
    finally:
        deliverer.close()


def _investors(app: Flask, channels: tuple[str, ...] = ("sms",)) -> dict[int, str | None]:
    with get_db(app).session_scope(write=True) as s:
        out = {}
        for n, (phone, name) in enumerate(NAMES.items()):
            investor = make_investor(s, phone=phone, name=name, registered_at=NOW - timedelta(days=10),
                                     email=f"i{n}@example.com", wechat_openid=f"o_fan_{n}")
            for channel in channels:
                record_statement(session=s, investor_id=investor.id, channel=channel, granted=True,
                                 occurred_at=NOW - timedelta(days=1), source="platform_event")
            out[investor.id] = name
        return out


def _run(app: Flask, document: dict[str, Any]) -> int:
    cid = scheduled_campaign(app, document, NOW)
    run_to_end(app, cid, NOW, chunk=3, limit=3)
    return cid


def _stored(app: Flask, cid: int) -> list[OutboxMessage]:
    with get_db(app).session_scope() as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.campaign_id == cid,
                                                         OutboxMessage.channel != "webhook")))
        s.expunge_all()
        return rows


def _no_name_at_rest(rows: list[OutboxMessage]) -> None:
    assert rows
    for row in rows:
        stored = json.dumps(row.content, ensure_ascii=False)
        assert NAME_SLOT in stored
        for name in filter(None, NAMES.values()):
            assert name not in stored and json.dumps(name, ensure_ascii=False)[1:-1] not in stored


@pytest.mark.parametrize("in_sql", [True, False], ids=["fanned-out-in-sql", "fulfilment-worker"])
def test_a_campaign_queues_no_name_and_each_investor_receives_their_own(app, aliyun, monkeypatch, in_sql, db_kind):
    names = _investors(app)
    assert fanout.in_sql(parse(DOCUMENT))
    if not in_sql:
        monkeypatch.setattr(fanout, "in_sql", lambda _definition: False)
    cid = _run(app, DOCUMENT)

    rows = _stored(app, cid)
    assert len(rows) == len(names)
    _no_name_at_rest(rows)
    assert {r.content["text"] for r in rows} == {f"{NAME_SLOT}您好，理财节已开始。回T退订"}  # one text for everyone
    assert {json.dumps(r.content["params"], ensure_ascii=False) for r in rows} == {
        json.dumps({"name": NAME_SLOT, "what": "理财节"}, ensure_ascii=False)}

    _deliver(app, _aliyun_env(aliyun))

    assert {r.status for r in _stored(app, cid)} == {"sent"}
    received = {p["PhoneNumbers"]: json.loads(p["TemplateParam"]) for p in aliyun.sent}
    assert received == {phone.removeprefix("+86"): {"name": name or "", "what": "理财节"}
                        for phone, name in NAMES.items()}


def test_a_name_corrected_after_queueing_is_the_name_sent(app, aliyun, db_kind):
    names = _investors(app)
    cid = _run(app, DOCUMENT)
    first = min(names)
    with get_db(app).session_scope(write=True) as s:
        s.get_one(Investor, first).name = "张三丰"

    _deliver(app, _aliyun_env(aliyun))

    [row] = [r for r in _stored(app, cid) if r.investor_id == first]
    assert row.content["text"].startswith(NAME_SLOT)  # the stored body did not change …
    [sent] = [json.loads(p["TemplateParam"]) for p in aliyun.sent if p["PhoneNumbers"] == "13900000001"]
    assert sent["name"] == "张三丰"  # … the investor got the name as it is at send time


def test_an_html_email_gets_the_name_escaped_and_the_text_part_as_written(app, db_kind):
    _investors(app, channels=("email",))
    mail = {"channel": "email", "subject": "{{ investor.name }}，理财节来了",
            "text": "{{ investor.name }}您好，理财节已开始。",
            "html": "<p>{{ investor.name }}您好，<b>理财节</b>已开始。</p>"}
    cid = _run(app, {**DOCUMENT, "messages": [mail]})
    _no_name_at_rest(_stored(app, cid))
    smtp = FakeSmtp().start()
    try:
        _deliver(app, {"GROWTH_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "GROWTH_MAIL_FROM": "增长 <hi@example.com>",
                       "GROWTH_MARKETING_CAPS": "off"})
        received = {m.rcpt_tos[0]: m.message for m in smtp.messages}
    finally:
        smtp.stop()

    tricky = received["i1@example.com"]
    assert tricky["Subject"] == f"{TRICKY}，理财节来了"
    assert tricky.get_body(("plain",)).get_content().strip() == f"{TRICKY}您好，理财节已开始。"
    assert tricky.get_body(("html",)).get_content().strip() == (
        "<p>&lt;b&gt;李&amp;四&lt;/b&gt;您好，<b>理财节</b>已开始。</p>")
    nameless = received["i3@example.com"]
    assert nameless.get_body(("html",)).get_content().strip() == "<p>您好，<b>理财节</b>已开始。</p>"
    assert all("\u2063" not in m.as_string() for m in received.values())


def test_a_wechat_notice_carries_the_name_in_its_data_and_a_mass_send_none(app, db_kind):
    names = _investors(app, channels=("wechat",))
    notice = {"channel": "wechat", "kind": "template", "template_id": "tmpl_abc",
              "data": {"first": "{{ investor.name }}，红包已到账", "keyword1": "{{ campaign.name }}"}}
    cid = _run(app, {**DOCUMENT, "class": "service", "messages": [notice]})
    _no_name_at_rest(_stored(app, cid))
    with get_db(app).session_scope(write=True) as s:
        for investor_id in names:
            enqueue(NewMessage(sender="campaign", campaign_id=cid + 1, cause="mass", channel=Channel.WECHAT,
                               message_class=MessageClass.MARKETING, investor_id=investor_id, user_id=None,
                               content={"wechat_kind": "mass", "text": f"{NAME_SLOT}您好，理财节来了"}),
                    session=s, now=NOW)
    fake = FakeWechat().start()
    try:
        _deliver(app, {"GROWTH_WECHAT_APPID": fake.appid, "GROWTH_WECHAT_SECRET": fake.secret,
                       "GROWTH_WECHAT_API_BASE": fake.api_base, "GROWTH_MARKETING_CAPS": "off"})
        notices = {c.body["touser"]: c.body["data"] for c in fake.calls("message/template/send")}
        [mass] = fake.calls("message/mass/send")
    finally:
        fake.stop()

    assert notices["o_fan_1"]["first"]["value"] == f"{TRICKY}，红包已到账"
    assert notices["o_fan_3"]["first"]["value"] == "，红包已到账"
    assert {n["keyword1"]["value"] for n in notices.values()} == {"理财节"}
    # One text for every follower cannot carry each one's name: the slot goes as "" for all.
    assert mass.body["text"]["content"] == "您好，理财节来了"
