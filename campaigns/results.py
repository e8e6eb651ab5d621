"""Campaign figures: the estimated cost before approval and the results of spec §3 after.

Results: `members` everyone who entered, `holdout` those kept out by the stable hash, `treated` the
rest; `granted` the members whose reward list was granted, `budget_exhausted` those a limit kept
from it; `messages` per channel and status (the platform webhook is not a message to a person);
`rewards` every reward granted and the current state of each, with their cost; `invested`, per side,
the members who invested after entering and the sum of those investments — the treated side against
the holdout is the campaign's lift.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction
from math import sqrt
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from campaigns.definition import (
    CashbackReward,
    CashReward,
    Definition,
    ExperienceFundsReward,
    RateBoostReward,
    VoucherReward,
)
from campaigns.definition import Reward as RewardSpec
from campaigns.models import CampaignMember
from channels.models import STATUSES as MESSAGE_STATUSES
from channels.models import OutboxMessage
from growth.investors.models import Investment
from growth.money import fen_to_api
from growth.rewards.models import Reward
from growth.rewards.rules import cashback_cost, experience_funds_cost, rate_boost_cost

PEOPLE_CHANNELS = ("sms", "email", "wechat")


def reward_estimate(spec: RewardSpec, definition: Definition) -> int:
    """Return what one reward is expected to cost if used, in fen (a rate boost or cashback on the least
    investment the campaign admits, as nothing larger is known before it happens)."""
    conditions = definition.trigger.conditions if definition.trigger is not None else None
    least = conditions.min_amount if conditions is not None and conditions.min_amount else None
    match spec:
        case CashReward() | VoucherReward():
            return spec.amount
        case ExperienceFundsReward():
            return experience_funds_cost(spec.amount, spec.annual_rate, spec.days)
        case RateBoostReward():
            principal = spec.min_investment or least or 0
            term = spec.min_term_days or spec.max_days
            return rate_boost_cost(principal, spec.annual_rate, spec.max_days, term)
        case CashbackReward():
            return cashback_cost(least or 0, spec.rate)
    return 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """The cost estimate shown beside the budget."""

    grants: int  # members who would get the reward list (treated, within max_grants)
    cost_fen: int

    def as_json(self) -> str:
        """Return the estimate as the spec's money string."""
        return fen_to_api(self.cost_fen)


def estimate(definition: Definition, treated: int) -> Estimate:
    """Return the estimated cost of granting the reward list to `treated` members within the budget."""
    per_member = sum(reward_estimate(r, definition) for r in definition.rewards)
    grants = treated if definition.budget.max_grants is None else min(treated, definition.budget.max_grants)
    face = sum(getattr(r, "amount", 0) or 0 for r in definition.rewards)
    if definition.budget.max_amount is not None and face:
        grants = min(grants, definition.budget.max_amount // face)
    return Estimate(grants, grants * per_member)


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a campaign (treated or holdout): its people, those who invested after entering, and how much."""

    people: int
    investors: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class Figures:
    """A campaign's results with money in fen; `as_json` is the spec §3 shape."""

    by_status: dict[str, int]
    granted_members: int
    messages: dict[str, dict[str, int]]
    reward_states: dict[str, int]
    cost_fen: int
    treated: Side
    holdout: Side

    @property
    def members(self) -> int:
        """Everyone who entered."""
        return sum(self.by_status.values())

    def as_json(self) -> dict[str, Any]:
        """Return the results in the spec's shape (spec §3)."""
        states = self.reward_states
        holdout = self.by_status.get("holdout", 0)
        return {
            "members": self.members, "holdout": holdout, "treated": self.members - holdout,
            "granted": self.granted_members, "budget_exhausted": self.by_status.get("budget_exhausted", 0),
            "messages": self.messages,
            "rewards": {"granted": sum(states.values()), "redeemed": states.get("redeemed", 0),
                        "expired": states.get("expired", 0), "revoked": states.get("revoked", 0),
                        "paid": states.get("paid", 0), "clawed_back": states.get("clawed_back", 0),
                        "cost": fen_to_api(self.cost_fen)},
            "invested": {name: {"investors": side.investors, "amount": fen_to_api(side.amount_fen)}
                         for name, side in (("treated", self.treated), ("holdout", self.holdout))},
        }


def figures(campaign_id: int, *, session: Session) -> Figures:
    """Return a campaign's results, money in fen."""
    m = CampaignMember
    by_status: dict[str, int] = {status: n for status, n in session.execute(
        select(m.status, func.count()).where(m.campaign_id == campaign_id).group_by(m.status))}
    granted_members = session.scalar(select(func.count()).where(m.campaign_id == campaign_id,
                                                                 m.rewards_granted > 0)) or 0
    messages: dict[str, dict[str, int]] = {c: dict.fromkeys(MESSAGE_STATUSES, 0) for c in PEOPLE_CHANNELS}
    for channel, status, n in session.execute(
            select(OutboxMessage.channel, OutboxMessage.status, func.count())
            .where(OutboxMessage.campaign_id == campaign_id, OutboxMessage.channel.in_(PEOPLE_CHANNELS))
            .group_by(OutboxMessage.channel, OutboxMessage.status)):
        messages[channel][status] = n
    reward_states: dict[str, int] = {status: n for status, n in session.execute(
        select(Reward.status, func.count()).where(Reward.campaign_id == campaign_id).group_by(Reward.status))}
    # SUM over BIGINT is NUMERIC on PostgreSQL: back to an int of fen.
    cost = int(session.scalar(select(func.coalesce(func.sum(Reward.cost_fen), 0)).where(
        Reward.campaign_id == campaign_id)) or 0)
    people: dict[bool, int] = {bool(side): n for side, n in session.execute(
        select(m.holdout, func.count(func.distinct(m.investor_id))).where(m.campaign_id == campaign_id)
        .group_by(m.holdout))}
    invested: dict[bool, tuple[int, int]] = defaultdict(lambda: (0, 0))
    # Investments started after the member entered (the first entry of each investor counts).
    first = (select(m.investor_id, m.holdout, func.min(m.entered_at).label("entered_at"))
             .where(m.campaign_id == campaign_id).group_by(m.investor_id, m.holdout).subquery())
    query = (select(first.c.holdout, func.count(func.distinct(Investment.investor_id)),
                    func.coalesce(func.sum(Investment.amount_fen), 0))
             .join(Investment, and_(Investment.investor_id == first.c.investor_id,
                                    Investment.started_at >= first.c.entered_at))
             .group_by(first.c.holdout))
    for side, investors, amount in session.execute(query):
        invested[bool(side)] = (investors, int(amount))
    return Figures(by_status, granted_members, messages, reward_states, cost,
                   treated=Side(people.get(False, 0), *invested[False]),
                   holdout=Side(people.get(True, 0), *invested[True]))


def results(campaign_id: int, *, session: Session) -> dict[str, Any]:
    """Return a campaign's results in the spec's shape (spec §3)."""
    return figures(campaign_id, session=session).as_json()


# --- what the results mean: pure -------------------------------------------------------------------------

Z95 = 1.959963984540054  # the standard normal quantile of a two-sided 95 % interval


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate with its confidence interval."""

    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Tell whether the interval lies wholly on one side of zero (a difference the data supports)."""
        return self.low > 0 or self.high < 0


def rate_interval(hits: int, total: int, *, z: float = Z95) -> Interval | None:
    """Return a proportion with its Wald interval clipped to [0, 1]; None when there is nobody to count."""
    if total <= 0:
        return None
    p = min(hits, total) / total
    half = z * sqrt(p * (1 - p) / total)
    return Interval(p, max(0.0, p - half), min(1.0, p + half))


def lift(treated_hits: int, treated: int, holdout_hits: int, holdout: int, *, z: float = Z95) -> Interval | None:
    """Return treated rate − holdout rate with its 95 % interval (normal approximation for a difference of two
    independent proportions, unpooled); None without people on both sides."""
    if treated <= 0 or holdout <= 0:
        return None
    p1, p2 = min(treated_hits, treated) / treated, min(holdout_hits, holdout) / holdout
    half = z * sqrt(p1 * (1 - p1) / treated + p2 * (1 - p2) / holdout)
    return Interval(p1 - p2, p1 - p2 - half, p1 - p2 + half)


def incremental_invested(treated: Side, holdout: Side) -> int | None:
    """Return, in fen, what the treated side invested beyond what it would have at the holdout's amount per
    person; None without people on both sides."""
    if treated.people <= 0 or holdout.people <= 0:
        return None
    return round(treated.amount_fen - holdout.amount_fen * treated.people / holdout.people)


def per_yuan_of_cost(incremental_fen: int | None, cost_fen: int) -> float | None:
    """Return the incremental amount invested per yuan the rewards cost; None when either is unknown or zero."""
    if incremental_fen is None or cost_fen <= 0:
        return None
    return incremental_fen / cost_fen


YEAR_DAYS = 365  # annualised = amount × term_days / 365, as channel economics (campaigns-api.md §7) counts it


def annualised(amount_term_fen_days: int) -> Fraction:
    """Return Σ amount × term_days / 365 in fen, exact, from the sum of amount × term_days."""
    return Fraction(amount_term_fen_days, YEAR_DAYS)


def incremental_annualised(treated_fen_days: int, treated_people: int, holdout_fen_days: int,
                           holdout_people: int) -> Fraction | None:
    """Return, in fen and exact, the treated side's annualised investment beyond what it would have been at the
    holdout's annualised amount per person (treated − holdout × treated people / holdout people); None without
    people on both sides."""
    if treated_people <= 0 or holdout_people <= 0:
        return None
    return annualised(treated_fen_days) - annualised(holdout_fen_days) * Fraction(treated_people, holdout_people)


def per_yuan_exact(incremental_fen: Fraction | None, cost_fen: int) -> Fraction | None:
    """Return an incremental amount per yuan (= per fen, both in fen) of cost, exact; None when either is unknown
    or the cost is zero."""
    if incremental_fen is None or cost_fen <= 0:
        return None
    return incremental_fen / cost_fen
