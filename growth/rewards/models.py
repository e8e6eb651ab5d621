"""The incentive ledger: rewards, their append-only entries, budgets, uses on investments, manual requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from growth.db import Base

# The reward kinds of campaigns-api.md §2, with the labels every page shows for them.
KIND_LABELS = {
    "cash": _l("现金红包"),
    "voucher": _l("抵扣红包"),
    "rate_boost": _l("加息券"),
    "experience_funds": _l("体验金"),
    "cashback": _l("投资返现"),
}
KINDS = tuple(KIND_LABELS)
# Kinds an investor applies to one investment (`reward_ids` of investment.created).
USABLE_ON_INVESTMENT = ("voucher", "rate_boost")

# A reward's status (spec §4), derived from its entries and kept on the row for queries.
STATUS_LABELS = {
    "granted": _l("已发放"),
    "redeemed": _l("已使用"),
    "expired": _l("已过期"),
    "revoked": _l("已撤销"),
    "paid": _l("已支付"),
    "clawed_back": _l("已追回"),
}
STATUSES = tuple(STATUS_LABELS)

# What a ledger entry records.
ENTRY_LABELS = {
    "granted": _l("发放"),
    "redeemed": _l("使用"),
    "expired": _l("过期"),
    "revoked": _l("撤销"),
    "paid": _l("支付"),
    "clawed_back": _l("追回"),
    "debt": _l("追回欠款"),
}
ENTRY_KINDS = tuple(ENTRY_LABELS)

# Who wrote an entry. Only `projection` entries are derived from the event log (a replay rebuilds them);
# the others were decided here (grants, staff, jobs) and survive a replay.
ENTRY_SOURCES = ("grant", "staff", "job", "projection")
PROJECTION = "projection"

# Why a reward named on an investment was not redeemed.
INVALID_REASON_LABELS = {
    "not_found": _l("红包不存在"),
    "wrong_owner": _l("不属于该投资人"),
    "expired": _l("已过期"),
    "not_usable": _l("不可使用（已用、已撤销或该类型不可用于投资）"),
    "conditions_unmet": _l("投资不满足使用条件"),
}
INVALID_REASONS = tuple(INVALID_REASON_LABELS)

# Whose budget it is.
BUDGET_OWNER_LABELS = {"campaign": _l("活动"), "referral": _l("邀请计划"), "manual": _l("手工发放")}
BUDGET_OWNERS = tuple(BUDGET_OWNER_LABELS)

REQUEST_STATUS_LABELS = {"pending": _l("待审批"), "approved": _l("已批准"), "rejected": _l("已驳回")}


def public_id(reward_id: int) -> str:
    """Return a reward's id as the platform sees it ("rw_123")."""
    return f"rw_{reward_id}"


def parse_public_id(text: object) -> int | None:
    """Return the database id of a "rw_..." id, or None when it is not one of ours."""
    if not isinstance(text, str) or not text.startswith("rw_"):
        return None
    digits = text[3:]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18 or digits.startswith("0"):
        return None
    return int(digits)


class RewardBudget(Base):
    """A budget rewards are granted against: counts and amounts used, consumed by conditional updates."""

    __tablename__ = "reward_budgets"
    __table_args__ = (UniqueConstraint("owner_type", "owner_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_type: Mapped[str] = mapped_column(String(16))  # one of BUDGET_OWNERS
    owner_key: Mapped[str] = mapped_column(String(64))  # campaign id, "program", "manual"
    name: Mapped[str] = mapped_column(String(200))
    max_grants: Mapped[int | None]
    max_amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    per_investor: Mapped[int | None]
    used_grants: Mapped[int] = mapped_column(default=0)
    used_amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]


class RewardBudgetUse(Base):
    """How many grants of one budget one investor has had (the per-investor limit)."""

    __tablename__ = "reward_budget_uses"
    __table_args__ = (UniqueConstraint("budget_id", "investor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    budget_id: Mapped[int]  # no foreign keys: see Reward.budget_id
    investor_id: Mapped[int] = mapped_column(index=True)
    used: Mapped[int] = mapped_column(default=0)


class Reward(Base):
    """One incentive given to one investor: its terms, and its status and cost derived from its entries."""

    __tablename__ = "rewards"
    __table_args__ = (
        Index("ix_rewards_investor_status", "investor_id", "status"),
        # Channel economics: an investor's rewards by grant time, with their cost, from the index alone.
        Index("ix_rewards_investor_granted", "investor_id", "granted_at", "cost_fen"),
        Index("ix_rewards_granted_cost", "granted_at", "cost_fen"),  # incentive spend per day (home KPIs)
        Index("ix_rewards_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)  # the grant's idempotency key
    investor_id: Mapped[int]  # no foreign key: see budget_id (and investors are never deleted)
    kind: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default="granted")
    # No foreign keys to the budget and the investor: a grant takes its budget row (UPDATE … WHERE it fits) in
    # the same transaction, for investors it has read; neither is ever deleted (erasure anonymises an investor
    # in place). A run writes thousands of rewards per chunk: a check per row was a lookup and a row lock on
    # the parent each, and the runner's threads share-locked the one budget (bench/README.md, the fan-out).
    budget_id: Mapped[int] = mapped_column(index=True)
    # No foreign key yet: the campaigns issue adds the campaigns table and the constraint.
    campaign_id: Mapped[int | None] = mapped_column(index=True)

    # Terms (integer fen and basis points; which apply depends on the kind).
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)  # cash, voucher, experience funds
    annual_rate_bp: Mapped[int | None]  # rate boost, experience funds
    rate_bp: Mapped[int | None]  # cashback
    max_days: Mapped[int | None]  # rate boost
    days: Mapped[int | None]  # experience funds
    hold_days: Mapped[int | None]  # cashback
    principal_fen: Mapped[int | None] = mapped_column(BigInteger)  # cashback: the triggering investment
    min_investment_fen: Mapped[int | None] = mapped_column(BigInteger)
    max_investment_fen: Mapped[int | None] = mapped_column(BigInteger)  # rate boost: bounds its cost
    min_term_days: Mapped[int | None]
    valid_days: Mapped[int | None]

    budget_fen: Mapped[int] = mapped_column(BigInteger, default=0)  # what the grant consumed of max_amount
    # Derived from the entries: the platform investment it is on (cashback: from the grant), the cost
    # it has in its current state (campaigns-api.md §7), when it last changed status.
    investment_id: Mapped[str | None] = mapped_column(String(200), index=True)
    cost_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    settled_at: Mapped[datetime | None]

    granted_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    granted_by: Mapped[str] = mapped_column(String(254))  # staff email, "campaign", "referral" ...
    cause: Mapped[str] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)


class RewardEntry(Base):
    """One transition of a reward, appended once (its key is unique); never changed by staff or jobs."""

    __tablename__ = "reward_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of ENTRY_KINDS
    source: Mapped[str] = mapped_column(String(16))  # one of ENTRY_SOURCES
    at: Mapped[datetime]  # when it happened in business terms (the event's occurred_at, the expiry ...)
    recorded_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(254))  # staff email, "campaign", "job", an event id ...
    amount_fen: Mapped[int] = mapped_column(BigInteger, default=0)
    investment_id: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)


class RewardUse(Base):
    """A reward named on an investment (`reward_ids`): redeemed, or an invalid use with its reason."""

    __tablename__ = "reward_uses"
    __table_args__ = (UniqueConstraint("investment_id", "reward_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investment_id: Mapped[str] = mapped_column(String(200))
    reward_ref: Mapped[str] = mapped_column(String(200), index=True)  # as the platform sent it
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"), index=True)
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    occurred_at: Mapped[datetime]
    valid: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(String(24))  # one of INVALID_REASONS when not valid


class GrantRequest(Base):
    """A manual grant above the approval threshold, waiting for a second administrator."""

    __tablename__ = "reward_grant_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)  # from the form: a double submit files one request
    investor_id: Mapped[int] = mapped_column(ForeignKey("investors.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    terms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    value_fen: Mapped[int] = mapped_column(BigInteger)  # what the threshold was compared with
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_by: Mapped[str] = mapped_column(String(254))
    requested_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decided_at: Mapped[datetime | None]
    decision_note: Mapped[str | None] = mapped_column(Text)
    reward_id: Mapped[int | None] = mapped_column(ForeignKey("rewards.id"))
