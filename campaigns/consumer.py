"""The trigger consumer: a second reader of the event log, behind the processor, that enters investors into
trigger campaigns (spec §2 `trigger`).

It keeps its own cursor (`processor_cursors` row "campaign-triggers") and never reads past the
processor's, so every investor row it looks at already reflects the events it reads. Each batch is ONE
transaction holding the members it enters and its cursor: a crash after the processor's commit and before
this one loses nothing (the batch is read again) and a repeat enters nobody twice (members are unique per
campaign, investor and entry key). One consumer is active per database (a lease row elects it, as for the
processor). What members get — rewards, messages — is fulfilment's, after this commit. CRM calls (the
`crm_call` trigger) are read the same way from the CRM's call feed, with a third cursor.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from flask import Flask
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from campaigns import segments, triggers
from campaigns.definition import Definition, parse
from campaigns.models import Campaign, CampaignMember
from growth.crm.models import CALL_FEED_CURSOR
from growth.crm.services import calls_after
from growth.db import get_db, insert_many, table_of
from growth.events.models import PlatformEvent, ProcessorCursor
from growth.investors.models import Investment, Investor
from growth.locks import claim, new_holder_id, release
from growth.referrals.models import referral_cause
from growth.referrals.services import confirmations_after
from growth.timeutil import as_utc, utcnow

log = logging.getLogger("campaigns.consumer")
CURSOR = "campaign-triggers"
REFERRAL_CURSOR = "campaign-referrals"  # over the referral program's confirmation feed, not the log
LEASE = "campaign-triggers"
PROCESSOR_CURSOR = "projections"
_MEMBERS = table_of(CampaignMember)
_RELEVANT = frozenset({*triggers.MILESTONE_OF, *triggers.INVESTMENT_EVENTS})


@dataclass(frozen=True, slots=True)
class _Live:
    """An active trigger campaign as the batch sees it."""

    id: int
    definition: Definition
    approved_at: datetime


@dataclass(frozen=True, slots=True)
class _Candidate:
    campaign: _Live
    investor_id: int
    user_id: str
    fire: triggers.Fire
    seq: int
    accepted_at: datetime


def _cursor(session: Session, name: str, now: datetime, *, lock: bool = False) -> ProcessorCursor:
    cursor = session.get(ProcessorCursor, name, with_for_update=lock)
    if cursor is None:
        cursor = ProcessorCursor(name=name, position=0, updated_at=now)
        session.add(cursor)
        session.flush()
    return cursor


def _processed(session: Session) -> int:
    """Return how far the processor has got (0 before its first batch)."""
    query = select(ProcessorCursor.position).where(ProcessorCursor.name == PROCESSOR_CURSOR)
    return session.scalar(query) or 0


def _wait_for_processor(app: Flask, *, after: int, stop: threading.Event, poll: float, longest: float) -> None:
    """Return once the processor is past seq `after`, on stop, or after `longest` seconds (reads only)."""
    db = get_db(app)
    waited = 0.0
    while not stop.is_set() and waited < longest:
        with db.session_scope() as session:
            if _processed(session) > after:
                return
        stop.wait(poll)
        waited += poll


def _live_campaigns(session: Session) -> list[_Live]:
    rows = session.execute(select(Campaign.id, Campaign.definition, Campaign.approved_at)
                           .where(Campaign.status == "active")).all()
    live = []
    for campaign_id, document, approved_at in rows:
        definition = parse(document)
        if definition.trigger is not None and approved_at is not None:
            live.append(_Live(campaign_id, definition, as_utc(approved_at)))
    return live


def _milestones(row: Any) -> dict[str, datetime | None]:
    names = ("registered", "kyc_verified", "card_bound", "first_deposit", "first_investment", "repeat_investment")
    return {n: getattr(row, f"{n}_at") for n in names}


def _candidates(session: Session, events: Sequence[Any], live: list[_Live]) -> list[_Candidate]:
    wanted = {c.definition.trigger.on for c in live if c.definition.trigger is not None}
    events = [e for e in events if e.type in _RELEVANT]
    user_ids = sorted({e.user_id for e in events})
    investors = {r.platform_user_id: r for r in session.execute(
        select(Investor).where(Investor.platform_user_id.in_(user_ids))).scalars()} if user_ids else {}
    bodies = {e.seq: orjson.loads(e.payload) for e in events}
    investment_ids = sorted({str(bodies[e.seq].get("data", {}).get("investment_id")) for e in events
                             if e.type in ("investment.matured", "investment.redeemed")})
    known = {i.investment_id: triggers.Investment(i.investment_id, i.amount_fen, i.term_days, i.product_id)
             for i in session.scalars(select(Investment).where(Investment.investment_id.in_(investment_ids)))
             } if investment_ids else {}
    found = []
    for e in events:
        investor = investors.get(e.user_id)
        if investor is None:
            continue
        data = bodies[e.seq].get("data") or {}
        occurred = as_utc(e.occurred_at)
        inv = known.get(str(data.get("investment_id"))) if e.type != "investment.created" else None
        for fire in triggers.fires(e.type, occurred, data, _milestones(investor), inv):
            if fire.on not in wanted:
                continue
            for campaign in live:
                if triggers.takes(campaign.definition, fire, status="active", approved_at=campaign.approved_at,
                                  accepted_at=as_utc(e.received_at)):
                    found.append(_Candidate(campaign, investor.id, investor.platform_user_id, fire, e.seq,
                                            as_utc(e.received_at)))
    return found


def _in_audience(session: Session, campaign: _Live, investor_ids: set[int], now: datetime) -> set[int]:
    if not campaign.definition.audience.all:
        return investor_ids
    where = segments.where(campaign.definition.audience, now=now)
    query = select(Investor.id).where(and_(where, Investor.id.in_(sorted(investor_ids))))
    return set(session.scalars(query))


def _recent_entries(session: Session, campaign: _Live, investor_ids: set[int]) -> dict[int, datetime]:
    """Return each investor's latest entry into the campaign (for `entry.every_days`)."""
    rows = session.execute(select(CampaignMember.investor_id, CampaignMember.entered_at)
                           .where(CampaignMember.campaign_id == campaign.id,
                                  CampaignMember.investor_id.in_(sorted(investor_ids))))
    latest: dict[int, datetime] = {}
    for investor_id, entered in rows:
        entered = as_utc(entered)
        if investor_id not in latest or entered > latest[investor_id]:
            latest[investor_id] = entered
    return latest


def _members(session: Session, candidates: list[_Candidate], now: datetime) -> list[dict[str, Any]]:
    by_campaign: dict[int, list[_Candidate]] = defaultdict(list)
    for c in candidates:
        by_campaign[c.campaign.id].append(c)
    rows: list[dict[str, Any]] = []
    for group in by_campaign.values():
        campaign = group[0].campaign
        definition = campaign.definition
        members = _in_audience(session, campaign, {c.investor_id for c in group}, now)
        every = definition.entry.every_days
        latest = _recent_entries(session, campaign, members) if every else {}
        for c in sorted(group, key=lambda c: (c.fire.occurred_at, c.seq)):
            if c.investor_id not in members:
                continue
            if every:
                last = latest.get(c.investor_id)
                if last is not None and c.fire.occurred_at - last < timedelta(days=every):
                    continue
                latest[c.investor_id] = c.fire.occurred_at
            holdout = segments.in_holdout(campaign.id, c.user_id, definition.holdout_percent)
            rows.append({
                "campaign_id": campaign.id, "investor_id": c.investor_id,
                "entry_key": "once" if every is None else c.fire.cause, "cause": c.fire.cause, "run_id": None,
                "event_seq": c.seq, "investment_id": c.fire.investment.investment_id if c.fire.investment else None,
                "holdout": holdout, "entered_at": c.fire.occurred_at, "status": "holdout" if holdout else "pending",
                "due_at": triggers.due_at(definition, c.accepted_at), "created_at": now, "fulfilled_at": None,
                "rewards_granted": 0,
            })
    return rows


def consume_batch(*, session: Session, limit: int, now: datetime) -> int:
    """Enter the members of the next `limit` processed events and move the cursor, in the caller's transaction."""
    cursor = _cursor(session, CURSOR, now, lock=True)
    ceiling = _processed(session)
    query = (select(PlatformEvent.seq, PlatformEvent.type, PlatformEvent.occurred_at, PlatformEvent.user_id,
                    PlatformEvent.payload, PlatformEvent.received_at)
             .where(PlatformEvent.seq > cursor.position, PlatformEvent.seq <= ceiling)
             .order_by(PlatformEvent.seq).limit(limit))
    events = session.execute(query).all()
    if not events:
        return 0
    live = _live_campaigns(session)
    if live:
        rows = _members(session, _candidates(session, events, live), now)
        insert_many(session.connection(), _MEMBERS, rows, skip_conflicts=True)
    cursor.position = events[-1].seq
    cursor.updated_at = now
    return len(events)


def consume_referrals(*, session: Session, limit: int, now: datetime) -> int:
    """Enter confirmed referrals into `referral_confirmed` campaigns (member: the referee) and move that cursor."""
    cursor = _cursor(session, REFERRAL_CURSOR, now, lock=True)
    confirmations = confirmations_after(session, cursor.position, limit)
    if not confirmations:
        return 0
    live = [c for c in _live_campaigns(session)
            if c.definition.trigger is not None and c.definition.trigger.on == "referral_confirmed"]
    if live:
        referees = {i.id: i.platform_user_id for i in session.scalars(select(Investor).where(
            Investor.id.in_({c.referee_id for c in confirmations})))}
        found = []
        for confirmation in confirmations:
            at = as_utc(confirmation.confirmed_at)
            fire = triggers.Fire("referral_confirmed", referral_cause(confirmation.referee_id), at)
            for campaign in live:
                if triggers.takes(campaign.definition, fire, status="active", approved_at=campaign.approved_at,
                                  accepted_at=at):
                    found.append(_Candidate(campaign, confirmation.referee_id, referees[confirmation.referee_id],
                                            fire, 0, at))
        rows = _members(session, found, now)
        for row in rows:
            row["event_seq"] = None
        insert_many(session.connection(), _MEMBERS, rows, skip_conflicts=True)
    cursor.position = confirmations[-1].id
    cursor.updated_at = now
    return len(confirmations)


def consume_crm_calls(*, session: Session, limit: int, now: datetime) -> int:
    """Enter the investors of newly logged CRM calls into `crm_call` campaigns and move that cursor.

    The cursor row (`CALL_FEED_CURSOR`) is locked first: calls are logged holding the same lock, so every
    call with an id below the last one read has committed and none is skipped; the members (unique per
    campaign, investor and entry key — the call for `every_days`) and the cursor commit together, so a
    crash or a restart re-reads the batch and enters nobody twice.
    """
    cursor = _cursor(session, CALL_FEED_CURSOR, now, lock=True)
    calls = calls_after(cursor.position, session=session, limit=limit)
    if not calls:
        return 0
    live = [c for c in _live_campaigns(session)
            if c.definition.trigger is not None and c.definition.trigger.on == "crm_call"]
    if live:
        user_ids = {i.id: i.platform_user_id for i in session.scalars(select(Investor).where(
            Investor.id.in_(sorted({c.investor_id for c in calls}))))}
        found = []
        for call in calls:
            at = as_utc(call.created_at)
            fire = triggers.call_fire(call.id, call.outcome, at)
            for campaign in live:
                if triggers.takes(campaign.definition, fire, status="active", approved_at=campaign.approved_at,
                                  accepted_at=at):
                    found.append(_Candidate(campaign, call.investor_id, user_ids[call.investor_id], fire, 0, at))
        rows = _members(session, found, now)
        for row in rows:
            row["event_seq"] = None
        insert_many(session.connection(), _MEMBERS, rows, skip_conflicts=True)
    cursor.position = calls[-1].id
    cursor.updated_at = now
    return len(calls)


def run_triggers(app: Flask, stop: threading.Event) -> None:
    """Background worker: stand by for the lease, then follow the processor through the log."""
    db = get_db(app)
    holder = new_holder_id()
    ttl = timedelta(seconds=app.config["LEADER_LEASE_SECONDS"])
    limit = app.config["PROCESSOR_BATCH_SIZE"]
    poll = app.config["PROCESSOR_POLL_SECONDS"]
    leading = False
    try:
        while not stop.is_set():
            with db.session_scope(write=True) as session:
                now = utcnow()
                leading = claim(LEASE, holder, session=session, now=now, ttl=ttl)
                done = consume_batch(session=session, limit=limit, now=now) if leading else 0
                if leading:
                    consume_referrals(session=session, limit=limit, now=now)
                position = session.scalar(select(ProcessorCursor.position).where(ProcessorCursor.name == CURSOR))
            if leading:  # its own short transaction: agents logging calls wait for the feed's lock meanwhile
                with db.session_scope(write=True) as session:
                    if claim(LEASE, holder, session=session, now=utcnow(), ttl=ttl):
                        consume_crm_calls(session=session, limit=limit, now=utcnow())
            if not leading:
                stop.wait(ttl.total_seconds() / 3)
            elif done < limit:  # caught up: wait (reading, not writing) until the processor moves on
                _wait_for_processor(app, after=position or 0, stop=stop, poll=poll, longest=ttl.total_seconds() / 3)
    finally:
        if leading:
            with db.session_scope(write=True) as session:
                release(LEASE, holder, session=session)
