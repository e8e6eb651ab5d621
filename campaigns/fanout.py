"""A run's chunk fulfilled by the database: its members, their grants and their messages in one transaction.

When the database can build every message of a campaign — SMS without fallbacks whose texts are literal
text and `{{ object.field }}` variables (not the masked phone, not the unsubscribe link; see
`channels.templates.plain_parts`) — a run does not leave its members to the fulfilment worker. The
selection chunk inserts its members already `done` (holdout: `holdout`), counts those who entered against
the per-investor limit (`growth.rewards.services.count_packs`; the few it refuses become `budget_exhausted`),
writes their rewards (`write_packs`) and messages (`channels.outbox.enqueue_from`) with INSERT … SELECT
statements, and takes the budget's totals last (`settle_packs`; see `fulfil_chunk`): no member's rows pass
through Python, so a fan-out runs at the speed of the database's inserts. No name is read: a message holds
`channels.templates.NAME_SLOT` where the investor's name goes (every text is then one constant), and
delivery fills it in when it sends. Everything commits with the chunk marked done, so a crash takes the
chunk up again without duplicates. What it writes is exactly what fulfilment writes for the same members
(tests compare both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from campaigns.definition import Definition, SmsMessage
from campaigns.fulfilment import ACTOR, SENDER, live, refused_status, reward_variables_of_row, terms_for
from campaigns.models import Campaign, CampaignMember
from campaigns.preview import chains
from channels.adapters.port import Channel, MessageClass
from channels.outbox import enqueue_from, message_key
from channels.templates import NAME_SLOT, plain_parts
from channels.templates import context as template_context
from growth.db import among_ids, insert_many, table_of
from growth.investors.models import Investor
from growth.rewards import services as rewards
from growth.rewards.rules import InvalidTerms, expires_at

_MEMBERS = table_of(CampaignMember)
_INVESTORS = table_of(Investor)


def in_sql(definition: Definition) -> bool:
    """Tell whether the database can build every message of the campaign (then its runs fulfil as they select).

    A campaign that asks for CRM tasks (`crm_task`) is left to the fulfilment worker, which makes them.
    """
    if definition.crm_task is not None:
        return False
    for chain in chains(definition.messages):
        message = chain[0]
        if len(chain) > 1 or not isinstance(message, SmsMessage):
            return False
        texts = [message.text, *((message.params or {}).values() if message.template_code else ())]
        for text in texts:
            parts = plain_parts(text)
            if parts is None or any(isinstance(p, tuple) and p == ("investor", "masked_phone") for p in parts):
                return False
    return True


def _text(template: str, values: dict[str, Any]) -> str:
    """Return a plain template's text: its variables filled in and the investor's name as the slot."""
    parts = plain_parts(template)
    assert parts is not None  # in_sql checked it
    return "".join(part if isinstance(part, str) else str(values[part[0]][part[1]]) for part in parts)


def _enqueue(session: Session, definition: Definition, campaign_id: int, member_ids: Sequence[int],
             reward: dict[str, Any] | None, now: datetime) -> None:
    """Queue the members' SMS, rendered by the database exactly as `fulfilment.messages_for` renders them."""
    if not member_ids:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    m, i = _MEMBERS.c, _INVESTORS.c
    values = template_context(investor_name=NAME_SLOT, masked_phone="", campaign_name=definition.name,
                              **reward_variables_of_row(reward))
    klass = MessageClass.MARKETING if definition.marketing else MessageClass.SERVICE
    for chain in chains(definition.messages):
        message = chain[0]
        assert isinstance(message, SmsMessage)
        # One document for every member (the name is a slot): a parameter, not built per row.
        content: dict[str, Any] = {"text": _text(message.text, values)}
        if message.template_code:
            content["template_code"] = message.template_code
            content["params"] = {k: _text(v, values) for k, v in (message.params or {}).items()}
        head, tail = message_key(sender=SENDER, campaign_id=campaign_id, investor_ref="\x00", channel="sms",
                                 cause="").split("\x00")  # the key around the investor's id, the cause at its end
        key = literal(head) + cast(m.investor_id, String) + literal(tail) + m.cause
        # The platform's user id by the investor's key, one lookup per member: a join lets the planner hash
        # the whole investors table for each chunk when it misjudges the chunk's size (bench/README.md).
        user_id = select(i.platform_user_id).where(i.id == m.investor_id).scalar_subquery()
        query = (select(func.substr(key, 1, 255), literal(campaign_id), literal(SENDER), m.cause, m.investor_id,
                        user_id, literal(str(Channel.SMS)), literal(str(klass)), literal(content, JSON))
                 .where(among_ids(m.id, member_ids, dialect=dialect)))
        enqueue_from(query, session=session, now=now)


class _BudgetShort(Exception):
    """The budget's totals could not take a chunk's grants at once (`rewards.settle_packs`)."""


def fulfil_chunk(session: Session, campaign: Campaign, definition: Definition, rows: list[dict[str, Any]], *,
                 now: datetime) -> int:
    """Insert a chunk's members fulfilled, with their rewards and messages; return how many entered.

    The budget's totals are taken by the chunk's last statement (`rewards.settle_packs`), so runner threads
    fulfilling other chunks of the run wait for its row only while this one commits. When they do not fit
    (the budget runs out within this chunk), the grants are made again in the budget's order: the budget
    first, for those it can take (`rewards.take_packs`).
    """
    for row in rows:
        if not row["holdout"]:
            row.update(status="done", rewards_granted=len(definition.rewards), fulfilled_at=now)
    entered = insert_many(session.connection(), _MEMBERS, rows, returning=("id", "investor_id", "holdout"),
                          skip_conflicts=True)
    treated = sorted((member_id, investor_id) for member_id, investor_id, holdout in entered if not holdout)
    if not (definition.rewards and treated):
        _enqueue(session, definition, campaign.id, [member_id for member_id, _investor in treated], None, now)
        return len(entered)
    try:
        with session.begin_nested():
            _grant(session, campaign, definition, treated, now=now, settle_last=True)
    except _BudgetShort:
        _grant(session, campaign, definition, treated, now=now, settle_last=False)
    return len(entered)


def _grant(session: Session, campaign: Campaign, definition: Definition, treated: list[tuple[int, int]], *,
           now: datetime, settle_last: bool) -> None:
    """Grant the treated members' rewards and queue their messages; `settle_last`: take the budget's totals last."""
    state = live(session, campaign, now)
    items = [terms_for(spec, None) for spec in definition.rewards]
    investor_ids = [investor_id for _member, investor_id in treated]
    granted = [member_id for member_id, _investor in treated]
    counted: rewards.PackCount | None = None
    try:
        if settle_last:
            counted = rewards.count_packs(session=session, investor_ids=investor_ids, items=items,
                                          budget=state.budget)
            refused_at = counted.refused
        else:
            refused_at = rewards.take_packs(session=session, investor_ids=investor_ids, items=items,
                                            budget=state.budget).refused
        refused, status = {treated[n][0] for n in refused_at}, "budget_exhausted"
    except InvalidTerms as err:
        refused, status = set(granted), refused_status(err)
    dialect = session.get_bind().dialect.name
    if refused:
        session.execute(update(CampaignMember).where(among_ids(CampaignMember.id, sorted(refused), dialect=dialect))
                        .values(status=status, rewards_granted=0))
        granted = [member_id for member_id in granted if member_id not in refused]
    reward: dict[str, Any] | None = None
    if granted:
        m = _MEMBERS.c
        source = (select((literal(f"campaign:{campaign.id}:member:") + cast(m.id, String)).label("key"),
                         m.investor_id, m.cause)
                  .where(among_ids(m.id, granted, dialect=dialect)))
        rewards.write_packs(session=session, source=source, items=items, budget=state.budget, actor=ACTOR,
                            now=now, campaign_id=campaign.id)
        kind, terms = items[0]  # the messages speak of the first reward, as fulfilment's do
        reward = {"kind": kind, "amount_fen": terms.amount_fen, "annual_rate_bp": terms.annual_rate_bp,
                  "rate_bp": terms.rate_bp, "expires_at": expires_at(kind, terms, now)}
    _enqueue(session, definition, campaign.id, granted, reward, now)
    if counted is not None and not rewards.settle_packs(session=session, budget=state.budget, counted=counted):
        raise _BudgetShort
