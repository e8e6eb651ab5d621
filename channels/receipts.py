"""The inbound side of the message channels: delivery receipts, replies, WeChat callbacks, opt-out links.

Providers tell us what became of a message (Aliyun SMS reports, WeChat TEMPLATESENDJOBFINISH and
MASSSENDJOBFINISH) and investors tell us they want no more (an SMS reply T/TD/退订/N/R, a WeChat
unfollow, the unsubscribe link in a marketing message). Everything is applied once: a receipt never
moves a message backwards, a repeated callback changes nothing twice, and every opt-out is a consent
statement with a stable event id. Services flush, never commit; investors are found through the
recipients port (`channels.recipients`), never through the investors package.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from channels.adapters.wechat_callback import WechatCallback
from channels.models import ConsentStatement, OutboxMessage, WechatFollower, WechatMassJob
from channels.recipients import Directory
from channels.services import clear_unreachable, mark_unreachable, record_statement
from channels.sms import reply_withdraws_consent
from channels.unsubscribe import (
    InvalidUnsubscribeToken,
    UnsubscribeToken,
    make_unsubscribe_token,
    read_unsubscribe_token,
    unsubscribe_url,
)
from growth.timeutil import SHANGHAI

log = logging.getLogger("channels.receipts")

# Answers the Aliyun message-receipt push expects for a batch it may consider delivered.
ALIYUN_ACCEPTED = {"code": 0, "msg": "成功"}
MAX_BATCH = 1000  # items per receipt/reply push we read; Aliyun's batch push sends far fewer


class MalformedCallback(ValueError):
    """A provider callback body that is not what the provider sends (not a JSON list of objects …)."""


@dataclass(slots=True)
class Tally:
    """What a batch of receipts or replies came to."""

    applied: int = 0  # changed a message, a job, a follower or the consent ledger
    unchanged: int = 0  # already applied (a repeat) or nothing to change
    ignored: int = 0  # unknown message, not ours, unreadable item
    unreachable: int = 0  # investors marked unreachable
    opted_out: int = 0  # consent statements recorded

    def as_json(self) -> dict[str, int]:
        """The counts, for logs and tests."""
        return {"applied": self.applied, "unchanged": self.unchanged, "ignored": self.ignored,
                "unreachable": self.unreachable, "opted_out": self.opted_out}


# --- SMS delivery reports (POST /sms/aliyun/report) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsReport:
    """One Aliyun delivery report: did the carrier deliver our message `out_id` to `phone`."""

    out_id: str
    phone: str
    success: bool
    code: str = ""
    detail: str = ""
    biz_id: str = ""
    reported_at: datetime | None = None


def read_sms_reports(payload: Any) -> list[SmsReport | None]:
    """Read Aliyun's report push (a JSON list); an unreadable item is None. Raise MalformedCallback for the rest."""
    items = _json_list(payload)
    return [_sms_report(item) for item in items]


def apply_sms_reports(reports: Iterable[SmsReport | None], *, session: Session, directory: Directory,
                      now: datetime) -> Tally:
    """Apply delivery reports to their messages; unknown or foreign ones are skipped, never failing the batch."""
    return _apply_all(reports, _apply_sms_report, session=session, directory=directory, now=now)


def _apply_sms_report(report: SmsReport, tally: Tally, *, session: Session, directory: Directory,
                      now: datetime) -> None:
    message_id = _message_id(report.out_id)
    message = None if message_id is None else session.scalar(
        select(OutboxMessage).where(OutboxMessage.id == message_id).with_for_update())
    if message is None or message.channel != "sms":
        tally.ignored += 1
        return
    if report.biz_id and message.provider_id and report.biz_id != message.provider_id:
        tally.ignored += 1  # another send's report (or a forged one): the provider's id must match ours
        return
    new = receipt_status(message.status, report.success)
    if new is None:
        tally.unchanged += 1
    else:
        _set_status(message, new, code=report.code, detail=report.detail or report.code,
                    at=_not_after(report.reported_at, now), now=now)
        tally.applied += 1
    # Marking someone unreachable stops even their service messages: only on a report that names the
    # provider's id of our send (BizId), which a stranger guessing message ids does not know.
    if (not report.success and message.status != "delivered" and message.investor_id is not None
            and report.biz_id and report.biz_id == message.provider_id
            and report.code.upper().removeprefix("ISV.") in UNREACHABLE_SMS_CODES):
        investor_id = message.investor_id
        if investor_id in directory.by_address("sms", report.phone, session=session):
            address = directory.recipients([investor_id], session=session)[investor_id].addresses.get("sms")
            if address:
                mark_unreachable(session=session, investor_id=investor_id, channel="sms", address=address,
                                 code=report.code, reason=report.detail or report.code, now=now,
                                 message_id=message.id)
                tally.unreachable += 1


# --- SMS replies (POST /sms/aliyun/uplink) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsReply:
    """One reply an investor sent to our SMS number."""

    phone: str
    content: str
    send_time: str = ""
    sequence_id: str = ""
    dest_code: str = ""


def read_sms_replies(payload: Any) -> list[SmsReply | None]:
    """Read Aliyun's uplink push (a JSON list); an unreadable item is None. Raise MalformedCallback for the rest."""
    return [_sms_reply(item) for item in _json_list(payload)]


def apply_sms_replies(replies: Iterable[SmsReply | None], *, session: Session, directory: Directory,
                      now: datetime) -> Tally:
    """Withdraw SMS consent for every investor with the phone of a reply that asks for it (T, TD, 退订, N, R)."""
    return _apply_all(replies, _apply_sms_reply, session=session, directory=directory, now=now)


def _apply_sms_reply(reply: SmsReply, tally: Tally, *, session: Session, directory: Directory,
                     now: datetime) -> None:
    if not reply_withdraws_consent(reply.content):
        tally.unchanged += 1  # an ordinary reply: nothing to do with consent
        return
    investor_ids = directory.by_address("sms", reply.phone, session=session)
    if not investor_ids:
        tally.ignored += 1
        return
    occurred_at = _not_after(parse_provider_time(reply.send_time), now) or now
    evidence = {"content": reply.content[:200], "send_time": reply.send_time[:40],
                "sequence_id": reply.sequence_id[:64], "dest_code": reply.dest_code[:32]}
    base = reply_event_key(reply.phone, reply.send_time, reply.content, reply.sequence_id)
    recorded = 0
    for investor_id in investor_ids:
        event_id = f"{base}:{investor_id}"
        if _recorded(session, event_id):
            continue  # the same reply pushed again
        record_statement(session=session, investor_id=investor_id, channel="sms", granted=False,
                         occurred_at=occurred_at, source="sms_reply", evidence=evidence, event_id=event_id)
        recorded += 1
    tally.opted_out += recorded
    if recorded:
        tally.applied += 1
    else:
        tally.unchanged += 1


# --- WeChat server callbacks (GET/POST /wechat/callback) ---------------------------------------------


def apply_wechat_callback(callback: WechatCallback, *, session: Session, directory: Directory,
                          now: datetime) -> str:
    """Apply one authentic WeChat callback; return what it did ("followed", "unchanged", …)."""
    at = _not_after(callback.created_at, now) or now
    if callback.event == "subscribe":
        return _follow(callback, at, session=session, directory=directory)
    if callback.event == "unsubscribe":
        return _unfollow(callback, at, session=session, directory=directory)
    if callback.event == "scan":
        return _scan(callback, at, session=session)
    if callback.event == "masssendjobfinish":
        return _mass_finished(callback, at, session=session)
    if callback.event == "templatesendjobfinish":
        return _template_finished(callback, at, session=session, directory=directory, now=now)
    return "ignored"


def _follower(openid: str, *, session: Session) -> WechatFollower | None:
    return session.scalar(select(WechatFollower).where(WechatFollower.openid == openid).with_for_update())


def _new_follower(openid: str, *, subscribed: bool, scene: str | None, at: datetime,
                  session: Session) -> WechatFollower:
    """Insert a follower row, or return the one a concurrent callback inserted first."""
    try:
        with session.begin_nested():
            follower = WechatFollower(openid=openid, subscribed=subscribed, scene=scene, first_scene=scene,
                                      changed_at=at)
            session.add(follower)
        return follower
    except SQLAlchemyError:
        existing = _follower(openid, session=session)
        if existing is None:
            raise
        return existing


def _follow(callback: WechatCallback, at: datetime, *, session: Session, directory: Directory) -> str:
    if not callback.openid:
        return "ignored"
    scene = callback.scene or None
    follower = _follower(callback.openid, session=session)
    if follower is None:
        _new_follower(callback.openid, subscribed=True, scene=scene, at=at, session=session)
    elif not follows_newer(follower.changed_at, follower.subscribed, at, True):
        return "unchanged"  # a replay, or an older event than the state we hold
    else:
        follower.subscribed, follower.changed_at = True, at
        if scene:
            follower.scene = scene
        follower.first_scene = follower.first_scene or scene
    for investor_id in directory.by_address("wechat", callback.openid, session=session):
        clear_unreachable(session=session, investor_id=investor_id, channel="wechat")
    session.flush()
    return "followed"


def _unfollow(callback: WechatCallback, at: datetime, *, session: Session, directory: Directory) -> str:
    if not callback.openid:
        return "ignored"
    follower = _follower(callback.openid, session=session)
    changed = True
    if follower is None:
        _new_follower(callback.openid, subscribed=False, scene=None, at=at, session=session)
    elif follows_newer(follower.changed_at, follower.subscribed, at, False):
        follower.subscribed, follower.changed_at = False, at
    else:
        changed = False
    event = wechat_event_key(callback.openid, callback.created_at or at, "unsubscribe")
    recorded = False
    for investor_id in directory.by_address("wechat", callback.openid, session=session):
        recorded = record_statement(session=session, investor_id=investor_id, channel="wechat", granted=False,
                                    occurred_at=at, source="wechat", evidence={"event": "unsubscribe"},
                                    event_id=f"{event}:{investor_id}") or recorded
        if changed:
            # Template messages need a follower (43004): unreachable until they follow again.
            mark_unreachable(session=session, investor_id=investor_id, channel="wechat", address=callback.openid,
                             code="unsubscribe", reason="unfollowed the official account", now=at)
    session.flush()
    return "unfollowed" if changed or recorded else "unchanged"


def _scan(callback: WechatCallback, at: datetime, *, session: Session) -> str:
    if not callback.openid or not callback.scene:
        return "ignored"
    follower = _follower(callback.openid, session=session)
    if follower is None:  # followed before callbacks reached us; a SCAN comes only from a follower
        _new_follower(callback.openid, subscribed=True, scene=callback.scene, at=at, session=session)
        return "scanned"
    if follower.scene == callback.scene and follower.first_scene:
        return "unchanged"
    follower.scene = callback.scene
    follower.first_scene = follower.first_scene or callback.scene
    session.flush()
    return "scanned"


def _mass_finished(callback: WechatCallback, at: datetime, *, session: Session) -> str:
    job = session.scalar(select(WechatMassJob).where(WechatMassJob.msg_id == callback.mass_msg_id)
                        .with_for_update()) if callback.mass_msg_id else None
    if job is None:
        log.warning("MASSSENDJOBFINISH for an unknown mass job %s", callback.mass_msg_id[:64])
        return "ignored"
    totals = (callback.mass_status[:64], callback.mass_total, callback.mass_filtered, callback.mass_sent,
              callback.mass_errors)
    if job.finished_at is not None and (job.status, job.total_count, job.filter_count, job.sent_count,
                                        job.error_count) == totals:
        return "unchanged"
    job.status, job.total_count, job.filter_count, job.sent_count, job.error_count = totals
    job.finished_at = job.finished_at or at
    session.flush()
    return "finished"


def _template_finished(callback: WechatCallback, at: datetime, *, session: Session, directory: Directory,
                       now: datetime) -> str:
    if not callback.template_msg_id:
        return "ignored"
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.provider_id == callback.template_msg_id,
                                                         OutboxMessage.channel == "wechat").with_for_update())
    if message is None:
        return "ignored"
    outcome = template_outcome(callback.template_status)
    new = receipt_status(message.status, outcome == "delivered")
    if new is not None:
        _set_status(message, new, code=callback.template_status[:64], detail=callback.template_status, at=at,
                    now=now)
    if (outcome == "blocked" and message.status != "delivered" and message.investor_id is not None
            and message.investor_id in directory.by_address("wechat", callback.openid, session=session)):
        mark_unreachable(session=session, investor_id=message.investor_id, channel="wechat",
                         address=callback.openid, code="user block", reason=callback.template_status[:200],
                         now=now, message_id=message.id)
    session.flush()
    return "unchanged" if new is None else str(new)


# --- unsubscribe links (GET/POST /unsubscribe/<token>) -----------------------------------------------

UNSUBSCRIBE_CHANNELS = ("email", "sms", "wechat")


def read_unsubscribe_link(token: str, *, secret: str) -> UnsubscribeToken:
    """Check a link's token and return what it says; raise InvalidUnsubscribeToken for anything else."""
    if len(token) > 500:
        raise InvalidUnsubscribeToken("token too long")
    link = read_unsubscribe_token(secret, token)
    if link.channel not in UNSUBSCRIBE_CHANNELS:
        raise InvalidUnsubscribeToken("unknown channel")
    return link


def unsubscribe(token: str, *, secret: str, session: Session, directory: Directory, now: datetime,
                one_click: bool = False) -> UnsubscribeToken:
    """Withdraw consent for the token's investor and channel (recorded once per token); raise for a bad token."""
    link = read_unsubscribe_link(token, secret=secret)
    if not directory.recipients([link.investor_id], session=session):
        raise InvalidUnsubscribeToken("unknown investor")
    record_statement(session=session, investor_id=link.investor_id, channel=link.channel, granted=False,
                     occurred_at=now, source="unsubscribe_link",
                     evidence={"issued_at": link.issued_at.isoformat(), "one_click": one_click},
                     event_id=unsubscribe_event_key(token))
    return link


def unsubscribe_link_for(investor_id: int, channel: str, *, app: Flask, now: datetime) -> str:
    """Return the one-click unsubscribe URL for an investor and channel (`{PUBLIC_BASE_URL}/unsubscribe/<token>`)."""
    if channel not in UNSUBSCRIBE_CHANNELS:
        raise ValueError(f"no unsubscribe link for channel {channel!r}")
    token = make_unsubscribe_token(app.config["SECRET_KEY"], investor_id, channel, now)
    return unsubscribe_url(app.config["PUBLIC_BASE_URL"], token)


# --- shared steps -------------------------------------------------------------------------------------


def _apply_all(items: Iterable[Any], apply: Callable[..., None], *, session: Session, directory: Directory,
               now: datetime) -> Tally:
    """Apply each readable item of a push in its own savepoint; unreadable ones (None) are counted as ignored."""
    tally = Tally()
    for item in items:
        if item is None:
            tally.ignored += 1
            continue
        _each(tally, session, lambda i=item: apply(i, tally, session=session, directory=directory, now=now))
    return tally


def _each(tally: Tally, session: Session, step: Any) -> None:
    """Run one item's step in a savepoint: a database error skips the item, never the batch."""
    try:
        with session.begin_nested():
            step()
    except SQLAlchemyError:
        log.exception("a callback item could not be applied; skipped")
        tally.ignored += 1


def _recorded(session: Session, event_id: str) -> bool:
    """Tell whether a statement with this event id is in the ledger (a repeat counts as opted out)."""
    return session.scalar(select(ConsentStatement.id).where(ConsentStatement.event_id == event_id)) is not None


def _set_status(message: OutboxMessage, status: str, *, code: str, detail: str, at: datetime | None,
                now: datetime) -> None:
    message.status, message.updated_at = status, now
    if status == "delivered":
        message.delivered_at = at or now
        message.error_code = message.error = None
    else:
        message.error_code, message.error = (code or None) and code[:64], (detail or None) and detail[:500]


def _message_id(out_id: str) -> int | None:
    text = out_id.strip()
    if not text.isdigit() or len(text) > 18:
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None


def _json_list(payload: Any) -> list[Any]:
    if isinstance(payload, dict):  # a single object pushed on its own
        payload = [payload]
    if not isinstance(payload, list):
        raise MalformedCallback("the body must be a JSON list of objects")
    if len(payload) > MAX_BATCH:
        raise MalformedCallback(f"more than {MAX_BATCH} items in one push")
    return payload


def _text(item: dict[str, Any], key: str, limit: int = 500) -> str:
    value = item.get(key)
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()[:limit]


def _sms_report(item: Any) -> SmsReport | None:
    if not isinstance(item, dict):
        return None
    out_id = _text(item, "out_id", 64)
    success = item.get("success")
    if isinstance(success, str):
        success = {"true": True, "false": False}.get(success.strip().lower())
    if not out_id or not isinstance(success, bool):
        return None
    return SmsReport(out_id=out_id, phone=_text(item, "phone_number", 32), success=success,
                     code=_text(item, "err_code", 64), detail=_text(item, "err_msg", 200),
                     biz_id=_text(item, "biz_id", 128),
                     reported_at=parse_provider_time(_text(item, "report_time", 40)))


def _sms_reply(item: Any) -> SmsReply | None:
    if not isinstance(item, dict):
        return None
    phone, content = _text(item, "phone_number", 32), _text(item, "content", 1000)
    if not phone:
        return None
    return SmsReply(phone=phone, content=content, send_time=_text(item, "send_time", 40),
                    sequence_id=_text(item, "sequence_id", 200), dest_code=_text(item, "dest_code", 32))


def _not_after(value: datetime | None, now: datetime) -> datetime | None:
    """A provider's time, but never in our future (their clock may run ahead)."""
    return None if value is None else min(value, now)


# --- pure rules ---------------------------------------------------------------------------------------

# Aliyun receipt codes that say the number itself cannot receive SMS (not this message's content): the
# investor is unreachable on SMS until their phone changes. Codes compared without an `isv.` prefix.
UNREACHABLE_SMS_CODES = frozenset({
    "MOBILE_NUMBER_ILLEGAL",  # the number is malformed
    "MOBILE_NOT_ON_SERVICE",  # 停机、空号、暂停服务
    "MOBILE_ACCOUNT_ABNORMAL",  # 用户账户异常、携号转网、欠费
    "INVALID_NUMBER",  # 号码状态异常
    "MOBILE_IN_BLACK",  # the number is on the carrier's or the platform's blacklist
    "USER_REJECT",  # the subscriber refused this service at the carrier
})
# Statuses a message can be in after it was (or may have been) handed to a provider.
HANDED_OVER = frozenset({"queued", "deferred", "sending", "sent", "failed", "dead"})


def receipt_status(current: str, success: bool) -> str | None:
    """Return the status a receipt moves a message to, or None: delivered is final, failure only follows a send."""
    if current == "delivered":
        return None
    if success:
        return "delivered" if current in HANDED_OVER else None
    return "failed" if current in ("sending", "sent") else None


def template_outcome(status: str) -> str:
    """Read TEMPLATESENDJOBFINISH's Status: "delivered", "blocked" (the user refuses them) or "failed"."""
    text = status.strip().lower().replace(" ", "")
    if text == "success":
        return "delivered"
    if "userblock" in text:
        return "blocked"
    return "failed"


def follows_newer(held_at: datetime, held_subscribed: bool, at: datetime, subscribed: bool) -> bool:
    """Tell whether a follow/unfollow at `at` replaces the state held since `held_at` (a replay does not)."""
    if at > held_at:
        return True
    return at == held_at and subscribed != held_subscribed and not subscribed  # same second: the unfollow wins


def parse_provider_time(text: str) -> datetime | None:
    """Read a provider time `2026-12-03 10:00:00` (Asia/Shanghai) as aware UTC; None when unreadable."""
    try:
        value = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return value.replace(tzinfo=SHANGHAI).astimezone(UTC)


def reply_event_key(phone: str, send_time: str, content: str, sequence_id: str) -> str:
    """Return the stable id of one SMS reply: Aliyun's sequence id, else a hash of phone, time and content."""
    if sequence_id and len(sequence_id) <= 64 and sequence_id.isascii():
        return f"sms_reply:seq:{sequence_id}"
    digest = hashlib.sha256("\x1f".join((phone, send_time, content, sequence_id)).encode()).hexdigest()
    return f"sms_reply:h:{digest[:40]}"


def wechat_event_key(openid: str, created_at: datetime, event: str) -> str:
    """Return the stable id of one WeChat event for one follower (openid and CreateTime)."""
    digest = hashlib.sha256(f"{openid}\x1f{int(created_at.timestamp())}\x1f{event}".encode()).hexdigest()
    return f"wechat:{event}:{digest[:40]}"


def unsubscribe_event_key(token: str) -> str:
    """Return the stable id of an unsubscribe link's statement: one per token, however often it is used."""
    return f"unsubscribe:{hashlib.sha256(token.encode()).hexdigest()[:48]}"
