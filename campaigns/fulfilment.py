"""Fulfilment: what a campaign member gets — its rewards through the ledger, its messages through the outbox.

Members (`campaign_members`, written by the trigger consumer or a run's selection) are fulfilled when due,
oldest first, a chunk per transaction, each member in a savepoint: the reward list is ONE grant of the
campaign's budget (`growth.rewards.services.grant_pack`: one of max_grants and per_investor, the values
summed against max_amount); a member whose grant would break a limit gets no reward and no message and
is counted `budget_exhausted`. Messages are rendered here (sandboxed Jinja2 with the spec's variables) and
enqueued with their fallback chains, keyed (campaign, investor, channel, cause), so a retry, a replay or
a second runner makes nothing twice. A paused campaign's members wait; a cancelled one's get nothing.
With an `investment_created` trigger a rate boost applies to the triggering investment and is redeemed
at grant (spec §2, 限时加息).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaigns.definition import (
    CashbackReward,
    CashReward,
    Definition,
    EmailMessage,
    ExperienceFundsReward,
    Message,
    RateBoostReward,
    SmsMessage,
    VoucherReward,
    WechatMessage,
    parse,
)
from campaigns.definition import Reward as RewardSpec
from campaigns.models import Campaign, CampaignMember
from campaigns.preview import chains
from channels.adapters.port import Channel, MessageClass
from channels.outbox import Fallback, NewMessage, enqueue_many
from channels.receipts import UNSUBSCRIBE_CHANNELS, unsubscribe_link_for
from channels.templates import context as template_context
from channels.templates import render
from growth.db import get_db
from growth.investors.models import Investment, Investor
from growth.investors.rules import mask_phone
from growth.referrals.models import ReferralConfirmation
from growth.rewards import services as rewards
from growth.rewards.models import Reward
from growth.rewards.rules import BudgetExhausted, InvalidTerms, Terms, message_variables, rate_boost_cost
from growth.timeutil import utcnow

log = logging.getLogger("campaigns.fulfilment")
SENDER = "campaign"
ACTOR = "campaign"
LIVE = ("active", "running", "finished")  # members of these campaigns are fulfilled; paused ones wait


@dataclass(frozen=True, slots=True)
class _Investment:
    investment_id: str
    amount_fen: int | None
    term_days: int | None


def terms_for(spec: RewardSpec, investment: _Investment | None) -> tuple[str, Terms]:
    """Return a definition's reward as the ledger's kind and terms (on the triggering investment when it has one)."""
    match spec:
        case CashReward():
            return "cash", Terms(amount_fen=spec.amount)
        case VoucherReward():
            return "voucher", Terms(amount_fen=spec.amount, min_investment_fen=spec.min_investment,
                                    min_term_days=spec.min_term_days, valid_days=spec.valid_days)
        case RateBoostReward():
            # On a triggering investment the boost is for that investment: its amount bounds the cost;
            # otherwise the definition's max_investment does (needed under a budget with max_amount).
            bound = investment.amount_fen if investment is not None else spec.max_investment
            return "rate_boost", Terms(annual_rate_bp=spec.annual_rate, max_days=spec.max_days,
                                       min_investment_fen=spec.min_investment, min_term_days=spec.min_term_days,
                                       valid_days=spec.valid_days, max_investment_fen=bound)
        case ExperienceFundsReward():
            return "experience_funds", Terms(amount_fen=spec.amount, annual_rate_bp=spec.annual_rate, days=spec.days,
                                             valid_days=spec.valid_days)
        case CashbackReward():
            return "cashback", Terms(rate_bp=spec.rate, hold_days=spec.hold_days,
                                     principal_fen=investment.amount_fen if investment else None,
                                     investment_id=investment.investment_id if investment else None)
    raise ValueError(spec)


def _content(message: Message, variables: dict[str, Any]) -> dict[str, Any]:
    if isinstance(message, SmsMessage):
        content: dict[str, Any] = {"text": render(message.text, variables)}
        if message.template_code:
            content["template_code"] = message.template_code
            content["params"] = {k: render(v, variables) for k, v in (message.params or {}).items()}
        return content
    if isinstance(message, EmailMessage):
        content = {"subject": render(message.subject, variables), "text": render(message.text, variables)}
        if message.html:
            content["html"] = render(message.html, variables, html=True)
        return content
    assert isinstance(message, WechatMessage)
    if message.kind == "mass":
        return {"wechat_kind": "mass", "text": render(message.text or "", variables)}
    content = {"wechat_kind": "template", "template_id": message.template_id,
               "data": {k: render(v, variables) for k, v in (message.data or {}).items()}}
    if message.url:
        content["url"] = render(message.url, variables)
    return content


def messages_for(definition: Definition, *, campaign_id: int, member: CampaignMember, investor: Investor,
                 reward: Reward | None, app: Flask, now: datetime) -> list[NewMessage]:
    """Render a member's messages: one per fallback chain, the chain's later channels as its fallbacks."""
    base = template_context(investor_name=investor.name or "", masked_phone=mask_phone(investor.phone),
                            campaign_name=definition.name, **message_variables(reward))
    klass = MessageClass.MARKETING if definition.marketing else MessageClass.SERVICE
    out = []
    for chain in chains(definition.messages):
        rendered = []
        for message in chain:
            variables = dict(base)
            if message.channel in UNSUBSCRIBE_CHANNELS:
                variables["unsubscribe_url"] = unsubscribe_link_for(investor.id, message.channel, app=app, now=now)
            rendered.append((Channel(message.channel), _content(message, variables)))
        (channel, content), rest = rendered[0], rendered[1:]
        out.append(NewMessage(sender=SENDER, cause=member.cause, channel=channel, message_class=klass,
                              content=content, investor_id=investor.id, user_id=investor.platform_user_id,
                              campaign_id=campaign_id, fallbacks=tuple(Fallback(c, body) for c, body in rest)))
    return out


def _redeem_at_grant(session: Session, reward: Reward, investment: _Investment, now: datetime) -> None:
    """Redeem a rate boost on the investment that triggered it (its cost is known now: principal and term)."""
    if investment.amount_fen is None or investment.term_days is None:
        return
    if reward.min_investment_fen and investment.amount_fen < reward.min_investment_fen:
        return  # the investment does not meet the coupon's own conditions: it stays a coupon
    if reward.min_term_days and investment.term_days < reward.min_term_days:
        return
    cost = rate_boost_cost(investment.amount_fen, reward.annual_rate_bp or 0, reward.max_days or 0,
                           investment.term_days)
    rewards.append_entries([rewards.entry_row(reward.id, "redeemed", "grant", at=now, now=now, actor=ACTOR,
                                              amount=cost, investment_id=investment.investment_id)],
                           session=session)
    rewards.refresh(session=session, reward_ids=[reward.id])


@dataclass
class _Live:
    campaign: Campaign
    definition: Definition
    budget: Any


def _live(session: Session, campaign: Campaign, now: datetime) -> _Live:
    definition = parse(campaign.definition)
    limits = definition.budget
    budget = rewards.budget_for("campaign", str(campaign.id), session=session, now=now, name=campaign.name,
                                max_grants=limits.max_grants, max_amount_fen=limits.max_amount,
                                per_investor=limits.per_investor)
    if (budget.max_grants, budget.max_amount_fen, budget.per_investor) != (
            limits.max_grants, limits.max_amount, limits.per_investor):  # edited and approved again
        rewards.set_limits(budget, session=session, max_grants=limits.max_grants, max_amount_fen=limits.max_amount,
                           per_investor=limits.per_investor)
    return _Live(campaign, definition, budget)


def _recipients(definition: Definition, member: CampaignMember, investor: Investor, *,
                session: Session) -> list[tuple[str | None, Investor]]:
    """Return who the member's rewards and messages go to: the member, or for a referral the referee and referrer."""
    if definition.trigger is None or definition.trigger.on != "referral_confirmed":
        return [(None, investor)]
    referrer_id = session.scalar(select(ReferralConfirmation.referrer_id).where(
        ReferralConfirmation.referee_id == member.investor_id))
    referrer = session.get(Investor, referrer_id) if referrer_id is not None else None
    sides: list[tuple[str | None, Investor]] = [("referee", investor)]
    if referrer is not None:
        sides.append(("referrer", referrer))
    return sides


def fulfil_member(member: CampaignMember, live: _Live, investor: Investor, investment: _Investment | None, *,
                  session: Session, app: Flask, now: datetime) -> str:
    """Grant a member's rewards and enqueue its messages (or nothing, if the budget is out); return its status.

    Sets `member.rewards_granted` to the number of rewards it got.
    """
    definition = live.definition
    granted: list[Reward] = []
    try:
        with session.begin_nested():
            messages: list[NewMessage] = []
            for side, recipient in _recipients(definition, member, investor, session=session):
                specs = [(i, r) for i, r in enumerate(definition.rewards) if side is None or r.to == side]
                mine: list[Reward] = []
                if specs:
                    items = [terms_for(r, investment) for _i, r in specs]
                    keys = [f"campaign:{live.campaign.id}:member:{member.id}:{i}" for i, _r in specs]
                    mine = rewards.grant_pack(session=session, keys=keys, investor_id=recipient.id, items=items,
                                              budget=live.budget, actor=ACTOR, now=now,
                                              campaign_id=live.campaign.id, cause=member.cause)
                on_investment = definition.trigger is not None and definition.trigger.on == "investment_created"
                for reward in mine:
                    if reward.kind == "rate_boost" and on_investment and investment is not None:
                        _redeem_at_grant(session, reward, investment, now)
                granted += mine
                messages += messages_for(definition, campaign_id=live.campaign.id, member=member,
                                         investor=recipient, reward=mine[0] if mine else None, app=app, now=now)
            enqueue_many(messages, session=session, now=now)
    except BudgetExhausted:
        return "budget_exhausted"
    except InvalidTerms as err:
        log.warning("campaign %s member %s: %s", live.campaign.id, member.id, err)
        return "failed"
    member.rewards_granted = len(granted)
    return "done"


def fulfil_due(*, session: Session, app: Flask, now: datetime, limit: int = 200) -> int:
    """Fulfil the due members of live campaigns (a chunk); mark a cancelled campaign's members; return how many."""
    query = (select(CampaignMember).join(Campaign, Campaign.id == CampaignMember.campaign_id)
             .where(CampaignMember.status == "pending", CampaignMember.due_at <= now,
                    Campaign.status.in_((*LIVE, "cancelled")))
             .order_by(CampaignMember.due_at, CampaignMember.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=CampaignMember)
    members: Sequence[CampaignMember] = session.scalars(query).all()
    if not members:
        return 0
    investors = {i.id: i for i in session.scalars(select(Investor).where(
        Investor.id.in_({m.investor_id for m in members})))}
    investment_ids = {m.investment_id for m in members if m.investment_id}
    investments = {i.investment_id: _Investment(i.investment_id, i.amount_fen, i.term_days) for i in session.scalars(
        select(Investment).where(Investment.investment_id.in_(investment_ids)))} if investment_ids else {}
    live: dict[int, _Live] = {}
    for member in members:
        campaign = session.get(Campaign, member.campaign_id)
        assert campaign is not None
        if campaign.status == "cancelled":
            member.status, member.fulfilled_at = "cancelled", now
            continue
        if campaign.id not in live:
            live[campaign.id] = _live(session, campaign, now)
        investment = investments.get(member.investment_id) if member.investment_id else None
        member.status = fulfil_member(member, live[campaign.id], investors[member.investor_id], investment,
                                      session=session, app=app, now=now)
        member.fulfilled_at = now
    session.flush()
    return len(members)


def _has_due(session: Session, now: datetime) -> bool:
    query = (select(CampaignMember.id).join(Campaign, Campaign.id == CampaignMember.campaign_id)
             .where(CampaignMember.status == "pending", CampaignMember.due_at <= now,
                    Campaign.status.in_((*LIVE, "cancelled"))).limit(1))
    return session.scalar(query) is not None


def run_fulfilment(app: Flask, stop: threading.Event) -> None:
    """Background worker: fulfil due members chunk by chunk (several may run on PostgreSQL: SKIP LOCKED)."""
    db = get_db(app)
    idle = float(app.config.get("CAMPAIGN_FULFILMENT_IDLE_SECONDS", 0.5))
    while not stop.is_set():
        with db.session_scope() as session:  # a read first: an idle worker takes no write lock
            due = _has_due(session, utcnow())
        if not due:
            stop.wait(idle)
            continue
        with db.session_scope(write=True) as session:
            done = fulfil_due(session=session, app=app, now=utcnow())
        if not done:
            stop.wait(idle)
