"""Periodic ledger work: expire unused rewards, pay cashback after its hold and experience funds after their days.

Safe to run twice and on several workers at once: each transition is an entry with a unique key
(`<reward id>:expired`, `<reward id>:paid`), appended with ON CONFLICT DO NOTHING, and the webhook
is an outbox row with its own idempotency key. The elected scheduler runs the `task_*` functions
(`(session, now) -> None`, registered by the composition root as system jobs with explicit ids);
the reminders before expiry are `growth.rewards.reminders`'.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels import settings as channel_settings
from channels.receipts import unsubscribe_link_for
from growth.db import table_of
from growth.investors.models import Investment, Investor
from growth.rewards import reminders, rules
from growth.rewards.models import Reward
from growth.rewards.services import append_entries, entry_row, queue_webhook, refresh, terms_of

log = logging.getLogger("growth.rewards.jobs")
_INVESTMENTS = table_of(Investment)
BATCH = 500
# Batches one expiry run may take: a mass expiry (a campaign's vouchers all end the same business day)
# drains at 5,000 a run instead of 500, while one run's transaction stays short.
EXPIRY_BATCHES_PER_RUN = 10
ACTOR = "job"


@dataclass
class JobOutcome:
    """What one run did."""

    expired: int = 0
    paid: int = 0


def expire_due(*, session: Session, now: datetime, limit: int = BATCH) -> int:
    """Expire granted rewards whose expires_at has passed and queue `reward.expired`; return how many."""
    due = list(session.scalars(select(Reward).where(Reward.status == "granted", Reward.expires_at <= now)
                               .order_by(Reward.expires_at, Reward.id).limit(limit)))
    if not due:
        return 0
    got = append_entries([entry_row(r.id, "expired", "job", at=r.expires_at or now, now=now, actor=ACTOR)
                          for r in due], session=session)
    refresh(session=session, reward_ids=got)
    users = dict(session.execute(select(Investor.id, Investor.platform_user_id)
                                 .where(Investor.id.in_({r.investor_id for r in due}))).all())
    for reward in due:
        if reward.id in got:
            session.refresh(reward)
            queue_webhook(session, reward, users.get(reward.investor_id, ""), "reward.expired", now=now)
    return len(got)


def pay_due(*, session: Session, now: datetime, limit: int = BATCH) -> int:
    """Pay cashback whose hold ended without an early exit, and experience funds whose days are over."""
    query = (select(Reward, _INVESTMENTS.c.started_at, _INVESTMENTS.c.redeemed_at)
             .outerjoin(_INVESTMENTS, _INVESTMENTS.c.investment_id == Reward.investment_id)
             .where(Reward.status == "granted", Reward.kind.in_(("cashback", "experience_funds")))
             .order_by(Reward.id))
    entries = []
    for reward, started_at, redeemed_at in session.execute(query):
        at = rules.payable_at(reward.kind, granted_at=reward.granted_at, days=reward.days,
                              hold_days=reward.hold_days,
                              investment_started_at=started_at if reward.kind == "cashback" else None)
        if at is None or at > now:
            continue
        if reward.kind == "cashback" and rules.clawed_back(
                hold_days=reward.hold_days or 0, hold_from=rules.hold_start(reward.granted_at, started_at),
                redeemed_at=redeemed_at):
            continue  # redeemed inside the hold: the projection claws it back
        cost = rules.known_cost(reward.kind, terms_of(reward)) or 0
        entries.append(entry_row(reward.id, "paid", "job", at=at, now=now, actor=ACTOR, amount=cost))
        if len(entries) >= limit:
            break
    got = append_entries(entries, session=session) if entries else []
    refresh(session=session, reward_ids=got)
    return len(got)


def run_due(*, session: Session, now: datetime) -> JobOutcome:
    """Run every ledger job once, in the caller's transaction."""
    return JobOutcome(expired=expire_due(session=session, now=now), paid=pay_due(session=session, now=now))


def task_expire(session: Session, now: datetime) -> None:
    """Scheduled task: expire the rewards due, a bounded number of batches per run (the next run takes the rest)."""
    expired = 0
    for _ in range(EXPIRY_BATCHES_PER_RUN):
        got = expire_due(session=session, now=now)
        expired += got
        if got < BATCH:
            break
    if expired:
        log.info("rewards: %d expired", expired)


def task_pay(session: Session, now: datetime) -> None:
    """Scheduled task: pay the cashback and experience funds that are due."""
    paid = pay_due(session=session, now=now)
    if paid:
        log.info("rewards: %d paid", paid)


def task_remind(session: Session, now: datetime) -> None:
    """Scheduled task: queue a reminder for every reward expiring within the configured days (0: none)."""
    app = current_app
    config = channel_settings.load(session=session, environment=app.config.get("CHANNEL_ENV") or {})
    days = int(config["reward_reminder_days"])
    if days <= 0:
        return
    queued = reminders.remind_expiring(
        session=session, now=now, within=timedelta(days=days),
        words=reminders.wording(config["reward_reminder_template"], session=session),
        link=lambda investor_id: unsubscribe_link_for(investor_id, "sms", app=app, now=now))
    if queued:
        log.info("rewards: %d expiry reminders queued", queued)
