"""Fulfilment: what a campaign member gets — its rewards through the ledger, its messages through the outbox.

Members (`campaign_members`, written by the trigger consumer or a run's selection) are fulfilled when due,
oldest first, a chunk per transaction, read as plain rows. Members who get the same reward list (a run's
audience, most triggers) are granted together: ONE `grant_packs` of the chunk (each member's list is one
grant of the campaign's budget: one of max_grants and per_investor, the values summed against
max_amount; the packs are taken in order while the budget lasts), then their messages rendered
(sandboxed Jinja2, each template compiled once, the spec's variables; the investor's name as a slot that
delivery fills in, `channels.templates.NAME_SLOT`) and enqueued in one bulk insert
with their fallback chains. Members whose rewards depend on them — a triggering investment, a
referral's referee and referrer — go one by one, each in a savepoint. A member whose grant would
break a limit gets no reward and no message and is counted `budget_exhausted`. Everything is keyed
(rewards by campaign, member and item; messages by campaign, investor, channel and cause), so a retry,
a replay or a second worker makes nothing twice. A paused campaign's members wait; a cancelled one's
get nothing. With an `investment_created` trigger a rate boost applies to the triggering investment
and is redeemed at grant (spec §2, 限时加息). A campaign with a `crm_task` asks the CRM for a follow-up task
for each member fulfilled (`growth.crm.services.create_campaign_tasks`, once per member), in the same
transaction.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import Flask
from flask_babel import get_locale
from sqlalchemy import Select, select
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
from channels.templates import NAME_SLOT, render
from channels.templates import context as template_context
from growth.crm import services as crm
from growth.db import among, get_db, table_of, update_many
from growth.investors.models import Investment, Investor
from growth.investors.rules import mask_phone
from growth.referrals.models import ReferralConfirmation
from growth.rewards import services as rewards
from growth.rewards.rules import BudgetExhausted, InvalidTerms, Terms, message_variables, rate_boost_cost
from growth.timeutil import utcnow

log = logging.getLogger("campaigns.fulfilment")
SENDER = "campaign"
ACTOR = "campaign"
LIVE = ("active", "running", "finished")  # members of these campaigns are fulfilled; paused ones wait
CHUNK = 2_000  # members a transaction fulfils: one grant of packs and one enqueue for most of them
_MEMBERS = table_of(CampaignMember)


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


def reward_variables_of_row(reward: dict[str, Any] | None) -> dict[str, str]:
    """A reward row's message variables, worked out once per distinct terms (a run's members all get the same)."""
    if reward is None:
        return message_variables(None)
    return _reward_variables_of(reward["kind"], reward["annual_rate_bp"], reward["rate_bp"], reward["amount_fen"],
                                reward["expires_at"], str(get_locale()))


@lru_cache(maxsize=256)
def _reward_variables_of(kind: str, annual_rate_bp: int | None, rate_bp: int | None, amount_fen: int | None,
                         expires_at: datetime | None, _locale: str) -> dict[str, str]:
    return message_variables({"kind": kind, "annual_rate_bp": annual_rate_bp, "rate_bp": rate_bp,
                              "amount_fen": amount_fen, "expires_at": expires_at})


def _uses_unsubscribe_url(message: Message) -> bool:
    """Tell whether a message's template mentions its unsubscribe link (signing one per member costs ~200 µs)."""
    return any("unsubscribe_url" in str(value) for value in message.__dict__.values())


@dataclass(frozen=True, slots=True)
class Person:
    """Who a member's rewards and messages go to: what fulfilment reads of an investor.

    Not the name: messages are queued with `channels.templates.NAME_SLOT` and delivery fills it in.
    """

    id: int
    platform_user_id: str
    phone: str | None


@dataclass(frozen=True, slots=True)
class Due:
    """A member due for fulfilment, as fulfilment reads it."""

    id: int
    campaign_id: int
    investor_id: int
    cause: str
    investment_id: str | None


PERSON_COLUMNS = (Investor.id, Investor.platform_user_id, Investor.phone)


def messages_for(definition: Definition, *, campaign_id: int, cause: str, person: Person,
                 reward: dict[str, Any] | None, app: Flask, now: datetime) -> list[NewMessage]:
    """Render a member's messages: one per fallback chain, the chain's later channels as its fallbacks.

    The investor's name is left as `NAME_SLOT`, for delivery to fill in when it sends.
    """
    base = template_context(investor_name=NAME_SLOT, masked_phone=mask_phone(person.phone),
                            campaign_name=definition.name, **reward_variables_of_row(reward))
    klass = MessageClass.MARKETING if definition.marketing else MessageClass.SERVICE
    out = []
    for chain in chains(definition.messages):
        rendered = []
        for message in chain:
            variables = base
            if message.channel in UNSUBSCRIBE_CHANNELS and _uses_unsubscribe_url(message):
                variables = {**base, "unsubscribe_url": unsubscribe_link_for(person.id, message.channel, app=app,
                                                                              now=now)}
            rendered.append((Channel(message.channel), _content(message, variables)))
        (channel, content), rest = rendered[0], rendered[1:]
        out.append(NewMessage(sender=SENDER, cause=cause, channel=channel, message_class=klass,
                              content=content, investor_id=person.id, user_id=person.platform_user_id,
                              campaign_id=campaign_id, fallbacks=tuple(Fallback(c, body) for c, body in rest)))
    return out


def _redeem_at_grant(session: Session, reward: dict[str, Any], investment: _Investment, now: datetime) -> None:
    """Redeem a rate boost on the investment that triggered it (its cost is known now: principal and term)."""
    if investment.amount_fen is None or investment.term_days is None:
        return
    if reward["min_investment_fen"] and investment.amount_fen < reward["min_investment_fen"]:
        return  # the investment does not meet the coupon's own conditions: it stays a coupon
    if reward["min_term_days"] and investment.term_days < reward["min_term_days"]:
        return
    cost = rate_boost_cost(investment.amount_fen, reward["annual_rate_bp"] or 0, reward["max_days"] or 0,
                           investment.term_days)
    rewards.append_entries([rewards.entry_row(reward["id"], "redeemed", "grant", at=now, now=now, actor=ACTOR,
                                              amount=cost, investment_id=investment.investment_id)],
                           session=session)
    rewards.refresh(session=session, reward_ids=[reward["id"]])


@dataclass
class _Live:
    campaign: Campaign
    definition: Definition
    budget: Any


def live(session: Session, campaign: Campaign, now: datetime) -> _Live:
    """Return a campaign being fulfilled: its definition and its budget (made on first use, limits kept current)."""
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


def _recipients(definition: Definition, member: Due, person: Person, *,
                session: Session) -> list[tuple[str | None, Person]]:
    """Return who the member's rewards and messages go to: the member, or for a referral the referee and referrer."""
    if not _is_referral(definition):
        return [(None, person)]
    referrer = session.execute(select(*PERSON_COLUMNS).join(
        ReferralConfirmation, ReferralConfirmation.referrer_id == Investor.id).where(
        ReferralConfirmation.referee_id == member.investor_id)).first()
    sides: list[tuple[str | None, Person]] = [("referee", person)]
    if referrer is not None:
        sides.append(("referrer", Person(*referrer)))
    return sides


def _is_referral(definition: Definition) -> bool:
    return definition.trigger is not None and definition.trigger.on == "referral_confirmed"


def _keys(campaign_id: int, member: Due, indexes: Sequence[int]) -> tuple[str, ...]:
    return tuple(f"campaign:{campaign_id}:member:{member.id}:{i}" for i in indexes)


def refused_status(err: InvalidTerms) -> str:
    """A member's status when the ledger refuses its terms.

    A rate boost with no bound on its principal has no maximum cost, so under `max_amount` it would break
    the limit: spec §2 counts such a member `budget_exhausted` (the editor warns about it beforehand).
    """
    return "budget_exhausted" if err.field == "max_investment_fen" else "failed"


def _outcome(member: Due, status: str, now: datetime, granted: int = 0) -> dict[str, Any]:
    return {"id": member.id, "status": status, "rewards_granted": granted, "fulfilled_at": now}


def fulfil_one(member: Due, live: _Live, person: Person, investment: _Investment | None, *,
               session: Session, app: Flask, now: datetime) -> dict[str, Any]:
    """Grant one member's rewards and enqueue its messages (or nothing, if the budget is out); return its outcome.

    For the members whose rewards depend on them: a triggering investment, or a referral's two sides.
    """
    definition = live.definition
    granted = 0
    try:
        with session.begin_nested():
            messages: list[NewMessage] = []
            for side, recipient in _recipients(definition, member, person, session=session):
                specs = [(i, r) for i, r in enumerate(definition.rewards) if side is None or r.to == side]
                mine: list[dict[str, Any]] = []
                if specs:
                    pack = rewards.Pack(recipient.id, recipient.platform_user_id,
                                        _keys(live.campaign.id, member, [i for i, _r in specs]), member.cause)
                    outcome = rewards.grant_packs(session=session, packs=[pack],
                                                  items=[terms_for(r, investment) for _i, r in specs],
                                                  budget=live.budget, actor=ACTOR, now=now,
                                                  campaign_id=live.campaign.id)
                    if 0 in outcome.refused:
                        raise BudgetExhausted(outcome.refused[0])
                    mine = outcome.granted[0]
                on_investment = definition.trigger is not None and definition.trigger.on == "investment_created"
                for reward in mine:
                    if reward["kind"] == "rate_boost" and on_investment and investment is not None:
                        _redeem_at_grant(session, reward, investment, now)
                granted += len(mine)
                messages += messages_for(definition, campaign_id=live.campaign.id, cause=member.cause,
                                         person=recipient, reward=mine[0] if mine else None, app=app, now=now)
            enqueue_many(messages, session=session, now=now)
    except BudgetExhausted:
        return _outcome(member, "budget_exhausted", now)
    except InvalidTerms as err:
        log.warning("campaign %s member %s: %s", live.campaign.id, member.id, err)
        return _outcome(member, refused_status(err), now)
    return _outcome(member, "done", now, granted)


def fulfil_together(members: Sequence[Due], live: _Live, people: dict[int, Person], *, session: Session,
                    app: Flask, now: datetime) -> list[dict[str, Any]]:
    """Fulfil members who all get the same reward list (distinct investors): one grant of packs, one enqueue.

    A run's audience and most triggers: the packs are granted while the budget lasts, in member order,
    and only the members granted (or of a campaign without rewards) get their messages.
    """
    definition = live.definition
    outcome = rewards.PackOutcome()
    if definition.rewards:
        indexes = range(len(definition.rewards))
        packs = [rewards.Pack(m.investor_id, people[m.investor_id].platform_user_id,
                              _keys(live.campaign.id, m, indexes), m.cause) for m in members]
        try:
            outcome = rewards.grant_packs(session=session, packs=packs,
                                          items=[terms_for(r, None) for r in definition.rewards],
                                          budget=live.budget, actor=ACTOR, now=now, campaign_id=live.campaign.id)
        except InvalidTerms as err:
            log.warning("campaign %s: %d members: %s", live.campaign.id, len(members), err)
            return [_outcome(m, refused_status(err), now) for m in members]
    results, messages = [], []
    for n, member in enumerate(members):
        if n in outcome.refused:
            results.append(_outcome(member, "budget_exhausted", now))
            continue
        mine = outcome.granted.get(n, [])
        messages += messages_for(definition, campaign_id=live.campaign.id, cause=member.cause,
                                 person=people[member.investor_id], reward=mine[0] if mine else None, app=app,
                                 now=now)
        results.append(_outcome(member, "done", now, len(mine)))
    enqueue_many(messages, session=session, now=now)
    return results


def _rounds(members: Sequence[Due]) -> list[list[Due]]:
    """Split members into rounds of distinct investors (an investor may be due twice: two runs, two fires)."""
    rounds: list[list[Due]] = []
    seen: dict[int, int] = {}
    for member in members:
        n = seen.get(member.investor_id, 0)
        seen[member.investor_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(member)
    return rounds


def fulfil_campaign(members: Sequence[Due], live: _Live, people: dict[int, Person],
                    investments: dict[str, _Investment], *, session: Session, app: Flask,
                    now: datetime) -> list[dict[str, Any]]:
    """Fulfil a campaign's due members: together where they get the same rewards, one by one where they differ."""
    referral = _is_referral(live.definition)
    alone = [m for m in members if referral or m.investment_id is not None]
    together = [m for m in members if not (referral or m.investment_id is not None)]
    results = []
    for batch in _rounds(together):
        results += fulfil_together(batch, live, people, session=session, app=app, now=now)
    for member in alone:
        investment = investments.get(member.investment_id) if member.investment_id else None
        results.append(fulfil_one(member, live, people[member.investor_id], investment, session=session, app=app,
                                  now=now))
    return results


def ask_for_tasks(state: _Live, members: Sequence[Due], outcomes: Sequence[dict[str, Any]], *, session: Session,
                  now: datetime) -> int:
    """Make the CRM follow-up task the campaign asks for (`crm_task`) for each member fulfilled; return how many.

    Only members who got what the campaign gives (`done`): not the holdout, not those out of budget. Once per
    member (the task's cause names the campaign and the member), in the fulfilment's transaction.
    """
    step = state.definition.crm_task
    if step is None:
        return 0
    investor_of = {m.id: m.investor_id for m in members}
    done = [(o["id"], investor_of[o["id"]]) for o in outcomes if o["status"] == "done"]
    return crm.create_campaign_tasks(state.campaign.id, done, note=f"{state.campaign.name}：{step.note}",
                                     due_hours=step.due_hours, session=session, now=now)


def _due_query(now: datetime) -> Select[Any]:
    m = _MEMBERS.c
    return (select(m.id, m.campaign_id, m.investor_id, m.cause, m.investment_id)
            .join(Campaign, Campaign.id == m.campaign_id)
            .where(m.status == "pending", m.due_at <= now, Campaign.status.in_((*LIVE, "cancelled"))))


def fulfil_due(*, session: Session, app: Flask, now: datetime, limit: int = CHUNK) -> int:
    """Fulfil the due members of live campaigns (a chunk); mark a cancelled campaign's members; return how many."""
    query = _due_query(now).order_by(_MEMBERS.c.due_at, _MEMBERS.c.id).limit(limit)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_MEMBERS)
    due = [Due(*row) for row in session.execute(query)]
    if not due:
        return 0
    people = {row.id: Person(*row) for row in session.execute(
        select(*PERSON_COLUMNS).where(among(Investor.id, sorted({m.investor_id for m in due}), dialect=dialect)))}
    investment_ids = sorted({m.investment_id for m in due if m.investment_id})
    investments = {i.investment_id: _Investment(i.investment_id, i.amount_fen, i.term_days) for i in session.execute(
        select(Investment.investment_id, Investment.amount_fen, Investment.term_days)
        .where(Investment.investment_id.in_(investment_ids)))} if investment_ids else {}
    by_campaign: dict[int, list[Due]] = {}
    for member in due:
        by_campaign.setdefault(member.campaign_id, []).append(member)
    results: list[dict[str, Any]] = []
    for campaign_id, members in by_campaign.items():
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        if campaign.status == "cancelled":
            results += [_outcome(m, "cancelled", now) for m in members]
            continue
        state = live(session, campaign, now)
        outcomes = fulfil_campaign(members, state, people, investments, session=session, app=app, now=now)
        ask_for_tasks(state, members, outcomes, session=session, now=now)
        results += outcomes
    update_many(session.connection(), _MEMBERS, results)
    return len(due)


def _has_due(session: Session, now: datetime) -> bool:
    return session.execute(_due_query(now).limit(1)).first() is not None


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
