"""Referral growth beyond the weekly stats: top referrers and fraud flags over a range of Shanghai days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from growth.db import among
from growth.investors.models import Investor
from growth.investors.rules import mask_name, mask_phone
from growth.money import fen_to_api
from growth.referrals.models import (
    BLOCK_REASONS,
    FLAG_REASONS,
    REWARD_CAUSE_PREFIX,
    Referral,
    ReferralConfirmation,
    ReferralVisit,
)
from growth.rewards.models import Reward
from growth.timeutil import local_day_bounds

TOP_REFERRERS = 20
FIGURES = ("invites", "registrations", "qualified", "confirmed", "rewards_cost")


@dataclass(slots=True)
class TopReferrer:
    """One referrer's figures in the range (rewards cost in fen), with what identifies them."""

    investor_id: int
    platform_user_id: str = ""
    name: str | None = None
    phone: str | None = None
    invites: int = 0
    registrations: int = 0
    qualified: int = 0
    confirmed: int = 0
    rewards_cost: int = 0

    def rank_key(self) -> tuple[int, ...]:
        """Order: most registrations, then confirmed, qualified, invites; the lower investor id breaks a tie."""
        return (-self.registrations, -self.confirmed, -self.qualified, -self.invites, self.investor_id)


@dataclass(slots=True)
class FlagSummary:
    """The range's referrals (by the referee's registration) by fraud reason and outcome."""

    referrals: int = 0
    flagged: int = 0  # referrals carrying any reason
    by_reason: dict[str, int] = field(default_factory=dict)  # referrals carrying each reason (BLOCK and FLAG)
    in_review: int = 0
    blocked: int = 0  # rejected at once by a BLOCK reason
    rejected: int = 0  # every rejection, blocked ones included
    rejected_by: dict[str, int] = field(default_factory=dict)


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return local_day_bounds(start)[0], local_day_bounds(end)[1]


def top_referrers(*, session: Session, start: date, end: date, limit: int = TOP_REFERRERS) -> list[TopReferrer]:
    """Return the referrers with the most referred registrations in [start, end] (Shanghai days), with figures.

    Each figure counts what happened in the range, as the weekly stats do: invites (share-link visits),
    registrations (referees registered), qualified (by `qualified_at`), confirmed (by the feed's `confirmed_at`),
    rewards cost (Σ the current cost of the rewards granted in the range for the referrer's referrals, to
    either side: their cause is "referral:<referee id>"). Six queries whatever the size.
    """
    lo, hi = _bounds(start, end)
    found: dict[int, TopReferrer] = {}

    def add(rows: Any, name: str) -> None:
        for referrer_id, n in rows:
            if referrer_id is not None:
                row = found.setdefault(referrer_id, TopReferrer(referrer_id))
                setattr(row, name, getattr(row, name) + int(n or 0))

    add(session.execute(select(ReferralVisit.referrer_id, func.count())
                        .where(ReferralVisit.at >= lo, ReferralVisit.at < hi).group_by(ReferralVisit.referrer_id)),
        "invites")
    add(session.execute(select(Investor.referrer_id, func.count())
                        .where(Investor.registered_at >= lo, Investor.registered_at < hi,
                               Investor.referrer_id.is_not(None)).group_by(Investor.referrer_id)), "registrations")
    add(session.execute(select(Referral.referrer_id, func.count())
                        .where(Referral.qualified_at >= lo, Referral.qualified_at < hi)
                        .group_by(Referral.referrer_id)), "qualified")
    add(session.execute(select(ReferralConfirmation.referrer_id, func.count())
                        .where(ReferralConfirmation.confirmed_at >= lo, ReferralConfirmation.confirmed_at < hi)
                        .group_by(ReferralConfirmation.referrer_id)), "confirmed")
    add(_rewards_by_referrer(session, lo, hi), "rewards_cost")
    ranked = sorted(found.values(), key=TopReferrer.rank_key)[:limit]
    if ranked:
        people = {i: (uid, name, phone) for i, uid, name, phone in session.execute(
            select(Investor.id, Investor.platform_user_id, Investor.name, Investor.phone)
            .where(Investor.id.in_([r.investor_id for r in ranked])))}
        for r in ranked:
            r.platform_user_id, r.name, r.phone = people.get(r.investor_id, ("", None, None))
    return ranked


def _rewards_by_referrer(session: Session, lo: datetime, hi: datetime) -> list[tuple[int, int]]:
    """Return (referrer id, Σ cost) of the referral rewards granted in [lo, hi): the cause names the referee."""
    by_referee: dict[int, int] = {}
    for cause, cost in session.execute(
            select(Reward.cause, func.sum(Reward.cost_fen))
            .where(Reward.granted_at >= lo, Reward.granted_at < hi, Reward.cause.like(f"{REWARD_CAUSE_PREFIX}%"))
            .group_by(Reward.cause)):
        tail = cause[len(REWARD_CAUSE_PREFIX):]
        if tail.isascii() and tail.isdigit():  # the prefix alone does not make a referral's cause
            by_referee[int(tail)] = by_referee.get(int(tail), 0) + int(cost or 0)
    if not by_referee:
        return []
    dialect = session.get_bind().dialect.name
    out: dict[int, int] = {}
    for referee_id, referrer_id in session.execute(
            select(Referral.referee_id, Referral.referrer_id)
            .where(among(Referral.referee_id, sorted(by_referee), dialect=dialect))):
        out[referrer_id] = out.get(referrer_id, 0) + by_referee[referee_id]
    return list(out.items())


def fraud_flags(*, session: Session, start: date, end: date) -> FlagSummary:
    """Return the referrals whose referee registered in [start, end] by fraud reason and outcome (two queries).

    A referral counts once per reason it carries; `blocked` are those a BLOCK reason rejected at once,
    `in_review` those a FLAG holds for a staff decision now.
    """
    lo, hi = _bounds(start, end)
    in_range = (Referral.registered_at >= lo, Referral.registered_at < hi)
    summary = FlagSummary()
    for status, reason, n in session.execute(
            select(Referral.status, Referral.rejected_reason, func.count()).where(*in_range)
            .group_by(Referral.status, Referral.rejected_reason)):
        summary.referrals += n
        if status == "in_review":
            summary.in_review += n
        if status == "rejected":
            summary.rejected += n
            summary.rejected_by[reason or ""] = summary.rejected_by.get(reason or "", 0) + n
            if reason == "blocked":
                summary.blocked += n
    # Only rows with reasons are read: their JSON text is not the empty list (the same test on both databases).
    for flags in session.scalars(select(Referral.flags).where(
            *in_range, cast(Referral.flags, Text).notin_(["[]", "null"]))):
        codes = {f.get("code") for f in flags or [] if isinstance(f, dict)} - {None}
        if codes:
            summary.flagged += 1
        for code in codes:
            summary.by_reason[str(code)] = summary.by_reason.get(str(code), 0) + 1
    return summary


REASON_ORDER = (*BLOCK_REASONS, *FLAG_REASONS)


def reason_rows(summary: FlagSummary) -> list[tuple[str, str, int]]:
    """Return (code, kind "block"/"flag", referrals) for every known reason, in the program's order, then others."""
    rows = [(code, "block" if code in BLOCK_REASONS else "flag", summary.by_reason.get(code, 0))
            for code in REASON_ORDER]
    rows += [(code, "other", n) for code, n in sorted(summary.by_reason.items()) if code not in REASON_ORDER]
    return rows


def referrer_json(r: TopReferrer) -> dict[str, Any]:
    """Return a top referrer as the API shows it: name and phone always masked (a token has no reveal)."""
    return {"investor_id": r.investor_id, "user_id": r.platform_user_id, "name": mask_name(r.name),
            "phone": mask_phone(r.phone), "invites": r.invites, "registrations": r.registrations,
            "qualified": r.qualified, "confirmed": r.confirmed, "rewards_cost": fen_to_api(r.rewards_cost)}


def flags_json(summary: FlagSummary) -> dict[str, Any]:
    """Return the fraud summary as the API shows it."""
    return {"referrals": summary.referrals, "flagged": summary.flagged, "in_review": summary.in_review,
            "blocked": summary.blocked, "rejected": summary.rejected,
            "rejected_by": dict(sorted(summary.rejected_by.items())),
            "reasons": [{"code": code, "kind": kind, "referrals": n} for code, kind, n in reason_rows(summary)]}
