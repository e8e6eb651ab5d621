"""A run's chunk fulfilled by the database: its members, their grants and their messages in one transaction.

When the database can build every message of a campaign — SMS without fallbacks whose texts are literal
text and `{{ object.field }}` variables (not the masked phone, not the unsubscribe link; see
`channels.templates.plain_parts`) — a run does not leave its members to the fulfilment worker. The
selection chunk inserts its members already `done` (holdout: `holdout`), takes the budget for those who
entered (`growth.rewards.services.take_packs`; the few it refuses become `budget_exhausted`), and writes
their rewards (`write_packs`) and messages (`channels.outbox.enqueue_from`) with INSERT … SELECT
statements: no member's rows pass through Python, so a fan-out runs at the speed of the database's
inserts. No name is read: a message holds `channels.templates.NAME_SLOT` where the investor's name goes
(every text is then one constant), and delivery fills it in when it sends. Everything commits with the
run's keyset position, so a crash resumes the run without duplicates. What it writes is exactly what
fulfilment writes for the same members (tests compare both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from campaigns.definition import Definition, SmsMessage
from campaigns.fulfilment import ACTOR, SENDER, live, refused_status, reward_variables_of_row, terms_for
from campaigns.models import Campaign, CampaignMember
from campaigns.preview import chains
from channels.adapters.port import Channel, MessageClass
from channels.outbox import enqueue_from, json_object, message_key
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


def _text(template: str, values: dict[str, Any]) -> ColumnElement[str]:
    """Return a plain template as SQL: a constant, its variables filled in and the investor's name as the slot."""
    parts = plain_parts(template)
    assert parts is not None  # in_sql checked it
    return literal("".join(part if isinstance(part, str) else str(values[part[0]][part[1]]) for part in parts),
                   String)


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
        content: dict[str, Any] = {"text": _text(message.text, values)}
        if message.template_code:
            content["template_code"] = message.template_code
            content["params"] = json_object(dialect, {k: _text(v, values)
                                                      for k, v in (message.params or {}).items()})
        head, tail = message_key(sender=SENDER, campaign_id=campaign_id, investor_ref="\x00", channel="sms",
                                 cause="").split("\x00")  # the key around the investor's id, the cause at its end
        key = literal(head) + cast(m.investor_id, String) + literal(tail) + m.cause
        # The platform's user id by the investor's key, one lookup per member: a join lets the planner hash
        # the whole investors table for each chunk when it misjudges the chunk's size (bench/README.md).
        user_id = select(i.platform_user_id).where(i.id == m.investor_id).scalar_subquery()
        query = (select(func.substr(key, 1, 255), literal(campaign_id), literal(SENDER), m.cause, m.investor_id,
                        user_id, literal(str(Channel.SMS)), literal(str(klass)), json_object(dialect, content))
                 .where(among_ids(m.id, member_ids, dialect=dialect)))
        enqueue_from(query, session=session, now=now)


def fulfil_chunk(session: Session, campaign: Campaign, definition: Definition, rows: list[dict[str, Any]], *,
                 now: datetime) -> int:
    """Insert a chunk's members fulfilled, with their rewards and messages; return how many entered."""
    for row in rows:
        if not row["holdout"]:
            row.update(status="done", rewards_granted=len(definition.rewards), fulfilled_at=now)
    entered = insert_many(session.connection(), _MEMBERS, rows, returning=("id", "investor_id", "holdout"),
                          skip_conflicts=True)
    treated = sorted((member_id, investor_id) for member_id, investor_id, holdout in entered if not holdout)
    granted = [member_id for member_id, _investor in treated]
    reward: dict[str, Any] | None = None
    if definition.rewards and treated:
        state = live(session, campaign, now)
        items = [terms_for(spec, None) for spec in definition.rewards]
        try:
            taken = rewards.take_packs(session=session, investor_ids=[i for _m, i in treated], items=items,
                                       budget=state.budget)
            refused = {treated[n][0] for n in taken.refused}
        except InvalidTerms as err:
            refused, status = set(granted), refused_status(err)
        else:
            status = "budget_exhausted"
        if refused:
            session.execute(update(CampaignMember).where(among_ids(CampaignMember.id, sorted(refused),
                                                               dialect=session.get_bind().dialect.name))
                            .values(status=status, rewards_granted=0))
            granted = [member_id for member_id in granted if member_id not in refused]
        if granted:
            m = _MEMBERS.c
            source = (select((literal(f"campaign:{campaign.id}:member:") + cast(m.id, String)).label("key"),
                             m.investor_id, m.cause)
                      .where(among_ids(m.id, granted, dialect=session.get_bind().dialect.name)))
            rewards.write_packs(session=session, source=source, items=items, budget=state.budget, actor=ACTOR,
                                now=now, campaign_id=campaign.id)
            kind, terms = items[0]  # the messages speak of the first reward, as fulfilment's do
            reward = {"kind": kind, "amount_fen": terms.amount_fen, "annual_rate_bp": terms.annual_rate_bp,
                      "rate_bp": terms.rate_bp, "expires_at": expires_at(kind, terms, now)}
    _enqueue(session, definition, campaign.id, granted, reward, now)
    return len(entered)
