"""The referral program: settings, one referral record per referee, staff reviews, the confirmation feed, invites.

A referral is keyed by its referee (`referee_id`, the investor's row id): one referee is referred at most
once, and investor ids survive a replay, so everything that points at a referral (reviews, the
confirmation feed) stays valid when `growth events replay` rebuilds the records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base
from growth.overrides import SettingRow
from growth.timeutil import utcnow

BigId = BigInteger().with_variant(Integer(), "sqlite")

# The one list of referral states, in life-cycle order, with their labels (pages, filters, CSV, demo).
STATUS_LABELS = {
    "pending": _l("待达标"),
    "qualified": _l("已达标（持有期中）"),
    "in_review": _l("待审核"),
    "confirmed": _l("已确认"),
    "rejected": _l("已拒绝"),
}
STATUSES = tuple(STATUS_LABELS)

# Fraud reason codes: BLOCK rejects the referral at once, FLAG holds it for a staff decision.
BLOCK_REASONS = {
    "same_phone": _l("邀请人与被邀请人手机号相同"),
    "same_device": _l("邀请人与被邀请人设备相同"),
    "same_ip": _l("邀请人与被邀请人注册 IP 相同"),
}
FLAG_REASONS = {
    "shared_subnet": _l("注册 IP 同网段且注册时间相近"),
    "too_many_referees": _l("同一邀请人单日邀请人数过多"),
    "referral_cycle": _l("循环邀请"),
    "virtual_operator": _l("被邀请人使用虚拟运营商号段"),
}
REASON_LABELS = {**BLOCK_REASONS, **FLAG_REASONS}

# Why a referral ended rejected (besides a fraud block, listed in its flags).
REJECTION_LABELS = {
    "blocked": _l("命中拦截规则"),
    "staff_rejected": _l("人工审核拒绝"),
    "not_qualifying": _l("首投不满足条件"),
    "redeemed_early": _l("持有期内提前赎回"),
}

DECISION_LABELS = {"approved": _l("通过"), "rejected": _l("拒绝")}
CONFIRMED_HOW_LABELS = {"automatic": _l("自动（持有期满）"), "staff": _l("人工审核通过")}


class ReferralSetting(SettingRow, Base):
    """One program setting changed on the settings page (key/value); a missing key takes the configured default."""

    __tablename__ = "referral_settings"


class Referral(Base):
    """One referee's referral: derived from the log, the staff reviews and the confirmation feed (a projection)."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_status_hold", "status", "hold_ends_at"),
                      Index("ix_referrals_qualified_referrer", "qualified_at", "referrer_id"))

    referee_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), primary_key=True, autoincrement=False)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    registered_at: Mapped[datetime | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16))
    window_ends_at: Mapped[datetime | None]
    # The referee's first investment, whether or not it qualified.
    first_investment_id: Mapped[str | None] = mapped_column(String(200))
    first_investment_fen: Mapped[int | None] = mapped_column(BigInteger)
    first_investment_term_days: Mapped[int | None]
    qualified_at: Mapped[datetime | None]
    hold_ends_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    confirmed_how: Mapped[str | None] = mapped_column(String(16))
    rejected_reason: Mapped[str | None] = mapped_column(String(32))
    # [{"code": "shared_subnet", "detail": {...}}]: BLOCK and FLAG reasons with what triggered them.
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The staff decision that applies (copied from referral_reviews, which a replay keeps).
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decided_at: Mapped[datetime | None]


class ReferralReview(Base):
    """A staff decision on a flagged referral: not in the event log, so a replay keeps it."""

    __tablename__ = "referral_reviews"
    # One decision per referee and referrer: a double submit or two reviewers at once cannot both decide.
    __table_args__ = (UniqueConstraint("referee_id", "referrer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referee_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    decision: Mapped[str] = mapped_column(String(16))  # approved / rejected
    note: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(254))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


# The cause of work done for a confirmed referral (campaign members, their rewards): "referral:<referee id>".
REWARD_CAUSE_PREFIX = "referral:"


def referral_cause(referee_id: int) -> str:
    """Return the cause that keys what a campaign does for one confirmed referral."""
    return f"{REWARD_CAUSE_PREFIX}{referee_id}"


class ReferralConfirmation(Base):
    """The `referral_confirmed` trigger feed: append-only, one row per referral at most, read with a cursor."""

    __tablename__ = "referral_confirmations"
    __table_args__ = (Index("ix_referral_confirmations_at_referrer", "confirmed_at", "referrer_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    referee_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), unique=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    confirmed_at: Mapped[datetime]
    how: Mapped[str] = mapped_column(String(16))  # automatic / staff


class ReferralVisit(Base):
    """One visit through a share link /r/<code> (an invite); no personal data but a keyed hash of the address."""

    __tablename__ = "referral_visits"
    __table_args__ = (Index("ix_referral_visits_referrer_at", "referrer_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("investors.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    visitor: Mapped[str] = mapped_column(String(32), default="")  # HMAC of the IP, to count a visitor once a while
