"""The WeChat server callback (spec §6 `POST /wechat/callback`) as pure functions over wechatpy.

`verify_handshake` answers WeChat's GET URL check; `parse_callback` checks the signature (and, in
safe mode, the AES message signature), decrypts, parses the XML with wechatpy's `parse_message` and
returns what happened: a follow (with the parametric QR scene it came through, if any), an unfollow,
a SCAN by a follower, a mass-send job's totals, or something else. The view around it stays thin:
it passes the query arguments, the raw body and `now`, records the result and answers `success`.

Imports nothing of ours but the port (nothing at all, in fact).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

MAX_CLOCK_SKEW = 300  # seconds between WeChat's timestamp and ours before a callback counts as a replay


class CallbackRejected(Exception):
    """The callback is not from WeChat (bad signature, stale timestamp, wrong app) or is not readable."""


@dataclass(frozen=True, slots=True)
class WechatCallback:
    """One callback: `event` is subscribe, unsubscribe, scan, masssendjobfinish, templatesendjobfinish or other."""

    openid: str
    event: str
    scene: str = ""  # the parametric QR code's scene (subscribe through a QR code, or scan by a follower)
    kind: str = ""  # WeChat's own message type / event name, for `other`
    created_at: datetime | None = None  # WeChat's CreateTime, UTC
    mass_msg_id: str = ""  # masssendjobfinish: the job's msg_id (our SendResult.provider_id)
    mass_status: str = ""  # e.g. "send success", "err(10001)"
    mass_sent: int = 0
    mass_errors: int = 0
    mass_total: int = 0
    mass_filtered: int = 0
    template_msg_id: str = ""  # templatesendjobfinish: the template message's msgid (our provider_id)
    template_status: str = ""  # "success", "failed:user block", "failed: system failed"


def verify_handshake(token: str, signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    """Answer WeChat's GET URL verification: the echostr when the signature is right."""
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise CallbackRejected("bad signature") from None
    return echostr


def parse_callback(
    body: bytes | str,
    *,
    token: str,
    signature: str,
    timestamp: str,
    nonce: str,
    now: datetime,
    encrypt_type: str = "",
    msg_signature: str = "",
    aes_key: str = "",
    appid: str = "",
) -> WechatCallback:
    """Check, decrypt (safe mode: `encrypt_type=aes`) and read one callback; raises CallbackRejected."""
    try:
        check_signature(token, signature, timestamp, nonce)
    except InvalidSignatureException:
        raise CallbackRejected("bad signature") from None
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise CallbackRejected("bad timestamp") from None
    if abs(now.timestamp() - sent_at) > MAX_CLOCK_SKEW:
        raise CallbackRejected("stale timestamp")

    if encrypt_type == "aes":
        if not aes_key:
            raise CallbackRejected("an encrypted callback, but GROWTH_WECHAT_AES_KEY is not set")
        try:
            xml = WeChatCrypto(token, aes_key, appid).decrypt_message(body, msg_signature, timestamp, nonce)
        except (InvalidSignatureException, InvalidAppIdException):
            raise CallbackRejected("bad message signature or app") from None
        except Exception as exc:  # malformed XML or ciphertext
            raise CallbackRejected(f"unreadable encrypted callback ({type(exc).__name__})") from None
    elif aes_key:
        raise CallbackRejected("GROWTH_WECHAT_AES_KEY is set: callbacks must be encrypted")
    else:
        xml = body

    try:
        message = parse_message(xml)
    except Exception as exc:  # malformed XML, missing MsgType
        raise CallbackRejected(f"unreadable callback ({type(exc).__name__})") from None
    if message is None:
        raise CallbackRejected("empty callback")
    return _read(message)


def _read(message: object) -> WechatCallback:
    openid = str(getattr(message, "source", "") or "")
    created = getattr(message, "time", None)  # CreateTime, seconds since the epoch
    created_at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) and created > 0 else None
    msg_type = str(getattr(message, "type", "") or "")
    event = str(getattr(message, "event", "") or "") if msg_type == "event" else ""
    if event == "subscribe":
        return WechatCallback(event="subscribe", openid=openid, created_at=created_at)
    if event == "subscribe_scan":  # followed through a parametric QR code (EventKey qrscene_<scene>)
        return WechatCallback(
            event="subscribe", scene=str(getattr(message, "scene_id", "") or ""), openid=openid, created_at=created_at
        )
    if event == "unsubscribe":
        return WechatCallback(event="unsubscribe", openid=openid, created_at=created_at)
    if event == "scan":  # a follower scanned a parametric QR code
        return WechatCallback(
            event="scan", scene=str(getattr(message, "scene_id", "") or ""), openid=openid, created_at=created_at
        )
    if event == "masssendjobfinish":
        return WechatCallback(
            event="masssendjobfinish",
            mass_msg_id=str(getattr(message, "id", "") or ""),
            mass_status=str(getattr(message, "status", "") or ""),
            mass_sent=int(getattr(message, "sent_count", 0) or 0),
            mass_errors=int(getattr(message, "error_count", 0) or 0),
            mass_total=int(getattr(message, "total_count", 0) or 0),
            mass_filtered=int(getattr(message, "filter_count", 0) or 0),
            openid=openid,
            created_at=created_at,
        )
    if event == "templatesendjobfinish":
        return WechatCallback(
            event="templatesendjobfinish",
            template_msg_id=str(getattr(message, "id", "") or ""),
            template_status=str(getattr(message, "status", "") or ""),
            openid=openid,
            created_at=created_at,
        )
    return WechatCallback(event="other", kind=event or msg_type, openid=openid, created_at=created_at)
