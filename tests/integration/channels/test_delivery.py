"""Delivery: checks at send time, outcomes, retries, fallbacks and caps (real databases and clients, fake providers)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from channels.adapters.port import EXTENSION, Channel, MessageClass
from channels.delivery import Deliverer, release_holds
from channels.models import CapUsage, ChannelSetting, OutboxMessage, Unreachable, WechatMassJob
from channels.outbox import Fallback, NewMessage, enqueue
from channels.services import record_statement
from growth.audit.models import AuditEntry
from growth.db import get_db
from tests.factories import make_investor
from tests.fakes.aliyun_sms import FakeAliyunSms
from tests.fakes.smtp import FakeSmtp
from tests.fakes.wechat import FakeWechat

NOTICE = {"text": "您的理财即将到期", "template_code": "SMS_200", "params": {}}
NOON = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside the quiet hours
MARKETING_SMS = {"text": "您好，理财节加息券已到账。回T退订", "template_code": "SMS_100", "params": {"name": "李"}}


def _at(value: datetime) -> Any:
    return lambda: value


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    server = FakeAliyunSms().start()
    yield server
    server.stop()


def _aliyun_env(fake: FakeAliyunSms, **extra: str) -> dict[str, str]:
    return {"GROWTH_SMS_PROVIDER": "aliyun", "GROWTH_SMS_ENDPOINT": fake.endpoint, "GROWTH_SMS_PROTOCOL": "http",
            "GROWTH_SMS_ACCESS_KEY_ID": fake.access_key_id, "GROWTH_SMS_ACCESS_KEY_SECRET": fake.secret,
            "GROWTH_SMS_SIGN_NAME": "投资人增长", **extra}


def _deliverer(app: Flask, env: dict[str, str] | None = None, now: datetime = NOON, **kw: Any) -> Deliverer:
    app.config["CHANNEL_ENV"] = env or {}
    return Deliverer(app, clock=_at(now), draw=lambda a, b: b, **kw)


def _queue(session, investor, *, channel: Channel = Channel.SMS, cls: MessageClass = MessageClass.MARKETING,
           content: dict | None = None, cause: str = "evt-1", campaign_id: int | None = 1,
           fallbacks: tuple = (), now: datetime = NOON) -> int:
    message_id = enqueue(NewMessage(sender="campaign", campaign_id=campaign_id, cause=cause, channel=channel,
                                    message_class=cls, investor_id=investor.id, user_id=investor.platform_user_id,
                                    content=content if content is not None else MARKETING_SMS, fallbacks=fallbacks),
                         session=session, now=now)
    assert message_id is not None
    session.commit()
    return message_id


def _consent(session, investor, channel: str = "sms", granted: bool = True) -> None:
    record_statement(session=session, investor_id=investor.id, channel=channel, granted=granted,
                     occurred_at=NOON - timedelta(days=1), source="platform_event")
    session.commit()


def _status(session, message_id: int) -> OutboxMessage:
    session.commit()  # a fresh snapshot: SQLite keeps a reader's view until its transaction ends
    session.expire_all()
    return session.get_one(OutboxMessage, message_id)


def test_a_service_sms_on_the_console_is_delivered_and_the_log_shows_the_masked_number(app, session, db_kind):
    investor = make_investor(session, phone="+8613912345678")
    mid = _queue(session, investor, cls=MessageClass.SERVICE, content={"text": "您的红包已到账"})

    assert _deliverer(app).run_once() == 1

    row = _status(session, mid)
    assert (row.status, row.attempts, row.provider, row.recipient_masked) == (
        "delivered", 1, "console", "+86 139****5678")
    console = app.extensions[EXTENSION]
    assert console is not None


def test_marketing_without_a_consent_statement_is_skipped_and_with_one_is_sent(app, session, aliyun, db_kind):
    quiet, willing = make_investor(session), make_investor(session)
    _consent(session, willing)
    skipped, sent = _queue(session, quiet), _queue(session, willing)

    _deliverer(app, _aliyun_env(aliyun)).run_once()

    assert _status(session, skipped).status == "skipped_no_consent"
    assert _status(session, sent).status == "sent"
    assert [p["OutId"] for p in aliyun.sent] == [str(sent)]  # the OutId the receipts come back with


def test_an_opt_out_after_queueing_stops_the_message_at_send_time(app, session, db_kind):
    investor = make_investor(session)
    _consent(session, investor)
    mid = _queue(session, investor)
    record_statement(session=session, investor_id=investor.id, channel="sms", granted=False,
                     occurred_at=NOON - timedelta(hours=1), source="sms_reply", event_id="reply-1")
    session.commit()

    _deliverer(app).run_once()

    assert _status(session, mid).status == "skipped_no_consent"


@pytest.mark.parametrize(("local", "held"), [
    ("20:59:59", False), ("21:00:00", True), ("23:30:00", True), ("07:59:59", True), ("08:00:00", False),
])
def test_quiet_hour_edges_in_shanghai_with_the_server_clock_in_utc(app, session, local, held):
    hour, minute, second = map(int, local.split(":"))
    shanghai = datetime(2026, 12, 3, hour, minute, second, tzinfo=UTC) - timedelta(hours=8)
    investor = make_investor(session)
    _consent(session, investor)
    mid = _queue(session, investor, now=shanghai)
    service = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE, cause="evt-s",
                     now=shanghai)

    _deliverer(app, now=shanghai).run_once()

    row = _status(session, mid)
    assert _status(session, service).status == "delivered"  # service notices ignore quiet hours
    if not held:
        assert row.status == "delivered"
        return
    assert (row.status, row.hold_reason, row.attempts) == ("deferred", "quiet_hours", 0)
    end = row.due_at.astimezone(UTC)
    assert (end.hour, end.minute, end.second) == (0, 0, 0)  # 08:00 in Shanghai
    assert end > shanghai and end - shanghai <= timedelta(hours=11)
    _deliverer(app, now=end - timedelta(seconds=1)).run_once()
    assert _status(session, mid).status == "deferred"
    _deliverer(app, now=end).run_once()  # released at the period's end, never dropped
    assert _status(session, mid).status == "delivered"


def test_turning_quiet_hours_off_releases_deferred_messages_at_once(app, session):
    evening = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    investor = make_investor(session)
    _consent(session, investor)
    mid = _queue(session, investor, now=evening)
    _deliverer(app, now=evening).run_once()
    assert _status(session, mid).status == "deferred"

    with get_db(app).session_scope(write=True) as s:
        assert release_holds(session=s, now=evening) == 1
    _deliverer(app, {"GROWTH_QUIET_HOURS": "off"}, now=evening).run_once()

    assert _status(session, mid).status == "delivered"


def test_a_provider_refusal_to_retry_backs_off_then_the_message_is_dead(app, session, aliyun, db_kind):
    investor = make_investor(session)
    mid = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE)
    aliyun.queue(*["isp.SYSTEM_ERROR"] * 3)
    env = _aliyun_env(aliyun, GROWTH_DELIVERY_MAX_ATTEMPTS="3")

    _deliverer(app, env).run_once()
    row = _status(session, mid)
    assert (row.status, row.attempts, row.error_code) == ("queued", 1, "isp.SYSTEM_ERROR")
    assert row.due_at - NOON <= timedelta(seconds=30)  # the first retry comes within 30 s (spec: 60 s)
    second = row.due_at
    _deliverer(app, env, now=second).run_once()
    row = _status(session, mid)
    assert (row.status, row.attempts) == ("queued", 2)
    assert row.due_at - second <= timedelta(seconds=60)
    _deliverer(app, env, now=row.due_at).run_once()

    row = _status(session, mid)
    assert (row.status, row.attempts) == ("dead", 3)
    assert "isp.SYSTEM_ERROR" in row.error
    assert len(aliyun.received) == 3


def test_a_bad_number_makes_the_investor_unreachable_until_their_number_changes(app, session, aliyun, db_kind):
    investor = make_investor(session)
    first = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE)
    aliyun.queue("isv.MOBILE_NUMBER_ILLEGAL")
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    assert _status(session, first).status == "unreachable"
    assert session.scalar(select(Unreachable.code)) == "isv.MOBILE_NUMBER_ILLEGAL"

    second = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE, cause="evt-2")
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    assert _status(session, second).status == "unreachable"
    assert len(aliyun.received) == 1  # not tried again on the refused number

    investor.phone = "+8613700001111"  # new contact data
    session.commit()
    third = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE, cause="evt-3")
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    assert _status(session, third).status == "sent"


def test_no_balance_fails_the_message_and_pauses_the_sms_channel_for_later_ones(app, session, aliyun, db_kind):
    investor = make_investor(session)
    first = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE)
    aliyun.queue("isv.AMOUNT_NOT_ENOUGH")
    _deliverer(app, _aliyun_env(aliyun)).run_once()

    assert _status(session, first).status == "failed"
    assert session.get_one(ChannelSetting, "sms_paused").value == "true"
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "channel_settings.changed")).one()
    assert entry.actor == "delivery" and "isv.AMOUNT_NOT_ENOUGH" in entry.details["reason"]  # the admins see why
    later = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE, cause="evt-2")
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    row = _status(session, later)
    assert (row.status, row.hold_reason) == ("deferred", "paused")
    assert len(aliyun.received) == 1


def test_a_wechat_notice_to_an_investor_without_an_openid_falls_back_to_sms(app, session, db_kind):
    investor = make_investor(session, wechat_openid=None)
    mid = _queue(session, investor, channel=Channel.WECHAT, cls=MessageClass.SERVICE,
                 content={"wechat_kind": "template", "template_id": "TPL", "data": {"first": "到账"}},
                 fallbacks=(Fallback(Channel.SMS, {"text": "红包已到账"}),))
    env = {"GROWTH_WECHAT_APPID": "wx_app", "GROWTH_WECHAT_SECRET": "s3cret",
           "GROWTH_WECHAT_API_BASE": "http://127.0.0.1:9/cgi-bin/"}

    _deliverer(app, env).run_once()
    _deliverer(app, env).run_once()

    assert _status(session, mid).status == "unreachable"
    fallback = session.scalars(select(OutboxMessage).where(OutboxMessage.fallback_of == mid)).one()
    assert (fallback.channel, fallback.status, fallback.content["text"]) == ("sms", "delivered", "红包已到账")


def test_a_wechat_unfollowed_refusal_hands_over_to_sms_and_marks_wechat_unreachable(app, session, db_kind):
    fake = FakeWechat().start()
    try:
        investor = make_investor(session, wechat_openid="o_follower_1")
        fake.fail("message/template/send", 43004)
        mid = _queue(session, investor, channel=Channel.WECHAT, cls=MessageClass.SERVICE,
                     content={"wechat_kind": "template", "template_id": "TPL", "data": {"first": "到账"}},
                     fallbacks=(Fallback(Channel.SMS, {"text": "红包已到账"}),))
        env = {"GROWTH_WECHAT_APPID": fake.appid, "GROWTH_WECHAT_SECRET": fake.secret,
               "GROWTH_WECHAT_API_BASE": fake.api_base}
        _deliverer(app, env).run_once()
        _deliverer(app, env).run_once()
    finally:
        fake.stop()

    assert _status(session, mid).status == "unreachable"
    assert session.scalar(select(Unreachable.channel)) == "wechat"
    fallback = session.scalars(select(OutboxMessage).where(OutboxMessage.fallback_of == mid)).one()
    assert fallback.status == "delivered"


def test_wechat_marketing_goes_as_one_mass_send_and_counts_against_the_monthly_quota(app, session, db_kind):
    fake = FakeWechat().start()
    try:
        investors = [make_investor(session, wechat_openid=f"o_fan_{n}") for n in range(3)]
        for investor in investors:
            _consent(session, investor, "wechat")
        ids = [_queue(session, i, channel=Channel.WECHAT, content={"wechat_kind": "mass", "text": "理财节来了"})
               for i in investors]
        env = {"GROWTH_WECHAT_APPID": fake.appid, "GROWTH_WECHAT_SECRET": fake.secret,
               "GROWTH_WECHAT_API_BASE": fake.api_base, "GROWTH_MARKETING_CAPS": "off"}
        _deliverer(app, env).run_once()
    finally:
        fake.stop()

    [call] = fake.calls("message/mass/send")
    assert sorted(call.body["touser"]) == ["o_fan_0", "o_fan_1", "o_fan_2"]
    rows = [_status(session, i) for i in ids]
    assert {r.status for r in rows} == {"sent"}
    assert len({r.provider_id for r in rows}) == 1
    job = session.scalars(select(WechatMassJob)).one()
    assert (job.recipients, job.msg_id) == (3, rows[0].provider_id)


def test_the_fifth_mass_send_of_a_month_is_refused_and_falls_back(app, session):
    for n in range(4):
        session.add(WechatMassJob(msg_id=f"m{n}", recipients=2, sent_at=NOON - timedelta(days=1)))
    investors = [make_investor(session, wechat_openid=f"o_q_{n}") for n in range(2)]
    for investor in investors:
        _consent(session, investor, "wechat")
        _consent(session, investor, "sms")
    ids = [_queue(session, i, channel=Channel.WECHAT, content={"wechat_kind": "mass", "text": "理财节来了"},
                  fallbacks=(Fallback(Channel.SMS, MARKETING_SMS),)) for i in investors]
    env = {"GROWTH_WECHAT_APPID": "wx", "GROWTH_WECHAT_SECRET": "s", "GROWTH_MARKETING_CAPS": "off"}

    _deliverer(app, env).run_once()
    _deliverer(app, env).run_once()

    assert {_status(session, i).error_code for i in ids} == {"mass_quota"}
    sms = session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "sms")).all()
    assert sorted(m.status for m in sms) == ["delivered", "delivered"]


def test_marketing_email_carries_a_signed_one_click_unsubscribe_link(app, session, db_kind):
    smtp = FakeSmtp().start()
    try:
        investor = make_investor(session, email="li@example.com")
        _consent(session, investor, "email")
        mid = _queue(session, investor, channel=Channel.EMAIL,
                     content={"subject": "理财节", "text": "您好", "html": "<p>您好</p>"})
        env = {"GROWTH_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}", "GROWTH_MAIL_FROM": "增长 <hi@example.com>"}
        _deliverer(app, env).run_once()
        [mail] = smtp.messages
    finally:
        smtp.stop()

    assert _status(session, mid).status == "sent"
    header = mail.message["List-Unsubscribe"]
    assert header.startswith(f"<{app.config['PUBLIC_BASE_URL']}/unsubscribe/")
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_cap_counts_marketing_across_campaigns_and_gives_back_what_was_not_sent(app, session, aliyun, db_kind):
    investor = make_investor(session)
    _consent(session, investor)
    aliyun.queue("isp.SYSTEM_ERROR")  # the first try of the first campaign's message fails for now
    first = _queue(session, investor, campaign_id=1)
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    assert session.scalar(select(CapUsage.used).where(CapUsage.scope == "sms")) == 0  # given back

    second = _queue(session, investor, campaign_id=2, cause="evt-9")
    _deliverer(app, _aliyun_env(aliyun)).run_once()
    assert _status(session, second).status == "sent"
    retry_at = _status(session, first).due_at
    _deliverer(app, _aliyun_env(aliyun), now=retry_at).run_once()

    assert _status(session, first).status == "capped"  # sms:1/day: the second campaign's message used it
    assert len(aliyun.sent) == 2


def test_two_workers_checking_two_campaigns_at_once_send_within_the_cap(app, session, db_kind):
    investors = [make_investor(session) for _ in range(20)]
    for investor in investors:
        _consent(session, investor)
    for campaign in (1, 2):
        for investor in investors:
            _queue(session, investor, campaign_id=campaign, cause=f"run-{campaign}")
    app.config["DELIVERY_BATCH_SIZE"] = 7
    workers = [_deliverer(app) for _ in range(2)]
    barrier = threading.Barrier(2)

    def drain(worker: Deliverer) -> None:
        barrier.wait()
        while worker.run_once():
            pass

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    session.commit()
    session.expire_all()
    statuses = [m.status for m in session.scalars(select(OutboxMessage))]
    assert statuses.count("delivered") == 20  # one per investor: sms:1/day
    assert statuses.count("capped") == 20


def test_a_delivery_report_that_beats_the_workers_own_record_is_kept(app, session, aliyun, client, db_kind):
    investor = make_investor(session)
    mid = _queue(session, investor, cls=MessageClass.SERVICE, content=NOTICE)
    deliverer = _deliverer(app, _aliyun_env(aliyun))
    cfg = deliverer.config()
    with get_db(app).session_scope(write=True) as s:
        batch = deliverer._claim_messages(s, NOON, cfg)
    results = deliverer.send(batch.jobs, cfg)
    report = [{"phone_number": "13900000000", "success": True, "err_code": "DELIVERED", "out_id": str(mid),
               "biz_id": results[0][1].provider_id, "report_time": "2026-12-03 12:00:05"}]
    assert client.post("/sms/aliyun/report", json=report).status_code == 200
    with get_db(app).session_scope(write=True) as s:
        deliverer.record(s, results, NOON, cfg)

    row = _status(session, mid)
    assert (row.status, row.provider_id, row.attempts) == ("delivered", results[0][1].provider_id, 1)
    assert row.delivered_at is not None and row.sent_at is not None


def test_the_marketing_kill_switch_defers_marketing_found_while_it_is_on_and_lets_service_through(app, session):
    from channels.services import set_marketing_hold

    investor = make_investor(session)
    _consent(session, investor)
    set_marketing_hold(True, session=session, now=NOON, by=None)
    session.commit()
    marketing = _queue(session, investor, cause="after-switch")  # enqueued while the switch is on
    notice = _queue(session, investor, cls=MessageClass.SERVICE, content={"text": "您的红包已到账"}, cause="notice")
    _deliverer(app).run_once()
    held = _status(session, marketing)
    assert (held.status, held.hold_reason) == ("deferred", "kill_switch")
    assert _status(session, notice).status == "delivered"
    set_marketing_hold(False, session=session, now=NOON, by=None)
    session.commit()
    _deliverer(app).run_once()
    assert _status(session, marketing).status == "delivered"


def test_a_message_that_beats_the_registration_waits_for_the_phone_and_goes_once_it_comes(app, session, db_kind):
    # Events arrive in any order: an investment made the investor (and a triggered message) before the registration.
    early = make_investor(session, phone=None, registered_at=None)
    lost = make_investor(session, phone=None, registered_at=None)
    mid = _queue(session, early, cls=MessageClass.SERVICE, content={"text": "首投红包已到账"}, cause="evt-early")
    old = _queue(session, lost, cls=MessageClass.SERVICE, content={"text": "首投红包已到账"}, cause="evt-lost",
                 now=NOON - timedelta(hours=25))

    _deliverer(app).run_once()
    waiting = _status(session, mid)
    assert (waiting.status, waiting.hold_reason) == ("deferred", "registration")
    assert waiting.due_at == NOON + timedelta(seconds=10)
    assert (_status(session, old).status, _status(session, old).error_code) == ("unreachable", "no_address")

    early = session.merge(early)
    early.phone, early.registered_at = "+8613912340000", NOON  # the registration comes with the phone
    session.commit()
    _deliverer(app, now=NOON + timedelta(seconds=11)).run_once()
    assert _status(session, mid).status == "delivered"


def test_a_registered_investor_without_an_address_is_unreachable_at_once(app, session, db_kind):
    investor = make_investor(session, phone=None)
    mid = _queue(session, investor, cls=MessageClass.SERVICE, content={"text": "红包已到账"})

    _deliverer(app).run_once()

    assert (_status(session, mid).status, _status(session, mid).error_code) == ("unreachable", "no_address")
