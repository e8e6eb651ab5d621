"""The receipt, reply and WeChat-callback services on both databases, and their pure rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from channels.adapters.port import Outcome
from channels.adapters.wechat import MemoryTokenStore, WechatAdapter, WechatApiError, WechatSettings
from channels.adapters.wechat_callback import WechatCallback
from channels.models import ConsentStatement, OutboxMessage, Unreachable, WechatFollower
from channels.receipts import (
    SmsReply,
    SmsReport,
    apply_sms_replies,
    apply_sms_reports,
    apply_wechat_callback,
    follows_newer,
    parse_provider_time,
    receipt_status,
    reply_event_key,
    template_outcome,
)
from channels.recipients import Directory, directory_of
from channels.services import may_message, record_statement
from growth.investors.models import Investor
from tests.factories import make_investor
from tests.fakes.wechat import FakeWechat

NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
_keys = itertools.count(1)


@pytest.fixture
def directory(app: Flask) -> Directory:
    return directory_of(app)


def message(session: Session, who: Investor, *, status: str = "sent", channel: str = "sms",
            provider_id: str | None = "BIZ") -> OutboxMessage:
    row = OutboxMessage(key=f"t|{next(_keys)}", sender="test", cause="c", investor_id=who.id, channel=channel,
                        message_class="service", content={}, status=status, due_at=NOW, created_at=NOW,
                        updated_at=NOW, provider_id=provider_id)
    session.add(row)
    session.flush()
    return row


# --- pure rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "success", "expected"), [
    ("sent", True, "delivered"), ("sending", True, "delivered"), ("failed", True, "delivered"),
    ("dead", True, "delivered"), ("queued", True, "delivered"), ("delivered", True, None),
    ("skipped_no_consent", True, None), ("capped", True, None), ("unreachable", True, None),
    ("sent", False, "failed"), ("sending", False, "failed"), ("failed", False, None),
    ("delivered", False, None), ("queued", False, None), ("dead", False, None),
])
def test_a_receipt_moves_a_message_only_forward(current: str, success: bool, expected: str | None) -> None:
    assert receipt_status(current, success) == expected


@pytest.mark.parametrize(("status", "expected"), [
    ("success", "delivered"), ("failed:user block", "blocked"), ("failed: user block", "blocked"),
    ("failed: system failed", "failed"), ("", "failed"),
])
def test_a_template_jobs_status_is_read(status: str, expected: str) -> None:
    assert template_outcome(status) == expected


def test_a_follow_state_is_replaced_only_by_a_newer_event_and_an_unfollow_wins_the_same_second() -> None:
    assert follows_newer(NOW, True, NOW + timedelta(seconds=1), False)
    assert not follows_newer(NOW, True, NOW - timedelta(seconds=1), False)
    assert not follows_newer(NOW, True, NOW, True)  # a replay
    assert follows_newer(NOW, True, NOW, False)
    assert not follows_newer(NOW, False, NOW, True)


def test_provider_times_are_beijing_time_and_unreadable_ones_are_none() -> None:
    assert parse_provider_time("2026-12-03 12:00:00") == NOW
    assert parse_provider_time("yesterday") is None


def test_a_reply_is_known_by_its_sequence_id_else_by_phone_time_and_content() -> None:
    assert reply_event_key("138", "t", "T", "42") == reply_event_key("139", "u", "TD", "42")
    assert reply_event_key("138", "t", "T", "") == reply_event_key("138", "t", "T", "")
    assert reply_event_key("138", "t", "T", "") != reply_event_key("138", "t", "TD", "")


# --- SMS reports and replies ------------------------------------------------------------------------


def test_a_number_refusal_marks_unreachable_only_when_the_report_is_for_the_investors_phone(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session, phone="+8613800138000")
    mine, moved = message(session, who), message(session, who)

    tally = apply_sms_reports([
        SmsReport(out_id=str(mine.id), phone="13800138000", success=False, code="isv.MOBILE_NUMBER_ILLEGAL",
                  biz_id="BIZ"),
        SmsReport(out_id=str(moved.id), phone="13900139000", success=False, code="MOBILE_NOT_ON_SERVICE",
                  biz_id="BIZ"),
    ], session=session, directory=directory, now=NOW)

    assert (tally.applied, tally.unreachable) == (2, 1)
    refusals = session.scalars(select(Unreachable)).all()
    assert [(r.investor_id, r.message_id) for r in refusals] == [(who.id, mine.id)]


def test_a_number_refusal_without_the_providers_id_of_our_send_marks_no_one_unreachable(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session, phone="+8613800138000")
    sent = message(session, who)

    apply_sms_reports([SmsReport(out_id=str(sent.id), phone="13800138000", success=False,
                                 code="MOBILE_NOT_ON_SERVICE")], session=session, directory=directory, now=NOW)

    assert sent.status == "failed"
    assert session.scalar(select(func.count()).select_from(Unreachable)) == 0


def test_a_delivery_time_from_the_providers_future_is_taken_as_now(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session)
    sent = message(session, who)

    apply_sms_reports([SmsReport(out_id=str(sent.id), phone="", success=True,
                                 reported_at=NOW + timedelta(hours=3))], session=session, directory=directory, now=NOW)

    assert sent.delivered_at == NOW


def test_a_reply_for_an_unknown_phone_records_nothing(session: Session, directory: Directory, db_kind: str) -> None:
    tally = apply_sms_replies([SmsReply(phone="13700000000", content="T"), None], session=session,
                              directory=directory, now=NOW)

    assert (tally.ignored, tally.opted_out) == (2, 0)
    assert session.scalar(select(func.count()).select_from(ConsentStatement)) == 0


def test_an_opt_out_reply_is_dated_when_sent_so_a_later_consent_still_wins(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session, phone="+8613800138009")
    record_statement(session=session, investor_id=who.id, channel="sms", granted=True, source="platform_event",
                     occurred_at=NOW - timedelta(minutes=1), event_id="later-consent")

    apply_sms_replies([SmsReply(phone="13800138009", content="退订", send_time="2026-12-03 11:50:00",
                                sequence_id="7")], session=session, directory=directory, now=NOW)

    assert may_message(session=session, investor_id=who.id, channel="sms")
    evidence = session.scalar(select(ConsentStatement.evidence).where(ConsentStatement.source == "sms_reply"))
    assert evidence == {"content": "退订", "send_time": "2026-12-03 11:50:00", "sequence_id": "7", "dest_code": ""}


# --- WeChat -----------------------------------------------------------------------------------------


def callback(event: str, openid: str = "oA", at: datetime = NOW, **fields: object) -> WechatCallback:
    return WechatCallback(openid=openid, event=event, created_at=at, **fields)  # type: ignore[arg-type]


def test_an_unfollow_older_than_the_last_follow_records_the_opt_out_but_leaves_them_following(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session, wechat_openid="oA")

    apply_wechat_callback(callback("subscribe", at=NOW), session=session, directory=directory, now=NOW)
    outcome = apply_wechat_callback(callback("unsubscribe", at=NOW - timedelta(minutes=5)), session=session,
                                    directory=directory, now=NOW)

    follower = session.scalar(select(WechatFollower))
    assert follower is not None and follower.subscribed
    assert outcome == "unfollowed"
    assert session.scalar(select(func.count()).select_from(ConsentStatement).where(
        ConsentStatement.investor_id == who.id)) == 1
    assert session.scalar(select(func.count()).select_from(Unreachable)) == 0


def test_a_follow_again_after_an_unfollow_clears_the_refusal_and_keeps_the_first_scene(
        session: Session, directory: Directory, db_kind: str) -> None:
    make_investor(session, wechat_openid="oA")

    for event, at, scene in [("subscribe", NOW, "baidu_sem"), ("unsubscribe", NOW + timedelta(days=1), ""),
                             ("subscribe", NOW + timedelta(days=2), "wechat_ad")]:
        apply_wechat_callback(callback(event, at=at, scene=scene), session=session, directory=directory,
                              now=NOW + timedelta(days=3))

    follower = session.scalar(select(WechatFollower))
    assert follower is not None
    assert (follower.subscribed, follower.scene, follower.first_scene) == (True, "wechat_ad", "baidu_sem")
    assert session.scalar(select(func.count()).select_from(Unreachable)) == 0


def test_a_template_result_for_an_unknown_msgid_or_another_channel_is_ignored(
        session: Session, directory: Directory, db_kind: str) -> None:
    who = make_investor(session, wechat_openid="oA")
    sms = message(session, who, provider_id="555")

    outcome = apply_wechat_callback(callback("templatesendjobfinish", template_msg_id="555",
                                             template_status="success"), session=session, directory=directory,
                                    now=NOW)

    assert outcome == "ignored"
    assert sms.status == "sent"


# --- the adapter's QR code call ---------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeWechat]:
    server = FakeWechat(appid="wx_app", secret="s3cret").start()
    yield server
    server.stop()


def adapter(fake: FakeWechat) -> WechatAdapter:
    return WechatAdapter(WechatSettings(appid="wx_app", secret="s3cret", api_base=fake.api_base, timeout=2.0),
                         MemoryTokenStore())


def test_a_scene_qr_code_is_created_through_wechatpy(fake: FakeWechat) -> None:
    ticket, url = adapter(fake).create_scene_qr("baidu_sem")

    assert ticket == fake.qrcodes["baidu_sem"]
    assert url == f"http://weixin.qq.com/q/{ticket}"


@pytest.mark.parametrize(("errcode", "outcome"), [(45009, Outcome.RETRY), (40097, Outcome.FAILED)])
def test_a_refused_qr_code_is_mapped_like_a_send(fake: FakeWechat, errcode: int, outcome: Outcome) -> None:
    fake.fail("qrcode/create", errcode)

    with pytest.raises(WechatApiError) as refused:
        adapter(fake).create_scene_qr("baidu_sem")

    assert (refused.value.result.outcome, refused.value.result.code) == (outcome, str(errcode))


def test_a_scene_too_long_for_wechat_is_refused_before_any_call(fake: FakeWechat) -> None:
    with pytest.raises(ValueError):
        adapter(fake).create_scene_qr("x" * 65)

    assert fake.received == []


def test_a_template_jobs_finish_event_is_read_with_its_msgid_and_status() -> None:
    import hashlib

    from channels.adapters.wechat_callback import parse_callback

    ts, nonce = str(int(NOW.timestamp())), "1"
    xml = (f"<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>{ts}</CreateTime>"
           "<MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event><MsgID>200163836</MsgID>"
           "<Status><![CDATA[failed:user block]]></Status></xml>")
    signature = hashlib.sha1("".join(sorted(("t", ts, nonce))).encode()).hexdigest()  # noqa: S324 (WeChat's)

    result = parse_callback(xml.encode(), token="t", signature=signature, timestamp=ts, nonce=nonce, now=NOW)

    assert (result.event, result.openid, result.template_msg_id, result.template_status) == (
        "templatesendjobfinish", "oA", "200163836", "failed:user block")
