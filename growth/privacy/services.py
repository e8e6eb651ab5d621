"""Erasing one investor's personal data everywhere, while every number built from their history stays right.

The investor keeps their row id, platform user id, referral code, milestones, acquisition channel, investments,
rewards and campaign entries: funnels, channel economics, rollups and campaign results are unchanged. What goes
is what names or reaches the person (`rules`: profile, device, address, message bodies, staff notes about them,
consent evidence's words). `erased_at` marks the row; the processor then strips any later event of theirs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from channels.models import WAITING, ConsentStatement, OutboxMessage, Unreachable, WechatFollower
from growth.audit.services import record
from growth.crm.models import CrmCall, CrmNote, CrmTask
from growth.crypto import keyring
from growth.db import update_many
from growth.errors import DomainError, NotFound
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.events.rules import dump_payload, load_payload
from growth.investors.models import Investor
from growth.privacy import rules
from growth.referrals.models import Referral, ReferralReview
from growth.rewards.models import GrantRequest, Reward

log = logging.getLogger("growth.privacy")
PROJECTIONS_CURSOR = "projections"  # growth.events.processor.CURSOR: the lock every batch takes first
REASON_MAX = 500


@dataclass
class Erasure:
    """What one erasure changed, by kind of data (counts only: nothing personal)."""

    investor_id: int
    user_id: str
    erased_at: datetime
    again: bool  # the investor had been erased before (an erasure is safe to repeat)
    counts: dict[str, int] = field(default_factory=dict)


def find_investor(user_id: str, *, session: Session) -> Investor:
    """Return the investor with a platform user id, or raise NotFound."""
    investor = session.scalar(select(Investor).where(Investor.platform_user_id == user_id))
    if investor is None:
        raise NotFound(_l("没有平台用户 ID 为 %(user_id)s 的投资人", user_id=user_id))
    return investor


def erase_investor(user_id: str, *, session: Session, reason: str, now: datetime, actor: str | None = None,
                   actor_id: int | None = None) -> Erasure:
    """Anonymise one investor everywhere, mark them erased and audit it; in the caller's transaction."""
    reason = " ".join(reason.split())
    if not reason or len(reason) > REASON_MAX:
        raise DomainError(_l("请填写删除原因（不超过 %(n)d 个字）", n=REASON_MAX), field="reason")
    # Serialise with the event processor (its batches take this lock first): a batch that read the investor
    # before this commits would otherwise write their profile back.
    session.execute(select(ProcessorCursor.name).where(ProcessorCursor.name == PROJECTIONS_CURSOR)
                    .with_for_update())
    investor = find_investor(user_id, session=session)
    session.refresh(investor, with_for_update=True)
    again = investor.erased_at is not None
    openid = investor.wechat_openid
    result = Erasure(investor.id, user_id, investor.erased_at or now, again)
    counts = result.counts

    investor_values = rules.investor_erased_values()
    session.execute(update(Investor).where(Investor.id == investor.id)
                    .values(**investor_values, erased_at=result.erased_at)
                    .execution_options(synchronize_session=False))
    counts["events"] = _erase_events(user_id, session=session)
    counts["messages"] = _erase_messages(investor.id, session=session, now=now)
    counts["staff_notes"] = _erase_staff_text(investor.id, session=session)
    counts["consent_statements"] = _erase_consent_evidence(investor.id, session=session)
    counts["wechat_followers"] = _erase_follower(openid, session=session)
    counts["unreachable"] = int(getattr(session.execute(
        delete(Unreachable).where(Unreachable.investor_id == investor.id)), "rowcount", 0) or 0)
    counts["referrals"] = _erase_referral_text(investor.id, session=session)
    session.expire(investor)
    record("investor.erased", session=session, target_type="investor", target_id=investor.id, actor=actor,
           actor_id=actor_id, details={"user_id": user_id, "reason": reason, "again": again, "counts": counts})
    # Ids and counts only: a log line must not carry what was just erased.
    log.info("investor %s erased (%s): %s", investor.id, "again" if again else "first time", counts)
    return result


def _locked(query: Any, session: Session) -> Any:
    """Lock rows read to be rewritten (PostgreSQL), so retention and erasure never write over each other."""
    return query.with_for_update() if session.get_bind().dialect.name == "postgresql" else query


def _erase_events(user_id: str, *, session: Session) -> int:
    rows = session.execute(_locked(select(PlatformEvent.seq, PlatformEvent.payload)
                                   .where(PlatformEvent.user_id == user_id), session)).all()
    changed = []
    ring = keyring()
    for seq, payload in rows:
        stripped = rules.strip_event(load_payload(payload, ring))
        if stripped.changed:
            changed.append({"seq": seq, "payload": dump_payload(stripped.body, ring)})
    update_many(session.connection(), PlatformEvent.__table__, changed, key="seq")  # type: ignore[arg-type]
    return len(changed)


def _erase_messages(investor_id: int, *, session: Session, now: datetime) -> int:
    m = OutboxMessage
    rows = session.scalars(_locked(select(m).where(m.investor_id == investor_id,
                                                   m.channel.in_(rules.PERSONAL_MESSAGE_CHANNELS)), session)).all()
    erased = 0
    for row in rows:
        if row.content.get("redacted") == "erasure" and row.recipient_masked is None and row.error is None:
            continue
        row.content = rules.message_content(row.content, why="erasure")
        row.recipient_masked = None
        row.error = None
        if row.status in (*WAITING, "sending"):
            # Nobody to send it to any more; a worker holding it records nothing over this (its claim is gone).
            row.status, row.error_code, row.hold_reason = "unreachable", "erased", None
            row.claimed_by, row.lease_until, row.updated_at = None, None, now
        erased += 1
    session.flush()
    return erased


def _marker(column: Any) -> dict[Any, Any]:
    return {column: rules.ERASED_TEXT}


def _erase_staff_text(investor_id: int, *, session: Session) -> int:
    """Replace what staff wrote about the investor (notes, call notes, task notes, grant reasons) by the marker."""
    total = 0
    for model, column in ((CrmNote, CrmNote.body), (CrmCall, CrmCall.note), (CrmTask, CrmTask.note),
                          (Reward, Reward.note), (GrantRequest, GrantRequest.reason),
                          (GrantRequest, GrantRequest.decision_note)):
        result = session.execute(
            update(model).where(model.investor_id == investor_id, column.is_not(None),
                                column != rules.ERASED_TEXT)
            .values(_marker(column)).execution_options(synchronize_session=False))
        total += int(getattr(result, "rowcount", 0) or 0)
    return total


def _erase_consent_evidence(investor_id: int, *, session: Session) -> int:
    """Keep each statement (channel, granted or withdrawn, when, how) and drop the evidence's words."""
    changed = 0
    for statement in session.scalars(select(ConsentStatement).where(ConsentStatement.investor_id == investor_id)):
        evidence = rules.consent_evidence(statement.evidence or {})
        if evidence != (statement.evidence or {}):
            statement.evidence = evidence
            changed += 1
    session.flush()
    return changed


def _erase_follower(openid: str | None, *, session: Session) -> int:
    """Unlink the investor's WeChat follower row from their openid (the follow counts stay)."""
    if not openid:
        return 0
    follower = session.scalar(select(WechatFollower).where(WechatFollower.openid == openid))
    if follower is None:
        return 0
    follower.openid = f"erased:{follower.id}"
    session.flush()
    return 1


def _erase_referral_text(investor_id: int, *, session: Session) -> int:
    """Replace reviewers' notes about the investor's referrals and the network their address was in."""
    total = 0
    for model, column in ((Referral, Referral.decision_note), (ReferralReview, ReferralReview.note)):
        result = session.execute(
            update(model).where(or_(model.referee_id == investor_id, model.referrer_id == investor_id),
                                column.is_not(None), column != rules.ERASED_TEXT)
            .values(_marker(column)).execution_options(synchronize_session=False))
        total += int(getattr(result, "rowcount", 0) or 0)
    for referral in session.scalars(select(Referral).where(
            or_(Referral.referee_id == investor_id, Referral.referrer_id == investor_id))):
        flags = [_flag_without_network(f) for f in referral.flags or []]
        if flags != referral.flags:
            referral.flags = flags
            total += 1
    session.flush()
    return total


def _flag_without_network(flag: dict[str, Any]) -> dict[str, Any]:
    detail = flag.get("detail") or {}
    if "network" not in detail:
        return flag
    return {**flag, "detail": {**detail, "network": rules.ERASED_TEXT}}
