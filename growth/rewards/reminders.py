"""Reminders before a reward expires: one marketing SMS per reward, some days before it stops working.

The elected scheduler runs `jobs.task_remind` every REWARD_REMINDER_JOB_SECONDS. Each run looks for
granted rewards (vouchers and rate boosts: the kinds that expire) ending within the days of the setting
`reward_reminder_days` (GROWTH_REWARD_EXPIRY_REMINDER_DAYS, 3 by default, 0 = off; the messages' settings
page may change it) that have no reminder yet, and queues one message each, keyed by the reward
(sender `reward-reminders`, cause `expiry:<reward id>`), so however often it runs, on however many
workers, a reward is reminded once. The wording is the library's SMS template named by
`reward_reminder_template` (its provider template code and parameters too), else `DEFAULT_TEXT`.
Consent, frequency caps, quiet hours and the kill switch apply when delivery sends it, as for any
marketing message; the investor's name is queued as the slot delivery fills in (`channels.templates.NAME_SLOT`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, exists, literal, select
from sqlalchemy.orm import Session

from channels.adapters.port import Channel, MessageClass
from channels.models import MessageTemplate, OutboxMessage
from channels.outbox import NewMessage, enqueue_many
from channels.templates import NAME_SLOT, context, render
from growth.investors.models import Investor
from growth.investors.rules import mask_phone
from growth.rewards.models import Reward
from growth.rewards.rules import message_variables

log = logging.getLogger("growth.rewards.reminders")
SENDER = "reward-reminders"
CAUSE_PREFIX = "expiry:"
CHUNK = 1000
MAX_PER_RUN = 20_000  # a run's transaction stays short; the next run takes the rest
DEFAULT_TEXT = ("{{ investor.name }}您好，您的{{ reward.kind_label }}（{{ reward.amount }}）将于{{ reward.expires_on }}"
                "到期，请及时使用。投资有风险，理财需谨慎。回T退订")


@dataclass(frozen=True, slots=True)
class Wording:
    """What a reminder says: the SMS text, and the provider's template code and parameters when it has one."""

    text: str = DEFAULT_TEXT
    template_code: str = ""
    params: dict[str, str] = field(default_factory=dict)


def wording(name: str, *, session: Session) -> Wording:
    """Return the wording of the library's SMS template `name`, or the default one (no name, or none usable)."""
    if not name:
        return Wording()
    template = session.scalar(select(MessageTemplate).where(MessageTemplate.name == name,
                                                            MessageTemplate.channel == "sms"))
    if template is None or template.archived:
        log.warning("reward reminders: no SMS template %r in the library; the default wording is used", name)
        return Wording()
    return Wording(template.body, template.provider_template, dict(template.params or {}))


def cause_of(reward_id: int) -> str:
    """Return the outbox cause of a reward's reminder (one message per reward)."""
    return f"{CAUSE_PREFIX}{reward_id}"


def _reminded() -> Any:
    """SQL: the reward already has its reminder (the outbox key of `NewMessage.key`, read by the unique index)."""
    key = (literal(f"{SENDER}|") + cast(Reward.investor_id, String) + literal(f"|{Channel.SMS}|")
           + literal(CAUSE_PREFIX) + cast(Reward.id, String))
    return exists().where(OutboxMessage.key == key)


def due(*, session: Session, now: datetime, within: timedelta, limit: int) -> list[tuple[Reward, Investor]]:
    """Return granted rewards ending after `now` and within `within` that have no reminder yet, soonest first."""
    query = (select(Reward, Investor).join(Investor, Investor.id == Reward.investor_id)
             .where(Reward.status == "granted", Reward.expires_at > now, Reward.expires_at <= now + within,
                    ~_reminded())
             .order_by(Reward.expires_at, Reward.id).limit(limit))
    return [(reward, investor) for reward, investor in session.execute(query)]


def _message(reward: Reward, investor: Investor, words: Wording, link: Callable[[int], str]) -> NewMessage:
    variables = context(investor_name=NAME_SLOT, masked_phone=mask_phone(investor.phone),
                        unsubscribe_url=link(investor.id), **message_variables(reward))
    content: dict[str, Any] = {"text": render(words.text, variables)}
    if words.template_code:
        content["template_code"] = words.template_code
        content["params"] = {name: render(expr, variables) for name, expr in words.params.items()}
    return NewMessage(sender=SENDER, cause=cause_of(reward.id), channel=Channel.SMS,
                      message_class=MessageClass.MARKETING, content=content, investor_id=investor.id,
                      user_id=investor.platform_user_id)


def remind_expiring(*, session: Session, now: datetime, within: timedelta, words: Wording,
                    link: Callable[[int], str], limit: int = MAX_PER_RUN) -> int:
    """Queue the reminders due at `now` (at most `limit`), in the caller's transaction; return how many.

    `link(investor_id)` is the investor's one-click SMS unsubscribe URL (`unsubscribe_url`).
    """
    queued = 0
    while queued < limit:
        batch = due(session=session, now=now, within=within, limit=min(CHUNK, limit - queued))
        if not batch:
            break
        new = len(enqueue_many([_message(r, i, words, link) for r, i in batch], session=session, now=now).ids)
        queued += new
        if len(batch) < CHUNK or not new:  # nothing new: another worker's run is queueing the same ones
            break
    return queued

