"""Deriving referral records: load what the rules need for some referees, apply them, write what changed.

One function serves the projection (after each batch), the confirmation job, staff reviews and a
settings change, so a record is always the same function of: the investors and investments the log
built, the program settings, the staff decision (`referral_reviews`) and the confirmation feed
(`referral_confirmations`). None of these depends on arrival order, so neither does the record.

`affected` widens a set of changed investors to every referral their change may touch: their own,
their referees', their referrer's other referees of the same day (the K rule) and every member of a
referral cycle they close or break.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from growth.db import insert_many, table_of
from growth.events.models import ProcessorCursor
from growth.investors.models import Investment, Investor
from growth.referrals import rules
from growth.referrals.models import Referral, ReferralConfirmation, ReferralReview
from growth.timeutil import local_date, local_day_bounds

_INVESTORS = table_of(Investor)
_INVESTMENTS = table_of(Investment)
_REFERRALS = table_of(Referral)
_REVIEWS = table_of(ReferralReview)
_FEED = table_of(ReferralConfirmation)
_VALUE_COLUMNS = tuple(c.key for c in _REFERRALS.columns)
CHUNK = 500
PROJECTIONS_CURSOR = "projections"  # the processor's cursor row (growth.events.processor.CURSOR)


def lock_records(session: Session) -> None:
    """Serialise with the event processor: take its cursor row's lock, as every batch does first.

    Jobs, reviews and settings changes re-derive records outside the processor; holding this lock
    keeps a batch from writing a record from data read before their change committed (on SQLite the
    write transaction already serialises them).
    """
    session.execute(select(ProcessorCursor.name).where(ProcessorCursor.name == PROJECTIONS_CURSOR)
                    .with_for_update())


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = sorted(set(values))
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _party(row: Any) -> rules.Party:
    return rules.Party(row.id, row.phone, row.device_id, row.registration_ip, row.registered_at)


def _parents(session: Session, start: Iterable[int]) -> dict[int, int | None]:
    """Return referrer links (investor id → referrer id) from `start` upwards, at most MAX_CHAIN levels."""
    parents: dict[int, int | None] = {}
    frontier = set(start)
    for _level in range(rules.MAX_CHAIN):
        frontier -= set(parents)
        if not frontier:
            break
        found: dict[int, int | None] = dict.fromkeys(frontier)
        for chunk in _chunks(frontier):
            found.update(session.execute(select(_INVESTORS.c.id, _INVESTORS.c.referrer_id)
                                         .where(_INVESTORS.c.id.in_(chunk))).all())
        parents.update(found)
        frontier = {p for p in found.values() if p is not None}
    return parents


def _chain(parents: dict[int, int | None], referrer_id: int) -> list[int]:
    chain: list[int] = []
    current: int | None = referrer_id
    while current is not None and current not in chain and len(chain) < rules.MAX_CHAIN:
        chain.append(current)
        current = parents.get(current)
    return chain


def affected(session: Session, investor_ids: Iterable[int]) -> set[int]:
    """Return the referees whose record a change to these investors may change."""
    changed = set(investor_ids)
    if not changed:
        return set()
    out: set[int] = set()
    pairs: set[tuple[int, Any]] = set()  # (referrer, Shanghai day) groups the K rule must recount
    for chunk in _chunks(changed):
        for rid, referrer_id, at in session.execute(
                select(_INVESTORS.c.id, _INVESTORS.c.referrer_id, _INVESTORS.c.registered_at)
                .where(_INVESTORS.c.id.in_(chunk))):
            if referrer_id is not None:
                out.add(rid)
                if at is not None:
                    pairs.add((referrer_id, local_date(at)))
        # Their referees: a referrer's phone, device, address or registration time is half of each check.
        out.update(session.scalars(select(_INVESTORS.c.id).where(_INVESTORS.c.referrer_id.in_(chunk))))
        # The record as it was: its old referrer's day, and the members of a cycle it was part of.
        for referee_id, old_referrer, at, flags in session.execute(
                select(_REFERRALS.c.referee_id, _REFERRALS.c.referrer_id, _REFERRALS.c.registered_at,
                       _REFERRALS.c.flags).where(_REFERRALS.c.referee_id.in_(chunk))):
            out.add(referee_id)  # its referrer may be gone: the record goes with it
            if at is not None:
                pairs.add((old_referrer, local_date(at)))
            for flag in flags or ():
                if flag.get("code") == "referral_cycle":
                    out.update(int(m) for m in flag.get("detail", {}).get("members", ()))
    for ids in _referees_on_days(session, pairs).values():
        out.update(ids)
    # A cycle closed by one of them: every member's record changes.
    parents = _parents(session, changed)
    for rid in changed:
        referrer_id = parents.get(rid)
        if referrer_id is not None:
            chain = _chain(parents, referrer_id)
            if rid in chain:
                out.update(chain)
    return out


@dataclass
class Derived:
    """What a derivation changed: referees whose record was written, and those whose record went away."""

    written: set[int]
    removed: set[int]


def _first_investments(session: Session, ids: list[int]) -> dict[int, rules.FirstInvestment]:
    first: dict[int, rules.FirstInvestment] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(_INVESTMENTS.c.investor_id, _INVESTMENTS.c.investment_id, _INVESTMENTS.c.amount_fen,
                   _INVESTMENTS.c.term_days, _INVESTMENTS.c.started_at, _INVESTMENTS.c.redeemed_at)
            .where(_INVESTMENTS.c.investor_id.in_(chunk), _INVESTMENTS.c.started_at.is_not(None)))
        for investor_id, iid, amount, term, started, redeemed in rows:
            seen = first.get(investor_id)
            # The earliest investment is the first; the platform's id breaks a tie, so arrival order never does.
            if seen is None or (started, iid) < (seen.started_at, seen.investment_id):
                first[investor_id] = rules.FirstInvestment(iid, amount or 0, term or 0, started, redeemed)
    return first


def _referees_on_days(session: Session, pairs: set[tuple[int, Any]]) -> dict[tuple[int, Any], list[int]]:
    """Return the referees of each (referrer, Shanghai day), read in one query per chunk of referrers."""
    found: dict[tuple[int, Any], list[int]] = {pair: [] for pair in pairs}
    if not pairs:
        return found
    lo = local_day_bounds(min(day for _r, day in pairs))[0]
    hi = local_day_bounds(max(day for _r, day in pairs))[1]
    for chunk in _chunks(r for r, _day in pairs):
        for rid, referrer_id, at in session.execute(
                select(_INVESTORS.c.id, _INVESTORS.c.referrer_id, _INVESTORS.c.registered_at).where(
                    _INVESTORS.c.referrer_id.in_(chunk), _INVESTORS.c.registered_at >= lo,
                    _INVESTORS.c.registered_at < hi)):
            key = (referrer_id, local_date(at))
            if key in found:
                found[key].append(rid)
    return found


def _same_day_counts(session: Session, referees: list[Any]) -> dict[tuple[int, Any], int]:
    pairs = {(r.referrer_id, local_date(r.registered_at)) for r in referees if r.registered_at is not None}
    return {pair: len(ids) for pair, ids in _referees_on_days(session, pairs).items()}


def derive(session: Session, referee_ids: Iterable[int], settings: rules.ProgramSettings) -> Derived:
    """Re-derive the records of these referees from the current rows, writing only the ones that changed."""
    ids = sorted(set(referee_ids))
    result = Derived(set(), set())
    if not ids:
        return result
    columns = (_INVESTORS.c.id, _INVESTORS.c.platform_user_id, _INVESTORS.c.referrer_id, _INVESTORS.c.phone,
               _INVESTORS.c.device_id, _INVESTORS.c.registration_ip, _INVESTORS.c.registered_at)
    people: dict[int, Any] = {}
    for chunk in _chunks(ids):
        people.update((r.id, r) for r in session.execute(select(*columns).where(_INVESTORS.c.id.in_(chunk))))
    referees = [people[i] for i in ids if i in people and people[i].referrer_id is not None]
    missing = {r.referrer_id for r in referees} - set(people)
    for chunk in _chunks(missing):
        people.update((r.id, r) for r in session.execute(select(*columns).where(_INVESTORS.c.id.in_(chunk))))
    parents = _parents(session, {r.referrer_id for r in referees})
    chain_ids = {i for r in referees for i in _chain(parents, r.referrer_id)}
    user_ids: dict[int, str] = {i: p.platform_user_id for i, p in people.items()}
    for chunk in _chunks(chain_ids - set(user_ids)):
        user_ids.update(session.execute(select(_INVESTORS.c.id, _INVESTORS.c.platform_user_id)
                                        .where(_INVESTORS.c.id.in_(chunk))).all())
    first = _first_investments(session, [r.id for r in referees])
    counts = _same_day_counts(session, referees)

    decisions: dict[int, tuple[int, rules.Decision]] = {}
    feed: dict[int, tuple[int, datetime, str]] = {}
    existing: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        for row in session.execute(select(_REVIEWS).where(_REVIEWS.c.referee_id.in_(chunk))):
            decisions[row.referee_id] = (row.referrer_id, rules.Decision(row.decision, row.note, row.decided_by,
                                                                         row.decided_at))
        for row in session.execute(select(_FEED).where(_FEED.c.referee_id.in_(chunk))):
            feed[row.referee_id] = (row.referrer_id, row.confirmed_at, row.how)
        for found in session.execute(select(_REFERRALS).where(_REFERRALS.c.referee_id.in_(chunk))).mappings():
            existing[found["referee_id"]] = dict(found)

    new: dict[int, dict[str, Any]] = {}
    for referee in referees:
        referrer = people[referee.referrer_id]
        a, b = _party(referrer), _party(referee)
        day = None if referee.registered_at is None else local_date(referee.registered_at)
        flags = [*rules.block_flags(a, b)]
        for flag in (rules.shared_subnet(a, b, window_hours=settings.subnet_window_hours),
                     rules.too_many_referees(counts.get((referee.referrer_id, day), 0), day,
                                             limit=settings.max_referees_per_day),
                     rules.referral_cycle(referee.id, _chain(parents, referee.referrer_id), user_ids),
                     rules.virtual_operator(b, prefixes=settings.virtual_prefixes)):
            if flag is not None:
                flags.append(flag)
        q = rules.qualify(referee.registered_at, first.get(referee.id), settings)
        # A decision or a confirmation is about one referrer: a referee re-attributed to another starts afresh.
        pair_decision = decisions.get(referee.id)
        decision = pair_decision[1] if pair_decision and pair_decision[0] == referee.referrer_id else None
        pair_feed = feed.get(referee.id)
        confirmation = (pair_feed[1], pair_feed[2]) if pair_feed and pair_feed[0] == referee.referrer_id else None
        outcome = rules.status_of(q, flags, decision, confirmation)
        inv = first.get(referee.id)
        new[referee.id] = {
            "referee_id": referee.id, "referrer_id": referee.referrer_id, "registered_at": referee.registered_at,
            "status": outcome.status, "window_ends_at": q.window_ends_at,
            "first_investment_id": inv.investment_id if inv else None,
            "first_investment_fen": inv.amount_fen if inv else None,
            "first_investment_term_days": inv.term_days if inv else None,
            "qualified_at": q.qualified_at, "hold_ends_at": q.hold_ends_at,
            "confirmed_at": outcome.confirmed_at, "confirmed_how": outcome.confirmed_how,
            "rejected_reason": outcome.rejected_reason, "flags": [f.as_json() for f in flags],
            "decision": decision.decision if decision else None, "decision_note": decision.note if decision else None,
            "decided_by": decision.by if decision else None, "decided_at": decision.at if decision else None,
        }
    result.removed = {i for i in existing if i not in new}
    result.written = {i for i, row in new.items() if existing.get(i) != row}
    stale = result.removed | {i for i in result.written if i in existing}
    for chunk in _chunks(stale):
        session.execute(delete(_REFERRALS).where(_REFERRALS.c.referee_id.in_(chunk)))
    if result.written:
        insert_many(session.connection(), _REFERRALS,
                    [{c: new[i][c] for c in _VALUE_COLUMNS} for i in sorted(result.written)])
    return result
