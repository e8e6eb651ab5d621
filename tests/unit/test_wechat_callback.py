"""The WeChat callback: signatures, safe-mode AES, and subscribe/unsubscribe/SCAN read as WeChat sends them."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

import pytest
from wechatpy.crypto import WeChatCrypto

from channels.adapters.wechat_callback import CallbackRejected, parse_callback, verify_handshake

TOKEN = "cb-token"
APPID = "wx_app"
AES_KEY = base64.b64encode(b"k" * 32).decode().rstrip("=")  # 43 characters, as the console shows it
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))
NONCE = "1234567890"


def sign(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 (WeChat's algorithm)


def event_xml(event: str, openid: str = "oFOLLOWER_1", key: str | None = None, extra: str = "") -> str:
    key_xml = f"<EventKey><![CDATA[{key}]]></EventKey>" if key is not None else ""
    return (
        f"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{TS}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
        f"{key_xml}{extra}</xml>"
    )


def plain(xml: str, **overrides: str) -> dict[str, object]:
    args: dict[str, object] = {
        "body": xml.encode(),
        "token": TOKEN,
        "signature": sign(TOKEN, TS, NONCE),
        "timestamp": TS,
        "nonce": NONCE,
        "now": NOW,
    }
    args.update(overrides)
    return args


def encrypted(xml: str, appid: str = APPID) -> dict[str, object]:
    envelope = WeChatCrypto(TOKEN, AES_KEY, appid).encrypt_message(xml, NONCE, TS)
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", envelope).group(1)  # type: ignore[union-attr]
    return {
        "body": envelope.encode(),
        "token": TOKEN,
        "signature": sign(TOKEN, TS, NONCE),
        "timestamp": TS,
        "nonce": NONCE,
        "now": NOW,
        "encrypt_type": "aes",
        "msg_signature": sign(TOKEN, TS, NONCE, encrypt),
        "aes_key": AES_KEY,
        "appid": APPID,
    }


def test_a_follow_without_a_qr_code_has_no_scene() -> None:
    result = parse_callback(**plain(event_xml("subscribe", key="")))  # type: ignore[arg-type]

    assert (result.openid, result.event, result.scene) == ("oFOLLOWER_1", "subscribe", "")
    assert result.created_at == NOW


def test_a_follow_through_a_parametric_qr_code_carries_its_scene() -> None:
    xml = event_xml("subscribe", key="qrscene_baidu_sem", extra="<Ticket><![CDATA[TICKET]]></Ticket>")

    result = parse_callback(**plain(xml))  # type: ignore[arg-type]

    assert (result.openid, result.event, result.scene) == ("oFOLLOWER_1", "subscribe", "baidu_sem")


def test_a_follower_scanning_a_parametric_qr_code_is_a_scan_with_its_scene() -> None:
    xml = event_xml("SCAN", key="wechat_ad", extra="<Ticket><![CDATA[TICKET]]></Ticket>")

    result = parse_callback(**plain(xml))  # type: ignore[arg-type]

    assert (result.event, result.scene) == ("scan", "wechat_ad")


def test_an_unfollow_is_read() -> None:
    result = parse_callback(**plain(event_xml("unsubscribe", openid="oGONE")))  # type: ignore[arg-type]

    assert (result.openid, result.event, result.scene) == ("oGONE", "unsubscribe", "")


def test_a_mass_send_jobs_totals_are_read() -> None:
    extra = (
        "<MsgID>1005</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>"
        "<FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>"
    )

    result = parse_callback(**plain(event_xml("MASSSENDJOBFINISH", openid="gh_account", extra=extra)))  # type: ignore[arg-type]

    assert (result.event, result.mass_msg_id, result.mass_status) == ("masssendjobfinish", "1005", "send success")
    assert (result.mass_sent, result.mass_errors, result.mass_total) == (75, 5, 100)


def test_a_text_message_is_other() -> None:
    xml = (
        f"<xml><ToUserName>gh</ToUserName><FromUserName>oA</FromUserName><CreateTime>{TS}</CreateTime>"
        "<MsgType>text</MsgType><Content>TD</Content><MsgId>1</MsgId></xml>"
    )

    result = parse_callback(**plain(xml))  # type: ignore[arg-type]

    assert (result.openid, result.event, result.kind) == ("oA", "other", "text")


def test_an_encrypted_callback_is_decrypted_and_read() -> None:
    result = parse_callback(**encrypted(event_xml("subscribe", key="qrscene_42")))  # type: ignore[arg-type]

    assert (result.openid, result.event, result.scene) == ("oFOLLOWER_1", "subscribe", "42")


def test_a_callback_with_a_wrong_signature_is_rejected() -> None:
    with pytest.raises(CallbackRejected, match="signature"):
        parse_callback(**plain(event_xml("unsubscribe"), signature=sign("other-token", TS, NONCE)))  # type: ignore[arg-type]


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_callback_signed_too_long_ago_or_ahead_is_rejected_as_a_replay(skew: int) -> None:
    ts = str(int(NOW.timestamp()) + skew)

    with pytest.raises(CallbackRejected, match="stale"):
        parse_callback(**plain(event_xml("unsubscribe"), timestamp=ts, signature=sign(TOKEN, ts, NONCE)))  # type: ignore[arg-type]


def test_an_encrypted_callback_with_a_wrong_message_signature_is_rejected() -> None:
    args = encrypted(event_xml("unsubscribe"))
    args["msg_signature"] = sign(TOKEN, TS, NONCE, "tampered")

    with pytest.raises(CallbackRejected, match="message signature"):
        parse_callback(**args)  # type: ignore[arg-type]


def test_an_encrypted_callback_for_another_app_is_rejected() -> None:
    with pytest.raises(CallbackRejected):
        parse_callback(**encrypted(event_xml("unsubscribe"), appid="wx_someone_else"))  # type: ignore[arg-type]


def test_a_plaintext_callback_is_rejected_when_an_aes_key_is_configured() -> None:
    with pytest.raises(CallbackRejected, match="encrypted"):
        parse_callback(**plain(event_xml("unsubscribe"), aes_key=AES_KEY))  # type: ignore[arg-type]


def test_an_encrypted_callback_without_a_configured_key_is_rejected() -> None:
    args = encrypted(event_xml("unsubscribe"))
    args["aes_key"] = ""

    with pytest.raises(CallbackRejected, match="AES_KEY"):
        parse_callback(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [b"", b"<xml><broken>", b"not xml at all"])
def test_an_unreadable_body_is_rejected(body: bytes) -> None:
    with pytest.raises(CallbackRejected):
        parse_callback(**plain("", body=body))  # type: ignore[arg-type]


def test_the_url_check_echoes_only_with_the_right_signature() -> None:
    assert verify_handshake(TOKEN, sign(TOKEN, TS, NONCE), TS, NONCE, "echo-123") == "echo-123"
    with pytest.raises(CallbackRejected):
        verify_handshake(TOKEN, sign(TOKEN, TS, "other-nonce"), TS, NONCE, "echo-123")
