"""The inbound routes of the message channels: Aliyun reports and replies, WeChat callbacks, unsubscribe links."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from wechatpy.crypto import WeChatCrypto

from channels.models import ConsentStatement, OutboxMessage, Unreachable, WechatFollower, WechatMassJob
from channels.receipts import unsubscribe_link_for
from channels.services import may_message, record_statement
from channels.unsubscribe import make_unsubscribe_token
from growth.investors.models import Investor
from tests.factories import make_investor

TOKEN = "cb-token"
APPID = "wx_app"
AES_KEY = base64.b64encode(b"k" * 32).decode().rstrip("=")
WECHAT_ENV = {"GROWTH_WECHAT_TOKEN": TOKEN, "GROWTH_WECHAT_APPID": APPID, "GROWTH_WECHAT_SECRET": "s3cret"}
AES_ENV = {**WECHAT_ENV, "GROWTH_WECHAT_AES_KEY": AES_KEY}
ACK = {"code": 0, "msg": "成功"}
EARLIER = datetime(2026, 1, 1, tzinfo=UTC)
_keys = itertools.count(1)


@pytest.fixture
def app_config() -> dict:
    return {"CHANNEL_ENV": WECHAT_ENV}


# --- arranging --------------------------------------------------------------------------------------


def investor(session: Session, **fields: object) -> Investor:
    row = make_investor(session, **fields)
    session.commit()
    return row


def message(session: Session, who: Investor, *, channel: str = "sms", status: str = "sent",
            provider_id: str | None = "BIZ-1") -> int:
    now = datetime.now(UTC)
    row = OutboxMessage(key=f"test|{next(_keys)}", sender="test", cause="c", investor_id=who.id, channel=channel,
                        message_class="marketing", content={"text": "hi"}, status=status, due_at=now,
                        created_at=now, updated_at=now, provider_id=provider_id, sent_at=now)
    session.add(row)
    session.commit()
    return row.id


def consent(session: Session, who: Investor, channel: str) -> None:
    record_statement(session=session, investor_id=who.id, channel=channel, granted=True, occurred_at=EARLIER,
                     source="platform_event", event_id=f"grant-{who.id}-{channel}")
    session.commit()


def fresh(session: Session) -> None:
    """End the test session's read transaction, so it sees what the requests committed since (SQLite WAL)."""
    session.commit()
    session.expire_all()


def may(session: Session, who: Investor, channel: str) -> bool:
    fresh(session)
    return may_message(session=session, investor_id=who.id, channel=channel)


def status_of(session: Session, message_id: int) -> OutboxMessage:
    fresh(session)
    row = session.get(OutboxMessage, message_id)
    assert row is not None
    return row


def statements(session: Session, **where: object) -> int:
    fresh(session)
    query = select(func.count()).select_from(ConsentStatement).filter_by(**where)
    return session.scalar(query) or 0


def local_phone(who: Investor) -> str:
    assert who.phone is not None
    return who.phone.removeprefix("+86")  # Aliyun writes mainland numbers without the country code


def report(out_id: object, phone: str, *, success: bool = True, code: str = "DELIVERED",
           biz_id: str = "BIZ-1") -> dict[str, object]:
    return {"phone_number": phone, "send_time": "2026-12-03 10:00:00", "report_time": "2026-12-03 10:00:05",
            "success": success, "err_code": code, "err_msg": "用户接收成功" if success else "失败",
            "sms_size": "1", "biz_id": biz_id, "out_id": str(out_id)}


def post_json(client: FlaskClient, url: str, body: object):  # type: ignore[no-untyped-def]
    return client.post(url, data=orjson.dumps(body), content_type="application/json")


# --- Aliyun delivery reports --------------------------------------------------------------------------


def test_a_success_report_marks_the_message_delivered_and_answers_aliyuns_ack(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    message_id = message(session, who)

    response = post_json(client, "/sms/aliyun/report", [report(message_id, local_phone(who))])

    assert response.status_code == 200
    assert response.get_json() == ACK
    row = status_of(session, message_id)
    assert row.status == "delivered"
    assert row.delivered_at is not None


def test_a_failure_report_for_an_empty_number_fails_the_message_and_makes_the_investor_unreachable(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    message_id = message(session, who)

    post_json(client, "/sms/aliyun/report",
              [report(message_id, local_phone(who), success=False, code="MOBILE_NOT_ON_SERVICE")])

    row = status_of(session, message_id)
    assert (row.status, row.error_code) == ("failed", "MOBILE_NOT_ON_SERVICE")
    refusal = session.scalar(select(Unreachable).where(Unreachable.investor_id == who.id))
    assert refusal is not None
    assert (refusal.channel, refusal.code, refusal.message_id) == ("sms", "MOBILE_NOT_ON_SERVICE", message_id)


def test_a_failure_for_another_reason_fails_the_message_but_keeps_the_investor_reachable(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    message_id = message(session, who)

    post_json(client, "/sms/aliyun/report",
              [report(message_id, local_phone(who), success=False, code="CONTENT_KEYWORD")])

    assert status_of(session, message_id).status == "failed"
    assert session.scalar(select(func.count()).select_from(Unreachable)) == 0


def test_a_repeated_report_changes_nothing_and_a_message_never_moves_backwards(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    failed_then_delivered = message(session, who, provider_id="BIZ-1")
    delivered_then_failed = message(session, who, provider_id="BIZ-2")
    phone = local_phone(who)

    post_json(client, "/sms/aliyun/report", [report(failed_then_delivered, phone, success=False, code="UNKNOWN"),
                                             report(delivered_then_failed, phone, biz_id="BIZ-2")])
    first = status_of(session, delivered_then_failed).delivered_at
    post_json(client, "/sms/aliyun/report", [report(delivered_then_failed, phone, biz_id="BIZ-2")])
    post_json(client, "/sms/aliyun/report", [report(failed_then_delivered, phone),
                                             report(delivered_then_failed, phone, success=False, code="UNKNOWN",
                                                    biz_id="BIZ-2")])

    upgraded = status_of(session, failed_then_delivered)
    assert (upgraded.status, upgraded.error_code) == ("delivered", None)
    kept = status_of(session, delivered_then_failed)
    assert (kept.status, kept.delivered_at) == ("delivered", first)


def test_unknown_ids_foreign_reports_and_unreadable_items_are_skipped_while_the_rest_of_the_batch_applies(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    good = message(session, who)
    other_send = message(session, who, provider_id="BIZ-OTHER")
    email = message(session, who, channel="email")
    phone = local_phone(who)

    response = post_json(client, "/sms/aliyun/report", [
        report(999999, phone), report("not-a-number", phone), report(2**70, phone), "junk", {"out_id": str(good)},
        report(other_send, phone, biz_id="BIZ-FORGED"), report(email, phone), report(good, phone),
    ])

    assert response.get_json() == ACK
    assert status_of(session, good).status == "delivered"
    assert status_of(session, other_send).status == "sent"
    assert status_of(session, email).status == "sent"


def test_a_report_body_that_is_not_json_or_not_a_list_is_refused_with_the_house_error_shape(
        client: FlaskClient, db_kind: str) -> None:
    not_json = client.post("/sms/aliyun/report", data=b"{oops", content_type="application/json")
    not_a_list = post_json(client, "/sms/aliyun/report", "hello")

    for response in (not_json, not_a_list):
        assert response.status_code == 400
        body = response.get_json()
        assert body["error"]
        assert body["errors"][0]["code"] == "malformed"


def test_a_report_body_beyond_the_route_limit_is_refused(client: FlaskClient, db_kind: str) -> None:
    response = client.post("/sms/aliyun/report", data=b"[" + b" " * (600 * 1024) + b"]",
                           content_type="application/json")

    assert response.status_code == 413


# --- Aliyun replies ---------------------------------------------------------------------------------


def reply(phone: str, content: str, *, sequence_id: str | None = "123456") -> dict[str, object]:
    body: dict[str, object] = {"phone_number": phone, "content": content, "send_time": "2026-12-03 10:00:00",
                               "dest_code": "1234", "sign_name": "投资人增长"}
    if sequence_id is not None:
        body["sequence_id"] = sequence_id
    return body


def test_an_opt_out_reply_withdraws_sms_consent_of_every_investor_with_the_phone_once(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    first = investor(session, phone="+8613800138000")
    second = investor(session, phone="+8613800138000")
    for who in (first, second):
        consent(session, who, "sms")

    for _ in range(2):
        response = post_json(client, "/sms/aliyun/uplink", [reply("13800138000", " td ")])
        assert response.get_json() == ACK

    fresh(session)
    for who in (first, second):
        assert not may(session, who, "sms")
        assert statements(session, investor_id=who.id, source="sms_reply") == 1


def test_an_ordinary_reply_changes_no_consent(client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session, phone="+8613800138001")
    consent(session, who, "sms")

    post_json(client, "/sms/aliyun/uplink", [reply("13800138001", "好的，谢谢")])

    assert may(session, who, "sms")


def test_a_reply_without_a_sequence_id_is_recognised_when_pushed_again(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session, phone="+8613800138002")
    consent(session, who, "sms")

    for _ in range(2):
        post_json(client, "/sms/aliyun/uplink", [reply("13800138002", "退订", sequence_id=None)])

    assert statements(session, investor_id=who.id, source="sms_reply") == 1
    assert not may(session, who, "sms")


def test_an_uplink_body_that_is_not_json_is_refused(client: FlaskClient, db_kind: str) -> None:
    response = client.post("/sms/aliyun/uplink", data=b"\xff\xfe", content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["errors"][0]["code"] == "malformed"


# --- WeChat -----------------------------------------------------------------------------------------


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 (WeChat's algorithm)


def event_xml(event: str, openid: str = "oFOLLOWER_1", *, key: str | None = None, extra: str = "",
              created: int | None = None) -> str:
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event>{key_xml}{extra}</xml>")


def post_wechat(client: FlaskClient, xml: str, *, signature: str | None = None, ts: str | None = None):  # type: ignore[no-untyped-def]
    ts = ts or str(int(time.time()))
    nonce = "20261203"
    query = {"signature": signature or sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce,
             "openid": "oFOLLOWER_1"}
    return client.post("/wechat/callback", query_string=query, data=xml.encode(), content_type="text/xml")


def post_wechat_aes(client: FlaskClient, xml: str, *, tamper: bool = False):  # type: ignore[no-untyped-def]
    ts, nonce = str(int(time.time())), "20261203"
    envelope = WeChatCrypto(TOKEN, AES_KEY, APPID).encrypt_message(xml, nonce, ts)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope).group(1)  # type: ignore[union-attr]
    query = {"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
             "msg_signature": sign(TOKEN, ts, nonce, encrypt + ("x" if tamper else ""))}
    return client.post("/wechat/callback", query_string=query, data=envelope.encode(), content_type="text/xml")


def follower(session: Session, openid: str = "oFOLLOWER_1") -> WechatFollower | None:
    fresh(session)
    return session.scalar(select(WechatFollower).where(WechatFollower.openid == openid))


def test_wechats_url_check_gets_its_echostr_back_only_with_the_right_signature(
        client: FlaskClient, db_kind: str) -> None:
    ts, nonce = str(int(time.time())), "42"
    good = client.get("/wechat/callback", query_string={"signature": sign(TOKEN, ts, nonce), "timestamp": ts,
                                                        "nonce": nonce, "echostr": "echo-123"})
    bad = client.get("/wechat/callback", query_string={"signature": "0" * 40, "timestamp": ts, "nonce": nonce,
                                                       "echostr": "echo-123"})

    assert (good.status_code, good.get_data(as_text=True)) == (200, "echo-123")
    assert bad.status_code == 403


@pytest.mark.parametrize("app_config", [{"CHANNEL_ENV": {}}])
def test_without_a_callback_token_every_wechat_callback_is_refused(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    ts = str(int(time.time()))
    query = {"signature": sign("", ts, "1"), "timestamp": ts, "nonce": "1", "echostr": "e"}

    check = client.get("/wechat/callback", query_string=query)
    response = client.post("/wechat/callback", query_string=query, data=event_xml("subscribe").encode())

    assert (check.status_code, response.status_code) == (403, 403)
    assert follower(session) is None


def test_a_follow_through_a_channels_qr_code_records_the_follower_and_makes_them_reachable_again(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session, wechat_openid="oFOLLOWER_1")
    session.add(Unreachable(investor_id=who.id, channel="wechat", contact_digest="x", code="43004", reason="r",
                            since=EARLIER))
    session.commit()

    response = post_wechat(client, event_xml("subscribe", key="qrscene_baidu_sem",
                                             extra="<Ticket><![CDATA[T]]></Ticket>"))

    assert (response.status_code, response.get_data(as_text=True)) == (200, "success")
    row = follower(session)
    assert row is not None
    assert (row.subscribed, row.scene, row.first_scene) == (True, "baidu_sem", "baidu_sem")
    assert session.scalar(select(func.count()).select_from(Unreachable)) == 0


def test_an_unfollow_withdraws_wechat_consent_once_however_often_it_is_delivered(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session, wechat_openid="oGONE")
    consent(session, who, "wechat")
    created = int(time.time())
    post_wechat(client, event_xml("subscribe", "oGONE", created=created - 60))

    for _ in range(2):
        response = post_wechat(client, event_xml("unsubscribe", "oGONE", created=created))
        assert response.get_data(as_text=True) == "success"

    fresh(session)
    assert not may(session, who, "wechat")
    assert statements(session, investor_id=who.id, source="wechat") == 1
    row = follower(session, "oGONE")
    assert row is not None and not row.subscribed
    assert session.scalar(select(Unreachable.channel).where(Unreachable.investor_id == who.id)) == "wechat"


def test_a_scan_by_a_follower_sets_their_scene_and_keeps_the_channel_of_their_first_follow(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    created = int(time.time())
    post_wechat(client, event_xml("subscribe", key="qrscene_wechat_ad", created=created - 10))
    post_wechat(client, event_xml("SCAN", key="offline_2026", extra="<Ticket>T</Ticket>", created=created))
    post_wechat(client, event_xml("SCAN", "oORGANIC", key="offline_2026", extra="<Ticket>T</Ticket>"))

    scanned = follower(session)
    assert scanned is not None
    assert (scanned.scene, scanned.first_scene) == ("offline_2026", "wechat_ad")
    organic = follower(session, "oORGANIC")
    assert organic is not None
    assert (organic.subscribed, organic.first_scene) == (True, "offline_2026")


def test_a_mass_send_jobs_totals_are_kept_by_its_msg_id(client: FlaskClient, session: Session,
                                                        db_kind: str) -> None:
    session.add(WechatMassJob(msg_id="1005", recipients=100, sent_at=datetime.now(UTC)))
    session.commit()
    extra = ("<MsgID>1005</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>"
             "<FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>")

    for _ in range(2):
        assert post_wechat(client, event_xml("MASSSENDJOBFINISH", "gh_account", extra=extra)).status_code == 200
    unknown = post_wechat(client, event_xml("MASSSENDJOBFINISH", "gh_account", extra=extra.replace("1005", "77")))

    assert unknown.get_data(as_text=True) == "success"
    fresh(session)
    job = session.scalar(select(WechatMassJob))
    assert job is not None
    assert (job.status, job.total_count, job.filter_count, job.sent_count, job.error_count) == (
        "send success", 100, 80, 75, 5)
    assert job.finished_at is not None


@pytest.mark.parametrize(("status", "expected", "unreachable"), [
    ("success", "delivered", False),
    ("failed:user block", "failed", True),
    ("failed: system failed", "failed", False),
])
def test_a_template_messages_job_result_settles_the_message(
        client: FlaskClient, session: Session, db_kind: str, status: str, expected: str, unreachable: bool) -> None:
    who = investor(session, wechat_openid="oTEMPLATE")
    message_id = message(session, who, channel="wechat", provider_id="200001")
    extra = f"<MsgID>200001</MsgID><Status><![CDATA[{status}]]></Status>"

    response = post_wechat(client, event_xml("TEMPLATESENDJOBFINISH", "oTEMPLATE", extra=extra))

    assert response.get_data(as_text=True) == "success"
    assert status_of(session, message_id).status == expected
    refused = session.scalar(select(func.count()).select_from(Unreachable).where(Unreachable.investor_id == who.id))
    assert refused == (1 if unreachable else 0)


def test_a_callback_with_a_bad_or_stale_signature_is_refused_and_changes_nothing(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    stale = str(int(time.time()) - 3600)

    forged = post_wechat(client, event_xml("subscribe"), signature="0" * 40)
    replayed_late = post_wechat(client, event_xml("subscribe"), ts=stale)

    assert (forged.status_code, replayed_late.status_code) == (403, 403)
    assert follower(session) is None


@pytest.mark.parametrize("app_config", [{"CHANNEL_ENV": AES_ENV}])
def test_in_safe_mode_an_encrypted_callback_is_applied_and_a_plaintext_or_tampered_one_refused(
        client: FlaskClient, session: Session, db_kind: str) -> None:
    plaintext = post_wechat(client, event_xml("subscribe", "oPLAIN"))
    tampered = post_wechat_aes(client, event_xml("subscribe", "oTAMPERED"), tamper=True)
    encrypted = post_wechat_aes(client, event_xml("subscribe", "oSAFE", key="qrscene_partner_a"))

    assert (plaintext.status_code, tampered.status_code) == (403, 403)
    assert (encrypted.status_code, encrypted.get_data(as_text=True)) == (200, "success")
    row = follower(session, "oSAFE")
    assert row is not None and row.first_scene == "partner_a"
    assert follower(session, "oPLAIN") is None and follower(session, "oTAMPERED") is None


# --- unsubscribe links ------------------------------------------------------------------------------


def link_path(app: Flask, who: Investor, channel: str = "email") -> str:
    url = unsubscribe_link_for(who.id, channel, app=app, now=datetime.now(UTC))
    assert url.startswith(app.config["PUBLIC_BASE_URL"].rstrip("/") + "/unsubscribe/")
    return url[len(app.config["PUBLIC_BASE_URL"].rstrip("/")):]


def test_opening_an_unsubscribe_link_shows_a_confirmation_and_changes_nothing(
        app: Flask, client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session, email="wang@example.com")
    consent(session, who, "email")

    response = client.get(link_path(app, who))

    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "确认退订" in text and "wang@example.com" not in text
    assert response.headers["X-Robots-Tag"] == "noindex"
    assert may(session, who, "email")
    assert statements(session, source="unsubscribe_link") == 0


def test_the_unsubscribe_page_reads_in_english_when_chosen(
        app: Flask, client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    path = link_path(app, who)

    client.get("/lang/en", query_string={"next": path})
    text = client.get(path).get_data(as_text=True)

    assert "Unsubscribe" in text
    assert "确认退订" not in text


def test_a_one_click_post_withdraws_consent_once_however_often_it_comes(
        app: Flask, client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    consent(session, who, "email")
    path = link_path(app, who)

    for _ in range(2):
        response = client.post(path, data="List-Unsubscribe=One-Click",
                               content_type="application/x-www-form-urlencoded")
        assert 200 <= response.status_code < 300

    fresh(session)
    assert not may(session, who, "email")
    assert statements(session, investor_id=who.id, source="unsubscribe_link") == 1


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True, "CHANNEL_ENV": {}}])
def test_the_pages_confirm_button_works_without_a_session_or_csrf_token(
        app: Flask, client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    consent(session, who, "sms")
    path = link_path(app, who, "sms")

    response = client.post(path, data={"confirm": "1"})

    assert response.status_code == 200
    assert "已退订" in response.get_data(as_text=True)
    assert not may(session, who, "sms")


@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True, "CHANNEL_ENV": AES_ENV}])
def test_provider_callbacks_need_no_csrf_token(client: FlaskClient, session: Session, db_kind: str) -> None:
    assert post_json(client, "/sms/aliyun/report", []).status_code == 200
    assert post_json(client, "/sms/aliyun/uplink", []).status_code == 200
    assert post_wechat_aes(client, event_xml("subscribe", "oCSRF")).status_code == 200


def test_a_tampered_or_foreign_token_is_a_404_and_records_nothing(
        app: Flask, client: FlaskClient, session: Session, db_kind: str) -> None:
    who = investor(session)
    consent(session, who, "email")
    path = link_path(app, who)
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    foreign = "/unsubscribe/" + make_unsubscribe_token("another-secret", who.id, "email", datetime.now(UTC))
    other_channel = "/unsubscribe/" + make_unsubscribe_token(app.config["SECRET_KEY"], who.id, "fax",
                                                             datetime.now(UTC))
    nobody = "/unsubscribe/" + make_unsubscribe_token(app.config["SECRET_KEY"], 424242, "email", datetime.now(UTC))

    for bad in (tampered, foreign, other_channel, "/unsubscribe/x"):
        assert client.get(bad).status_code == 404
    for bad in (tampered, foreign, other_channel, nobody):
        assert client.post(bad, data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded").status_code == 404

    assert statements(session, source="unsubscribe_link") == 0
    assert may(session, who, "email")


def test_an_unsubscribe_link_carries_the_public_base_and_a_token_the_route_accepts(
        app: Flask, session: Session, db_kind: str) -> None:
    who = investor(session)
    later = datetime.now(UTC) + timedelta(days=400)

    url = unsubscribe_link_for(who.id, "email", app=app, now=later)

    assert url.startswith(f"{app.config['PUBLIC_BASE_URL'].rstrip('/')}/unsubscribe/")
    with pytest.raises(ValueError):
        unsubscribe_link_for(who.id, "webhook", app=app, now=later)
