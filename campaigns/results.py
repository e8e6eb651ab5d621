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


def results(campaign_id: int, *, session: Session) -> dict[str, Any]:
    """Return a campaign's results in the spec's shape (spec §3)."""
    m = CampaignMember
    by_status: dict[str, int] = {status: n for status, n in session.execute(
        select(m.status, func.count()).where(m.campaign_id == campaign_id).group_by(m.status))}
    members = sum(by_status.values())
    holdout = by_status.get("holdout", 0)
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
    invested: dict[bool, dict[str, int]] = defaultdict(lambda: {"investors": 0, "amount": 0})
    # Investments started after the member entered (the first entry of each investor counts).
    first = (select(m.investor_id, m.holdout, func.min(m.entered_at).label("entered_at"))
             .where(m.campaign_id == campaign_id).group_by(m.investor_id, m.holdout).subquery())
    query = (select(first.c.holdout, func.count(func.distinct(Investment.investor_id)),
                    func.coalesce(func.sum(Investment.amount_fen), 0))
             .join(Investment, and_(Investment.investor_id == first.c.investor_id,
                                    Investment.started_at >= first.c.entered_at))
             .group_by(first.c.holdout))
    for side, investors, amount in session.execute(query):
        invested[bool(side)] = {"investors": investors, "amount": int(amount)}
    return {
        "members": members, "holdout": holdout, "treated": members - holdout,
        "granted": granted_members, "budget_exhausted": by_status.get("budget_exhausted", 0),
        "messages": messages,
        "rewards": {"granted": sum(reward_states.values()), "redeemed": reward_states.get("redeemed", 0),
                    "expired": reward_states.get("expired", 0), "revoked": reward_states.get("revoked", 0),
                    "paid": reward_states.get("paid", 0), "clawed_back": reward_states.get("clawed_back", 0),
                    "cost": fen_to_api(cost)},
        "invested": {side: {"investors": invested[flag]["investors"], "amount": fen_to_api(invested[flag]["amount"])}
                     for side, flag in (("treated", False), ("holdout", True))},
    }
